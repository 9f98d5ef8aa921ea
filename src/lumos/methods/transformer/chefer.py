"""Gradient-weighted attention relevance of Chefer, Gur & Wolf (2021), "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers" (arXiv:2103.15679), for self-attention encoders (their eqs. 5-6):

    R = I (T x T);   for every layer, first to last:   R ← R + Ē · R,
    Ē = mean over heads of (∇_A y_c ⊙ A)⁺,

with ``A`` the layer's attention map (after softmax) and ``y_c`` the target score; the CLS
row of ``R`` (or the mean over rows, ``cls_token=None``) is the token relevance. Gradients
come from one backward pass per chunk, taken with respect to the captured maps.
"""
from __future__ import annotations

import torch

from lumos.core.registry import register
from lumos.methods.base import Chunk, State
from lumos.methods.transformer.capture import attention_hooks, forward_attentions, model_kind, to_model_input
from lumos.methods.transformer.tokens import TokenExplainer


def chefer_relevance(attentions, gradients) -> torch.Tensor:
    """``R`` ``(N, T, T)`` from per-layer maps and their gradients ``(N, H, T, T)``."""
    r = None
    for a, g in zip(attentions, gradients):
        e = (g * a).clamp(min=0).mean(1)
        if r is None:
            r = torch.eye(e.shape[-1], dtype=e.dtype, device=e.device).expand_as(e).clone()
        r = r + torch.bmm(e, r)
    return r


@register("chefer", "gradient_weighted_attention", "transformer_attribution")
class CheferRelevance(TokenExplainer):
    """Chefer et al. (2021) relevance of tokens: attention weighted by its positive
    gradient, accumulated over layers with the residual identity.

    Parameters
    ----------
    model : torch.nn.Module
        A lumos reference transformer, a model built from ``nn.MultiheadAttention``, or a
        Hugging Face model (``output_attentions``).
    cls_token : int or None, default 0
        The row read from ``R``; None averages the rows.
    """

    needs_gradients = True

    def __init__(self, model, *, cls_token: int | None = 0, **kwargs):
        super().__init__(model, cls_token=cls_token, **kwargs)
        self.kind = model_kind(self.model)

    def prepare(self, x, call):
        store = call.stack.enter_context(attention_hooks(call.model, self.kind, differentiable=True))
        return State(call, store=store, kind=self.kind)

    def attribute_chunk(self, x, targets, state):
        xt = to_model_input(state.adapter, x)
        if xt.is_floating_point():
            xt = xt.detach().requires_grad_(True)  # frozen parameters: the graph starts at the input
        with torch.enable_grad():
            scores, attns = forward_attentions(state, xt)
            t = targets(scores.detach())
            selected = scores.gather(1, t.view(-1, 1)).sum()
            if not selected.requires_grad or not all(a.requires_grad for a in attns):
                raise ValueError("the target score has no gradient path to the attention maps")
            grads = torch.autograd.grad(selected, attns, allow_unused=True)
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(attns, grads)]
        rel = chefer_relevance([a.detach() for a in attns], grads)
        tokens = self.token_rows(rel)
        return Chunk(self.lay_out(tokens, x), scores.detach(), t, {"tokens": tokens})
