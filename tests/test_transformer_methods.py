"""Transformer family: rollout, flow, Chefer et al., AttnLRP (vs LXT), Grad-CAM on patch tokens."""
import numpy as np
import pytest
import torch

from lumos.methods.transformer import (AttentionFlow, AttentionRollout, AttnLRP, CheferRelevance, attention_flow,
                                       attention_rollout, chefer_relevance, max_flow, residual_attention)
from lumos.methods.transformer.rollout import flow_graph
from lumos.models.transformer import TextEncoder, TorchTextEncoder, VisionTransformer


def _text(**kw):
    torch.manual_seed(0)
    return TextEncoder(vocab=40, dim=16, depth=2, heads=2, **kw).eval()


def _ids(n=3, t=6, seed=0):
    return np.random.default_rng(seed).integers(0, 40, (n, t))


def _random_attn(n, h, t, gen):
    return torch.softmax(torch.randn(n, h, t, t, generator=gen, dtype=torch.float64), -1)


# -- rollout ---------------------------------------------------------------------------
def test_identity_attention_rolls_out_to_identity():
    eye = torch.eye(5, dtype=torch.float64).expand(2, 3, 5, 5)
    roll = attention_rollout([eye, eye, eye])
    assert torch.allclose(roll, torch.eye(5, dtype=torch.float64).expand(2, 5, 5))


def test_two_layer_rollout_by_hand():
    a1 = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    a2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # Â = (A + I)/2, rows already sum to 1
    h1 = torch.tensor([[0.75, 0.25], [0.0, 1.0]], dtype=torch.float64)
    h2 = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    expected = h2 @ h1  # [[0.375, 0.625], [0.375, 0.625]]
    roll = attention_rollout([a1[None, None], a2[None, None]])[0]
    assert torch.allclose(roll, expected)
    assert torch.allclose(roll, torch.tensor([[0.375, 0.625], [0.375, 0.625]], dtype=torch.float64))


def test_rollout_equals_naive_loop():
    gen = torch.Generator().manual_seed(1)
    attns = [_random_attn(2, 3, 5, gen) for _ in range(4)]
    roll = attention_rollout(attns)
    for r in range(2):
        out = np.eye(5)
        for a in attns:
            m = a[r].mean(0).numpy() + np.eye(5)
            m = m / m.sum(1, keepdims=True)
            out = m @ out
        np.testing.assert_allclose(roll[r].numpy(), out, rtol=1e-12)


