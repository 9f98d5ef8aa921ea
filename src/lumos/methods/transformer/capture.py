"""Attention maps ``A`` (one ``(N, heads, T, T)`` tensor per layer, in forward order) and
the scores of the same forward pass, from three kinds of models:

- lumos reference transformers (:mod:`lumos.models.transformer`): the output of every
  ``SelfAttention.softmax`` module, which is the very tensor multiplied with ``V``;
- models built from ``nn.MultiheadAttention`` (``nn.TransformerEncoder`` included): a
  forward pre-hook on each attention module of the call's private view forces
  ``need_weights=True, average_attn_weights=False`` (``nn.TransformerEncoderLayer`` asks
  for ``need_weights=False``), and the fused fast path, which skips the module call, is
  turned off for the call (``torch.backends.mha.set_fastpath_enabled``). When gradients
  with respect to ``A`` are needed (Chefer et al.), a forward hook recomputes the module's
  output as ``out_proj(A · V)`` from the returned weights, so that the score depends on
  the very tensor that is captured (the weights torch returns are a copy outside the graph
  of its output);
- Hugging Face models (``output_attentions=True``; eager attention is selected on the
  view, since fused kernels return no weights): ``BertForSequenceClassification``,
  ``ViTForImageClassification`` and the like.

Token ids are passed as int64 tensors (integer inputs are never cast to floats).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.model import _first, run_model


def model_kind(model: nn.Module) -> str:
    """``"lumos"``, ``"mha"`` or ``"hf"``: where the attention maps come from."""
    from lumos.models.transformer import SelfAttention

    if any(isinstance(m, SelfAttention) for m in model.modules()):
        return "lumos"
    if hasattr(model, "config") and hasattr(model.config, "output_attentions"):
        return "hf"
    if any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        return "mha"
    raise ValueError(
        f"{type(model).__name__} has no attention lumos can read: use nn.MultiheadAttention "
        "(nn.TransformerEncoder), a Hugging Face model (output_attentions) or lumos.models.TextEncoder / "
        "VisionTransformer")


def to_model_input(adapter, x: np.ndarray) -> torch.Tensor:
    """Integer arrays (token ids) as int64 on the model's device, floats in its dtype."""
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.long, device=adapter.device)
    return adapter.to_tensor(x)


def _mha_pre_hook(module, args, kwargs):
    kwargs = dict(kwargs)
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args, kwargs


def _mha_value(module: nn.MultiheadAttention, args, kwargs) -> torch.Tensor:
    value = args[2] if len(args) > 2 else kwargs["value"]
    e = module.embed_dim
    if module._qkv_same_embed_dim:
        w = module.in_proj_weight[2 * e:]
    else:
        w = module.v_proj_weight
    b = None if module.in_proj_bias is None else module.in_proj_bias[2 * e:]
    if not module.batch_first:
        value = value.transpose(0, 1)
    return F.linear(value, w, b)


def _make_mha_hook(store: list, recompute: bool, reduce=None):
    def hook(module, args, kwargs, output):
        out, weights = output
        if weights is None or weights.ndim != 4:
            raise ValueError(f"{type(module).__name__} returned no per-head attention weights")
        if not recompute:
            store.append(weights if reduce is None else reduce(weights))
            return None
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("attention with bias_k/bias_v or add_zero_attn: the output cannot be recomputed from "
                             "the weights; gradients with respect to the attention are not available")
        if not weights.requires_grad:
            weights = weights.detach().requires_grad_(True)
        store.append(weights)
        v = _mha_value(module, args, kwargs)  # (N, S, E)
        n, s, e = v.shape
        h = module.num_heads
        v = v.view(n, s, h, e // h).transpose(1, 2)
        o = torch.matmul(weights, v).transpose(1, 2).reshape(n, weights.shape[2], e)
        o = F.linear(o, module.out_proj.weight, module.out_proj.bias)
        if not module.batch_first:
            o = o.transpose(0, 1)
        return o, weights

    return hook


def _graph_start(module, inputs, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point() and not output.requires_grad:
        return output.detach().requires_grad_(True)
    return None


@contextlib.contextmanager
def _fastpath_off():
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def attention_hooks(model: nn.Module, kind: str, differentiable: bool, reduce=None):
    """Hooks on the call's view that fill the yielded list with each layer's ``A`` during
    a forward pass (nothing for Hugging Face models, which return them). ``reduce``
    (without gradients only) maps each ``(N, H, T, T)`` map to what is kept, e.g. the
    heads fused to ``(N, 1, T, T)``, so that only that is held for the whole pass."""
    if reduce is not None and differentiable:
        raise ValueError("reduce= keeps a reduced copy of the attention; it cannot be used with gradients")
    store: list = []
    handles = []
    with contextlib.ExitStack() as stack:
        if differentiable:  # token ids and frozen parameters: start the graph at the embeddings
            for m in model.modules():
                if isinstance(m, nn.Embedding):
                    handles.append(m.register_forward_hook(_graph_start))
        if kind == "lumos":
            from lumos.models.transformer import SelfAttention

            def grab(module, inputs, output):
                store.append(output if reduce is None else reduce(output))

            for m in model.modules():
                if isinstance(m, SelfAttention):
                    handles.append(m.softmax.register_forward_hook(grab))
        elif kind == "mha":
            stack.enter_context(_fastpath_off())
            for m in model.modules():
                if isinstance(m, nn.MultiheadAttention):
                    handles.append(m.register_forward_pre_hook(_mha_pre_hook, with_kwargs=True))
                    handles.append(m.register_forward_hook(_make_mha_hook(store, differentiable, reduce),
                                                           with_kwargs=True))
        elif kind == "hf":
            setter = getattr(model, "set_attn_implementation", None)
            if callable(setter):
                try:
                    setter("eager")
                except Exception:  # noqa: BLE001 - older versions: the config attribute below
                    pass
            if getattr(model.config, "_attn_implementation", "eager") != "eager":
                model.config._attn_implementation = "eager"
        try:
            yield store
        finally:
            for h in handles:
                h.remove()


def forward_attentions(state, xt: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Scores ``(n, K)`` (the adapter's output transform applied) and the per-layer
    attention maps of one forward pass (the hooks of :func:`attention_hooks` must be open,
    their list in ``state.store``)."""
    model = state.call.model
    state.store.clear()
    state.call.count_rows(xt.shape[0])
    if state.kind == "hf":
        out = run_model(model, xt, output_attentions=True)
        attns = list(getattr(out, "attentions", None) or [])
        logits = out.logits if hasattr(out, "logits") else _first(out)
    else:
        logits = _first(run_model(model, xt))
        attns = list(state.store)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(logits).__name__}, expected a tensor of scores")
    scores = state.adapter.transform(logits)
    if scores.shape[0] != xt.shape[0]:
        raise ValueError(f"the model returned {scores.shape[0]} rows of scores for {xt.shape[0]} inputs")
    if not attns or any(a is None for a in attns):
        raise ValueError("the model returned no attention weights (a fused attention kernel?); build it with "
                         "attn_implementation='eager'")
    attns = [a if a.ndim == 4 else a.unsqueeze(1) for a in attns]
    return scores, attns
