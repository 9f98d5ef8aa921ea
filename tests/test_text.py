"""Text as a modality (#17 item 2): token ids in, relevance per token/word out.

Exact properties (IG completeness on the embeddings against f(baseline tokens) computed
independently, pads exactly 0, word sums preserved, grouping by pad pattern invisible in
the results, the user's model untouched) and the planted-token control: on small models
trained in seconds on :func:`lumos.data.synthetic_text.make_planted_text`, every text method
puts most relevance on the planted token.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.core.explanation import Explanation
from lumos.core.text import (Vocabulary, aggregate_words, find_embedding, word_ids_from_offsets,
                             word_ids_from_tokens)
from lumos.data.synthetic_text import make_planted_text
from lumos.models.train import fit
from lumos.models.transformer import TextEncoder

torch.set_num_threads(1)


class TinyCNN(nn.Module):
    """Embedding (pad 0) -> Conv1d -> ReLU -> max over time -> Linear."""

    def __init__(self, vocab: int, dim: int = 16, maps: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, maps, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(maps, 2)

    def forward(self, ids):
        ids = ids.round().long() if ids.is_floating_point() else ids
        return self.fc(self.flat(self.pool(self.act(self.conv(self.emb(ids).transpose(1, 2))))))


class MaskedMean(nn.Module):
    """Mean of the embeddings over the mask it takes as ``attention_mask`` (no padding_idx)."""

    def __init__(self, vocab: int, dim: int = 8):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.fc = nn.Sequential(nn.Linear(dim, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, ids, attention_mask=None):
        e = self.emb(ids)
        m = torch.ones(ids.shape, dtype=e.dtype) if attention_mask is None else attention_mask.to(e.dtype)
        return self.fc((e * m[..., None]).sum(1) / m.sum(1, keepdim=True))


@pytest.fixture(scope="module")
def data():
    return make_planted_text(400, seed=0)


@pytest.fixture(scope="module")
def cnn(data):
    torch.manual_seed(0)
    model = fit(TinyCNN(len(data.vocab)), data.ids, data.labels, epochs=15, lr=1e-2, seed=0)
    acc = (model(torch.as_tensor(data.ids)).argmax(1).numpy() == data.labels).mean()
    assert acc > 0.97, acc
    return model


@pytest.fixture(scope="module")
def cls_data():
    return make_planted_text(400, seed=1, cls=True)


@pytest.fixture(scope="module")
def encoder(cls_data):
    torch.manual_seed(0)
    model = TextEncoder(vocab=len(cls_data.vocab), dim=16, depth=1, heads=2, num_classes=2, max_len=16)
    model = fit(model, cls_data.ids, cls_data.labels, epochs=25, lr=3e-3, seed=0)
    acc = (model(torch.as_tensor(cls_data.ids)).argmax(1).numpy() == cls_data.labels).mean()
    assert acc > 0.95, acc
    return model


def positives(d, n=24):
    rows = np.flatnonzero(d.labels == 1)[:n]
    return rows, d.ids[rows], d.planted_position[rows]


# -- exact properties ----------------------------------------------------------------------
def test_ig_completeness_against_the_baseline_tokens(cnn, data):
    model = cnn.double()
    try:
        x = data.ids[:16]
        exp = lumos.explain(model, x, "ig", n_steps=200, target=1)
        ref = np.where(x != 0, 0, x)  # baseline token = pad (the embedding's padding_idx) at every real position
        with torch.no_grad():
            f_x = model(torch.as_tensor(x))[:, 1].numpy()
            f_b = model(torch.as_tensor(ref))[:, 1].numpy()
        assert exp.values.shape == x.shape
        np.testing.assert_allclose(exp.base_value, f_b, atol=1e-12)
        np.testing.assert_allclose(exp.values.sum(1), f_x - f_b, atol=2e-3 * np.abs(f_x - f_b).max())
        np.testing.assert_allclose(exp.delta, exp.values.sum(1) - (f_x - f_b), atol=1e-10)
        assert exp.meta["layout"] == "text" and exp.meta["embedding"] == "emb"
    finally:
        cnn.float()


def test_ig_baseline_token_and_token_id_baselines(cnn, data):
    x = data.ids[:6]
    a = lumos.explain(cnn, x, "ig", baseline_token=2, n_steps=32)
    b = lumos.explain(cnn, x, "ig", baseline=2, n_steps=32)  # an int baseline is a token id
    c = lumos.explain(cnn, x, "ig", baseline=np.where(x != 0, 2, 0), n_steps=32)  # (N, T) ids
    np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    np.testing.assert_allclose(a.values, c.values, atol=1e-6)
    with torch.no_grad():
        f_b = cnn(torch.as_tensor(np.where(x != 0, 2, 0))).numpy()
    np.testing.assert_allclose(a.base_value, f_b[np.arange(6), a.target], atol=1e-5)


def test_pad_positions_get_zero(cnn, data):
    x = data.ids[:10]
    pads = x == 0
    assert pads.any()
    for method, opts in [("ig", {"n_steps": 16}), ("saliency", {}), ("gradient_x_input", {}),
                         ("smoothgrad", {"base": "gradient_x_input", "n_samples": 4}), ("deeplift", {}),
                         ("lrp", {"composite": "epsilon"}), ("occlusion", {}),
                         ("kernel_shap", {"n_samples": 64}), ("lime", {"n_samples": 64})]:
        exp = lumos.explain(cnn, x, method, **opts)
        assert exp.values.shape == x.shape, method
        assert np.all(exp.values[pads] == 0), method
        assert np.array_equal(exp.extras["attention_mask"], ~pads), method


def test_attention_mask_is_passed_and_zeroes_pads():
    torch.manual_seed(0)
    model = MaskedMean(20)
    rng = np.random.default_rng(0)
    x = rng.integers(3, 20, (5, 7))
    mask = np.ones_like(x, dtype=bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    x[~mask] = 0
    exp = lumos.explain(model, x, "ig", attention_mask=mask, baseline_token=2, n_steps=64)
    assert np.all(exp.values[~mask] == 0)
    with torch.no_grad():
        f = model(torch.as_tensor(x), attention_mask=torch.as_tensor(mask))
    np.testing.assert_allclose(exp.prediction, f.numpy(), atol=1e-6)  # the mask reached the model
    np.testing.assert_allclose(exp.delta, 0, atol=1e-4)
    # each row explained alone (its own pad pattern) gives the same values
    for i in range(len(x)):
        one = lumos.explain(model, x[i:i + 1], "ig", attention_mask=mask[i:i + 1], baseline_token=2, n_steps=64)
        np.testing.assert_allclose(one.values[0], exp.values[i], atol=1e-6)


def test_grouping_keeps_per_row_seeds(cnn, data):
    x = data.ids[:8]
    exp = lumos.explain(cnn, x, "smoothgrad", base="gradient_x_input", n_samples=6, seed=3)
    perm = np.array([5, 2, 7, 0, 1, 6, 3, 4])
    again = lumos.explain(cnn, x[perm], "smoothgrad", base="gradient_x_input", n_samples=6, seed=3)
    # rows keep their batch position for seeds: the same rows at other positions draw other noise,
    # but the same batch gives the same result whatever the grouping of its pad patterns
    same = lumos.explain(cnn, x, "smoothgrad", base="gradient_x_input", n_samples=6, seed=3, batch_size=7)
    np.testing.assert_allclose(same.values, exp.values, atol=1e-6)
    assert again.values.shape == exp.values.shape


def test_words_aggregation_preserves_sums(cnn, data):
    x = data.ids[:5]
    words = np.where(x != 0, np.arange(x.shape[1]) // 2, -1)
    exp = lumos.explain(cnn, x, "ig", words=words, tokens=data.tokens[:5], n_steps=16)
    for i, pairs in enumerate(exp.words()):
        assert len(pairs) == int(words[i].max()) + 1
        np.testing.assert_allclose(sum(v for _, v in pairs), exp.values[i].sum(), atol=1e-6)
        assert pairs[0][0] == "".join(data.tokens[i][:2])
    assert exp.tokens.shape == x.shape
    occ = lumos.explain(cnn, x, "occlusion", words=words)  # word groups as features
    for i in range(len(x)):
        w = aggregate_words(occ.values[i:i + 1], words[i:i + 1])[0]
        np.testing.assert_allclose(w.sum(), occ.values[i].sum(), atol=1e-9)
        for k in range(len(w)):  # the tokens of a word share its value equally
            np.testing.assert_allclose(occ.values[i][words[i] == k], w[k] / (words[i] == k).sum())


def test_word_occlusion_replaces_by_the_baseline_token(cnn, data):
    x = data.ids[:4]
    exp = lumos.explain(cnn, x, "occlusion", baseline_token=2)
    for i in range(4):
        t = 1
        y = x[i:i + 1].copy()
        y[0, t] = 2
        with torch.no_grad():
            d = cnn(torch.as_tensor(x[i:i + 1]))[0, exp.target[i]] - cnn(torch.as_tensor(y))[0, exp.target[i]]
        np.testing.assert_allclose(exp.values[i, t], float(d), rtol=1e-5, atol=1e-6)  # float32, batched


def test_word_ids_from_tokens_and_offsets():
    assert word_ids_from_tokens(["[CLS]", "un", "##believ", "##able", "film", "[SEP]", "[PAD]"]).tolist() == \
        [-1, 0, 0, 0, 1, -1, -1]
    assert word_ids_from_tokens(["<s>", "\u2581un", "believ", "able", "\u2581film", "</s>"]).tolist() == \
        [-1, 0, 0, 0, 1, -1]
    text = "unbelievable film!"
    offsets = [(0, 0), (0, 2), (2, 8), (8, 12), (13, 17), (17, 18), (0, 0)]
    assert word_ids_from_offsets(offsets, text).tolist() == [-1, 0, 0, 0, 1, 1, -1]


def test_vocabulary_round_trip():
    v = Vocabulary.from_sentences(["A great film", "a dull film"])
    ids, mask = v.encode(["a great film", "dull unknownword"], max_len=5, cls=True)
    assert ids[0, 0] == v.cls and v.words[ids[0, 1]] == "a"
    assert ids[1, 2] == v.unk and mask.sum(1).tolist() == [4, 3]
    assert v.decode(ids)[1].tolist() == ["<cls>", "dull", "<unk>", "", ""]


def test_model_untouched_and_save_load(cnn, data, tmp_path):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    flags = [p.requires_grad for p in cnn.parameters()]
    exp = lumos.explain(cnn, data.ids[:3], "ig", tokens=data.tokens[:3], n_steps=8)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in cnn.modules())
    assert [p.requires_grad for p in cnn.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    back = Explanation.load(exp.save(tmp_path / "text.npz"))
    assert back.words(1) == exp.words(1) and back.tokens.tolist() == exp.tokens.tolist()


def test_errors_name_the_problem(cnn, data):
    with pytest.raises(ValueError, match="attention_mask has shape"):
        lumos.explain(cnn, data.ids[:2], "ig", attention_mask=np.ones((2, 3)))
    with pytest.raises(ValueError, match="embedding='nope' is not a module"):
        lumos.explain(cnn, data.ids[:2], "ig", embedding="nope")
    with pytest.raises(ValueError, match="apply to token ids"):
        lumos.explain(cnn, np.random.rand(2, 4).astype(np.float32), "ig", attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="baseline_token must be a token id"):
        lumos.explain(cnn, data.ids[:2], "ig", baseline_token=-1)
    assert find_embedding(cnn, torch.as_tensor(data.ids[:1]), "emb") == "emb"


def test_embedding_found_among_several(encoder, cls_data):
    # TextEncoder embeds tokens and positions: the layer that reads the ids is chosen
    assert find_embedding(encoder, torch.as_tensor(cls_data.ids[:1])) == "tokens"


# -- the planted token -------------------------------------------------------------------
CNN_METHODS = [("ig", {"n_steps": 32}), ("saliency", {}), ("gradient_x_input", {}),
               ("smoothgrad", {"base": "gradient_x_input", "n_samples": 8, "noise_level": 0.1}),
               ("deeplift", {}), ("lrp", {"composite": "epsilon"}), ("occlusion", {"baseline_token": 2}),
               ("lime", {"n_samples": 200, "baseline_token": 2}), ("kernel_shap", {"n_samples": 200, "baseline_token": 2})]


@pytest.mark.parametrize("method,opts", CNN_METHODS, ids=[m for m, _ in CNN_METHODS])
def test_planted_token_gets_most_relevance_cnn(cnn, data, method, opts):
    rows, x, where = positives(data)
    exp = lumos.explain(cnn, x, method, target=1, **opts)
    top = np.argmax(exp.values, axis=1)
    assert (top == where).mean() >= 0.9, (method, (top == where).mean())
    share = exp.values[np.arange(len(x)), where] / np.abs(exp.values).sum(1)
    assert np.median(share) > 0.4, (method, np.median(share))


# Gradient x Input on a transformer's token embeddings does not localise the cue (29 % of the
# sentences here, against 100 % for IG), and lumos computes it as captum does: in this one-block
# pre-norm encoder a non-<cls> token reaches the output only through LayerNorm(e + p), which is
# scale invariant, so g·(e + p) = 0 and GxI = −g·p, the gradient times the position embedding
# (tests/test_text_gxi_transformer.py). It is left out of the claim rather than tuned until it passes.
ENCODER_METHODS = [("ig", {"n_steps": 32}), ("attnlrp", {}), ("chefer", {}),
                   ("occlusion", {"baseline_token": 2}), ("kernel_shap", {"n_samples": 200, "baseline_token": 2})]


@pytest.mark.parametrize("method,opts", ENCODER_METHODS, ids=[m for m, _ in ENCODER_METHODS])
def test_planted_token_gets_most_relevance_transformer(encoder, cls_data, method, opts):
    rows, x, where = positives(cls_data)
    exp = lumos.explain(encoder, x, method, target=1, **opts)
    values = exp.values.copy()
    values[:, 0] = -np.inf  # the <cls> position is not a word of the sentence
    top = np.argmax(values, axis=1)
    assert (top == where).mean() >= 0.9, (method, (top == where).mean())


def test_ig_equals_captum_layer_integrated_gradients(encoder, cls_data):
    captum = pytest.importorskip("captum.attr")
    x = cls_data.ids[:6]
    exp = lumos.explain(encoder, x, "ig", target=1, n_steps=40, baseline_token=0)
    idt = torch.as_tensor(x)
    ref = captum.LayerIntegratedGradients(encoder, encoder.tokens).attribute(
        idt, baselines=torch.zeros_like(idt), target=1, n_steps=40, method="gausslegendre")
    # TextEncoder has no padding_idx and no pad_token was given: every position is a token, as for captum
    np.testing.assert_allclose(exp.values, ref.sum(-1).detach().numpy(), atol=1e-5)


def test_applicability_of_the_text_layout(encoder):
    from lumos.core import registry

    assert registry.get("ig").applicability(encoder, "text") is None
    assert registry.get("occlusion").applicability(encoder, "text") is None
    assert "nn.Embedding" in registry.get("ig").applicability(nn.Linear(3, 2), "text")