def test_rollout_explainer_text_and_cls_option():
    m = _text()
    ids = _ids()
    e = AttentionRollout(m).explain(ids)
    assert e.values.shape == (3, 6)
    np.testing.assert_allclose(e.values, e.extras["rollout"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(e.values.sum(1), 1.0, rtol=1e-5)  # rows of a product of stochastic matrices
    mean = AttentionRollout(m, cls_token=None).explain(ids)
    np.testing.assert_allclose(mean.values, e.extras["rollout"].mean(1), rtol=1e-6)


def test_rollout_reads_multihead_attention_of_transformer_encoder():
    torch.manual_seed(0)
    m = TorchTextEncoder(vocab=40, dim=16, depth=2, heads=2).eval()
    ids = _ids()
    e = AttentionRollout(m).explain(ids)
    # the same maps recomputed by calling each layer's self_attn with need_weights=True
    x = torch.as_tensor(ids)
    h = m.tokens(x) + m.positions(torch.arange(6).expand(3, -1))
    attns = []
    with torch.no_grad():
        for layer in m.encoder.layers:
            _, a = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
            attns.append(a)
            h = layer(h)
    np.testing.assert_allclose(e.values, attention_rollout(attns)[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_rollout_on_vit_lays_patches_on_the_grid():
    torch.manual_seed(0)
    v = VisionTransformer(image_size=8, patch=2, dim=16, depth=2, heads=2).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    e = AttentionRollout(v).explain(x)
    assert e.values.shape == (2, 1, 8, 8)
    patches = e.extras["tokens"][:, 1:].reshape(2, 4, 4)
    np.testing.assert_allclose(e.values[:, 0, ::2, ::2], patches, rtol=1e-6)
    np.testing.assert_allclose(e.values[:, 0, 1::2, 1::2], patches, rtol=1e-6)


# -- flow ------------------------------------------------------------------------------
def test_max_flow_matches_networkx():
    nx = pytest.importorskip("networkx")
    gen = torch.Generator().manual_seed(2)
    maps = torch.stack([residual_attention(_random_attn(1, 2, 4, gen))[0] for _ in range(3)]).numpy()
    cap, sink = flow_graph(maps, 0)
    g = nx.DiGraph()
    for i, j in zip(*np.nonzero(cap)):
        g.add_edge(int(i), int(j), capacity=float(cap[i, j]))
    for src in range(4):
        assert max_flow(cap, src, sink) == pytest.approx(nx.maximum_flow_value(g, src, sink), abs=1e-12)


def test_flow_of_identity_attention_and_explainer():
    eye = torch.eye(4, dtype=torch.float64).expand(1, 2, 4, 4)
    flow = attention_flow([eye, eye], cls_token=0)
    np.testing.assert_allclose(flow[0].numpy(), [1, 0, 0, 0], atol=1e-12)
    e = AttentionFlow(_text()).explain(_ids(n=2, t=5))
    assert e.values.shape == (2, 5) and (e.values >= 0).all()


# -- Chefer ----------------------------------------------------------------------------
def test_chefer_equals_naive_loop_and_gradients():
    m = _text()
    ids = _ids()
    e = CheferRelevance(m).explain(ids, target=2)
    # naive: recompute attention with autograd by hand
    store = []
    handles = [b.attn.softmax.register_forward_hook(lambda mod, i, o: store.append(o)) for b in m.blocks]
    emb_hook = m.tokens.register_forward_hook(lambda mod, i, o: o.detach().requires_grad_(True))
    logits = m(torch.as_tensor(ids))
    (logits[:, 2].sum()).backward(inputs=store)
    for h in handles + [emb_hook]:
        h.remove()
    for r in range(3):
        R = np.eye(6)
        for a in store:
            cam = (a.grad[r] * a[r]).detach().numpy()
            ebar = np.maximum(cam, 0).mean(0)
            R = R + ebar @ R
        np.testing.assert_allclose(e.values[r], R[0], rtol=1e-5, atol=1e-6)


def test_chefer_by_hand_one_layer():
    a = torch.tensor([[[[0.6, 0.4], [0.3, 0.7]]]], dtype=torch.float64)
    g = torch.tensor([[[[1.0, -2.0], [0.5, 1.0]]]], dtype=torch.float64)
    # Ē = ((g ⊙ a)+) = [[0.6, 0], [0.15, 0.7]]; R = I + Ē
    r = chefer_relevance([a], [g])[0]
    assert torch.allclose(r, torch.tensor([[1.6, 0.0], [0.15, 1.7]], dtype=torch.float64))


def test_chefer_on_multihead_attention_matches_lumos_twin():
    """nn.MultiheadAttention's recomputed output keeps the model's scores and gives gradients."""
    torch.manual_seed(0)
    m = TorchTextEncoder(vocab=40, dim=16, depth=2, heads=2).eval()
    ids = _ids()
    e = CheferRelevance(m).explain(ids)
    with torch.no_grad():
        ref = m(torch.as_tensor(ids))
    np.testing.assert_allclose(e.prediction, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert e.values.shape == (3, 6) and np.isfinite(e.values).all() and (e.values[:, 0] >= 1 - 1e-6).all()


# -- Hugging Face ----------------------------------------------------------------------
def _hf_bert():
    tr = pytest.importorskip("transformers")
    cfg = tr.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=3,
                        attn_implementation="eager")
    torch.manual_seed(0)
    return tr.BertForSequenceClassification(cfg).eval()


def test_hf_bert_rollout_and_chefer():
    m = _hf_bert()
    ids = _ids()
    e = AttentionRollout(m).explain(ids)
    with torch.no_grad():
        out = m(torch.as_tensor(ids), output_attentions=True)
    np.testing.assert_allclose(e.values, attention_rollout(out.attentions)[:, 0].numpy(), rtol=1e-5)
    c = CheferRelevance(m).explain(ids)
    assert c.values.shape == (3, 6) and np.isfinite(c.values).all()


def test_hf_vit_rollout_on_the_patch_grid():
    tr = pytest.importorskip("transformers")
    cfg = tr.ViTConfig(image_size=8, patch_size=2, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, num_labels=3, attn_implementation="eager")
    torch.manual_seed(0)
    m = tr.ViTForImageClassification(cfg).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    e = AttentionRollout(m).explain(x)
    assert e.values.shape == (2, 1, 8, 8)
    c = CheferRelevance(m).explain(x)
    assert c.values.shape == (2, 1, 8, 8) and np.isfinite(c.values).all()


# -- AttnLRP ---------------------------------------------------------------------------
def test_attnlrp_conserves_without_biases_up_to_softmax_absorption():
    torch.manual_seed(0)
    m = TextEncoder(vocab=40, dim=16, depth=2, heads=2, bias=False).double().eval()
    with torch.no_grad():  # no positions: the token embeddings carry all of the input's relevance
        m.positions.weight.zero_()
    e = AttnLRP(m, epsilon=1e-12).explain(_ids(), target=1)
    logit = e.prediction[:, 1]
    assert np.abs(e.extras["softmax_absorbed"]).max() > 1e-4  # the Taylor rule is not conservative
    np.testing.assert_allclose(e.values.sum(1) + e.extras["softmax_absorbed"], logit, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(e.delta, -e.extras["softmax_absorbed"], atol=1e-10)


def test_attnlrp_rules_conserve_without_biases():
    from lumos.methods.transformer import LayerNormIdentity, SoftmaxTaylor, UniformMatMul
    from lumos.models.transformer import MatMul

    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64), torch.randn(2, 4, 5, generator=gen,
                                                                                   dtype=torch.float64)
    mm = MatMul(0.5)
    out = mm(a, b)
    R = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    ra, rb = UniformMatMul(0.0).backward(mm, (a, b), out, R)
    assert float(ra.sum() + rb.sum()) == pytest.approx(float(R.sum()), rel=1e-10)
    assert float(ra.sum()) == pytest.approx(float(rb.sum()), rel=1e-10)  # each factor half (per output element)
    ln = torch.nn.LayerNorm(4, bias=False).double()
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    Rl = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    (rx,) = LayerNormIdentity(0.0).backward(ln, (x,), ln(x).detach(), Rl)
    np.testing.assert_allclose(rx.sum(-1).detach().numpy(), Rl.sum(-1).numpy(), rtol=1e-10)
    sm = torch.nn.Softmax(-1)
    (rs,) = SoftmaxTaylor().backward(sm, (x,), sm(x), Rl)
    expected = x * (Rl - sm(x) * Rl.sum(-1, keepdim=True))
    assert torch.allclose(rs, expected)


@pytest.mark.parametrize("kind,epsilon", [("text", 1e-9), ("vit", 1e-9), ("text", 0.0), ("vit", 0.0)])
def test_attnlrp_equals_lxt(kind, epsilon):
    pytest.importorskip("lxt")
    from lumos.methods.transformer.reference import lxt_attnlrp

    torch.manual_seed(0)
    if kind == "text":
        m, x = _text(), _ids()
    else:
        m = VisionTransformer(image_size=8, patch=2, dim=16, depth=2, heads=2).eval()
        x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    e = AttnLRP(m, epsilon=epsilon).explain(x, target=1)
    ref = lxt_attnlrp(m, torch.as_tensor(x), 1).numpy()
    np.testing.assert_allclose(e.values, ref, atol=1e-5 * np.abs(ref).max())
    assert np.abs(e.values - ref).max() < 1e-5
    if epsilon == 0:  # the same rules: float32 rounding only
        assert np.abs(e.values - ref).max() <= 1e-6 * np.abs(ref).max()


class _Masked(torch.nn.Module):
    """A TextEncoder called with a fixed attention mask (lumos's text layout gives transformer
    methods the ids alone)."""

    def __init__(self, model, mask):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, ids):
        return self.model(ids, self.mask)


def _rule_by_rule(model, x, target, epsilon):
    """AttnLRP as relevance flowing through lumos BackwardRules (attach_rules on every module),
    the definition the Gradient x Input implementation must equal."""
    from lumos.core.hooks import attach_rules, trace_calls
    from lumos.methods.transformer import attnlrp_composite

    composite, softmax = attnlrp_composite(epsilon)
    with torch.no_grad(), trace_calls(model) as calls:
        model(x)
    rules = composite.resolve(list(calls))
    grab = {}

    def start(module, inputs, output):
        if "e" not in grab:
            grab["e"] = output.detach().requires_grad_(True)
            return grab["e"]

    tokens = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)) if x.ndim == 2 else None
    handle = tokens.register_forward_hook(start) if tokens is not None else None
    if tokens is None:
        grab["e"] = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad(), attach_rules(rules):
            scores = model(grab["e"] if tokens is None else x)
            sel = torch.zeros_like(scores)
            sel[:, target] = scores[:, target]
            (rel,) = torch.autograd.grad(scores, grab["e"], sel)
    finally:
        if handle is not None:
            handle.remove()
    return (rel.sum(-1) if x.ndim == 2 else rel).numpy(), torch.stack(softmax.absorbed).sum(0).numpy()


@pytest.mark.parametrize("kind,epsilon", [("text", 1e-2), ("text", 0.0), ("vit", 1e-2), ("vit", 0.0),
                                          ("mask", 1e-3), ("mask", 0.0)])
def test_attnlrp_gradient_form_equals_rule_by_rule(kind, epsilon):
    """The one forward + backward implementation (rules as autograd Functions in the view's
    forward) gives the relevance and softmax absorption of the BackwardRules, in float64."""
    torch.manual_seed(1)
    if kind == "vit":
        m = VisionTransformer(image_size=8, patch=2, dim=16, depth=2, heads=2).double().eval()
        x = torch.as_tensor(np.random.default_rng(1).normal(size=(3, 3, 8, 8)))
    else:
        m = TextEncoder(vocab=40, dim=16, depth=2, heads=2).double().eval()
        x = torch.as_tensor(_ids(4, 7, seed=2))
        if kind == "mask":  # masked keys: -inf scores in the softmax
            mask = torch.ones(4, 7, dtype=torch.bool)
            mask[1, 5:] = mask[3, 3:] = False
            m = _Masked(m, mask)
    e = AttnLRP(m, epsilon=epsilon).explain(x.numpy(), target=2)
    ref, absorbed = _rule_by_rule(m, x, 2, epsilon)
    np.testing.assert_allclose(e.values, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(e.extras["softmax_absorbed"], absorbed, rtol=1e-9, atol=1e-12)
    assert np.abs(absorbed).max() > 1e-6


def test_attnlrp_fused_attention_equals_module_rules():
    """SelfAttention's fused core and the per-module functions (taken for a subclass that
    overrides forward) agree, masked -inf scores included."""
    from lumos.models.transformer import SelfAttention

    class Plain(SelfAttention):
        def forward(self, x, mask=None):
            return super().forward(x, mask)

    torch.manual_seed(2)
    m = TextEncoder(vocab=40, dim=16, depth=2, heads=2).double().eval()
    x, mask = _ids(3, 6, seed=3), torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    masked = _Masked(m, mask)
    for eps in (0.0, 1e-3):
        fused = AttnLRP(masked, epsilon=eps).explain(x, target=0)
        for b in m.blocks:
            b.attn.__class__ = Plain
        try:
            modules = AttnLRP(masked, epsilon=eps).explain(x, target=0)
        finally:
            for b in m.blocks:
                b.attn.__class__ = SelfAttention
        np.testing.assert_allclose(fused.values, modules.values, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(fused.extras["softmax_absorbed"], modules.extras["softmax_absorbed"],
                                   rtol=1e-10, atol=1e-13)


class _Broadcast(torch.nn.Module):
    """A MatMul whose second factor broadcasts (a fixed (4, 3) matrix): the per-module fallback."""

    def __init__(self):
        super().__init__()
        from lumos.models.transformer import MatMul

        self.flat, self.fc, self.mm, self.out = torch.nn.Flatten(), torch.nn.Linear(6, 8), MatMul(0.5), \
            torch.nn.Linear(6, 3)
        self.register_buffer("w", torch.randn(4, 3))

    def forward(self, x):
        return self.out(self.mm(self.fc(self.flat(x)).view(-1, 2, 4), self.w).flatten(1))


@pytest.mark.parametrize("epsilon", [0.0, 1e-2])
def test_attnlrp_broadcast_matmul_equals_rule_by_rule(epsilon):
    torch.manual_seed(0)
    m = _Broadcast().double().eval()
    x = torch.randn(3, 1, 2, 3, dtype=torch.float64)
    e = AttnLRP(m, epsilon=epsilon).explain(x.numpy(), target=1)
    from lumos.core.hooks import attach_rules, trace_calls
    from lumos.methods.transformer import attnlrp_composite

    with torch.no_grad(), trace_calls(m) as calls:
        m(x)
    xg = x.clone().requires_grad_(True)
    with attach_rules(attnlrp_composite(epsilon)[0].resolve(list(calls))):
        scores = m(xg)
        (ref,) = torch.autograd.grad(scores, xg, torch.zeros_like(scores).index_fill_(1, torch.tensor([1]), 1.0)
                                     * scores.detach())
    np.testing.assert_allclose(e.values, ref.numpy(), rtol=1e-10, atol=1e-14)


def test_attnlrp_leaves_the_model_as_found():
    m = _text()
    forwards = {name: dict(mod.__dict__).get("forward") for name, mod in m.named_modules()}
    hooks = sum(len(mod._forward_hooks) + len(mod._forward_pre_hooks) for mod in m.modules())
    AttnLRP(m, epsilon=0.0).explain(_ids(), target=1)
    assert {name: dict(mod.__dict__).get("forward") for name, mod in m.named_modules()} == forwards
    assert sum(len(mod._forward_hooks) + len(mod._forward_pre_hooks) for mod in m.modules()) == hooks


def test_attnlrp_refuses_a_layer_without_rule_when_it_runs():
    m = _text()
    m.blocks[0].act = torch.nn.Hardswish()
    with pytest.raises(ValueError, match="no rule for layer 'blocks.0.act'"):
        AttnLRP(m).explain(_ids(), target=1)
    m.blocks[0].act, m.unused = torch.nn.GELU(), torch.nn.Hardswish()  # never runs: no error
    assert np.isfinite(AttnLRP(m).explain(_ids(), target=1).values).all()


def test_attnlrp_refuses_multihead_attention():
    with pytest.raises(ValueError, match="MultiheadAttention"):
        AttnLRP(TorchTextEncoder(vocab=40, dim=16, depth=1, heads=2))


# -- Grad-CAM / IG on patch tokens ------------------------------------------------------
def test_gradcam_on_vit_patch_tokens_without_reshape_code():
    from lumos.methods.cam import GradCAM

    torch.manual_seed(0)
    v = VisionTransformer(image_size=8, patch=2, dim=16, depth=2, heads=2).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    e = GradCAM(v, "blocks.1", channel_axis=-1, relu=False).explain(x, target=0)
    assert e.values.shape == (2, 1, 8, 8)
    # by hand: tokens (N, 17, D), CLS dropped, grid 4x4
    store = {}
    h = v.blocks[1].register_forward_hook(lambda mod, i, o: store.setdefault("a", o))
    xt = torch.as_tensor(x)
    out = v(xt)
    h.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(out[:, 0].sum(), a)
    cam = torch.einsum("ntd,nd->nt", a, g.mean(1)).detach()[:, 1:].reshape(2, 4, 4)
    np.testing.assert_allclose(e.extras["layer_map"], cam.numpy(), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_on_vit_pixels():
    from lumos.methods.gradient import IntegratedGradients

    torch.manual_seed(0)
    v = VisionTransformer(image_size=8, patch=2, dim=16, depth=1, heads=2).double().eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    e = IntegratedGradients(v, n_steps=64).explain(x, target=0)
    assert e.values.shape == x.shape
    assert np.abs(e.delta).max() < 5e-2 * max(1.0, np.abs(e.prediction[:, 0]).max())
