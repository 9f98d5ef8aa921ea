"""Attention rollout and attention flow (Abnar & Zuidema 2020, "Quantifying Attention
Flow in Transformers", arXiv:2005.00928).

Per layer the heads are fused (mean, or max/min as in common implementations) and the
residual connection is added: ``Â = (Ā + I) / 2`` with rows renormalised to sum to 1.

- **Rollout**: ``R = Â_L ⋯ Â_1``; row ``i`` of ``R`` is how much each input token reaches
  token ``i`` of the last layer. The CLS row (``cls_token``) gives the token relevance, or
  the mean over rows for models without a CLS token (``cls_token=None``).
- **Flow**: the attention graph has a node per token and layer ``0..L`` and an edge from
  token ``j`` of layer ``l`` to token ``i`` of layer ``l+1`` with capacity ``Â_l[i, j]``. The
  relevance of input token ``j`` is the value of the maximum flow from ``(0, j)`` to the CLS
  node of layer ``L`` (to every last-layer node through a super-sink when ``cls_token=None``).
  Computed by Edmonds–Karp (breadth-first augmenting paths) on the graph's layered
  adjacency; O(T · L · T²) per augmentation, meant for short sequences as in the paper.

Neither depends on the target class; the scores and targets of the same pass are
recorded. ``extras["rollout"]`` holds the full ``(T, T)`` rollout matrix.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from lumos.core.registry import register
from lumos.methods.base import Chunk, State
from lumos.methods.transformer.capture import attention_hooks, forward_attentions, model_kind, to_model_input
from lumos.methods.transformer.tokens import TokenExplainer

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(a: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """``(N, H, T, T)`` -> ``(N, T, T)``."""
    if head_fusion == "mean":
        return a.mean(1)
    if head_fusion == "max":
        return a.amax(1)
    if head_fusion == "min":
        return a.amin(1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def residual_attention(a: torch.Tensor, head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """``Â = (Ā + I) / 2`` with rows renormalised (``residual=False``: Ā renormalised)."""
    m = fuse_heads(a, head_fusion)
    if residual:
        m = (m + torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)) / 2
    return m / m.sum(-1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)


def attention_rollout(attentions, head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """``Â_L ⋯ Â_1`` of per-layer maps ``(N, H, T, T)`` (first layer first): ``(N, T, T)``."""
    out = None
    for a in attentions:
        m = residual_attention(a.detach(), head_fusion, residual)
        out = m if out is None else torch.bmm(m, out)
    return out


def max_flow(capacity: np.ndarray, source: int, sink: int) -> float:
    """Maximum flow value from ``source`` to ``sink`` of a dense capacity matrix
    (Edmonds–Karp)."""
    cap = np.array(capacity, dtype=np.float64)
    n = cap.shape[0]
    adj = [np.flatnonzero((cap[i] > 0) | (cap[:, i] > 0)) for i in range(n)]
    total = 0.0
    while True:
        parent = np.full(n, -1)
        parent[source] = source
        queue = deque([source])
        while queue and parent[sink] < 0:
            u = queue.popleft()
            for v in adj[u]:
                if parent[v] < 0 and cap[u, v] > 1e-15:
                    parent[v] = u
                    queue.append(v)
        if parent[sink] < 0:
            return total
        v, bottleneck = sink, np.inf
        while v != source:
            u = parent[v]
            bottleneck = min(bottleneck, cap[u, v])
            v = u
        v = sink
        while v != source:
            u = parent[v]
            cap[u, v] -= bottleneck
            cap[v, u] += bottleneck
            v = u
        total += bottleneck


def flow_graph(maps: np.ndarray, cls_token: int | None) -> tuple[np.ndarray, int]:
    """Capacity matrix of the layered attention graph of ``maps`` ``(L, T, T)`` (Â per
    layer) and the sink node. Node ``l * T + i`` is token ``i`` of layer ``l``."""
    n_layers, t, _ = maps.shape
    size = (n_layers + 1) * t + (1 if cls_token is None else 0)
    cap = np.zeros((size, size))
    for layer in range(n_layers):
        src, dst = layer * t, (layer + 1) * t
        cap[src:src + t, dst:dst + t] = maps[layer].T  # j at layer l -> i at layer l+1 carries Â[i, j]
    if cls_token is None:
        sink = size - 1
        cap[n_layers * t:n_layers * t + t, sink] = np.inf
    else:
        sink = n_layers * t + (cls_token % t)
    return cap, sink


def attention_flow(attentions, head_fusion: str = "mean", residual: bool = True,
                   cls_token: int | None = 0) -> torch.Tensor:
    """Max-flow relevance ``(N, T)`` of every input token (see the module docstring)."""
    maps = torch.stack([residual_attention(a.detach(), head_fusion, residual) for a in attentions], 1)
    maps = maps.double().cpu().numpy()  # (N, L, T, T)
    n, _, t, _ = maps.shape
    out = np.zeros((n, t))
    for r in range(n):
        cap, sink = flow_graph(maps[r], cls_token)
        for j in range(t):
            out[r, j] = max_flow(cap, j, sink)
    return torch.as_tensor(out)


class _AttentionMapExplainer(TokenExplainer):
    def __init__(self, model, *, head_fusion: str = "mean", residual: bool = True, cls_token: int | None = 0,
                 **kwargs):
        super().__init__(model, cls_token=cls_token, **kwargs)
        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
        self.head_fusion, self.residual = head_fusion, bool(residual)
        self.kind = model_kind(self.model)

    def params(self):
        return {**super().params(), "head_fusion": self.head_fusion, "residual": self.residual}

    def prepare(self, x, call):
        # heads fused as each layer runs: one (n, 1, T, T) map per layer is held, not (n, H, T, T)
        fusion = self.head_fusion
        store = call.stack.enter_context(attention_hooks(call.model, self.kind, differentiable=False,
                                                         reduce=lambda a: fuse_heads(a.detach(), fusion)[:, None]))
        return State(call, store=store, kind=self.kind)

    def maps(self, x, targets, state):
        xt = to_model_input(state.adapter, x)
        with torch.no_grad():
            scores, attns = forward_attentions(state, xt)
        return scores, targets(scores), attns


@register("attention_rollout", "rollout")
class AttentionRollout(_AttentionMapExplainer):
    """Attention rollout (Abnar & Zuidema 2020): the CLS row of ``Â_L ⋯ Â_1``.

    Parameters
    ----------
    model : torch.nn.Module
        A lumos reference transformer, a model built from ``nn.MultiheadAttention``, or a
        Hugging Face model (``output_attentions``).
    head_fusion : {"mean", "max", "min"}
        How the heads of a layer are fused (the paper: mean).
    residual : bool, default True
        Add the identity for the residual connection, ``(Ā + I) / 2``.
    cls_token : int or None, default 0
        Position of the token whose row is read; None averages the rows (no CLS token).
    """

    def attribute_chunk(self, x, targets, state):
        scores, t, attns = self.maps(x, targets, state)
        roll = attention_rollout(attns, self.head_fusion, self.residual)
        tokens = self.token_rows(roll)
        return Chunk(self.lay_out(tokens, x), scores, t, {"tokens": tokens, "rollout": roll})


@register("attention_flow")
class AttentionFlow(_AttentionMapExplainer):
    """Attention flow (Abnar & Zuidema 2020): the maximum flow from each input token to
    the CLS token of the last layer through the residual-augmented attention graph.
    Parameters as :class:`AttentionRollout`. Cost grows as T³·L per token: short inputs."""

    def attribute_chunk(self, x, targets, state):
        scores, t, attns = self.maps(x, targets, state)
        tokens = attention_flow(attns, self.head_fusion, self.residual, self.cls_token).to(scores.dtype)
        return Chunk(self.lay_out(tokens, x), scores, t, {"tokens": tokens})
