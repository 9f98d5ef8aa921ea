"""Temporal Integrated Gradients, as tint defines it (``tint.attr.TemporalIntegratedGradients``,
Enguehard 2023, time_interpret; after Sundararajan, Taly, Yan 2017, arXiv:1703.01365).

For a sequence model that predicts from the series seen so far (it is called on the prefix
``x[..., :t+1]``), step ``t`` is explained by Integrated Gradients on that step alone, the
past held at the input and only the last step of the prefix moved along the path:

    TIG_{c,t}(x) = (x_{c,t} − b_{c,t}) · ∫₀¹ ∂f(x_{<t}, b_t + α(x_t − b_t)) / ∂x_{c,t} dα

with ``f`` the target score of the model on the prefix ``x_{0..t}`` and ``b`` the baseline
(tint takes ``baseline[..., t]``, the baseline's own step; zeros by default). The target is
the same at every step: the given one, or the class predicted for the whole series (tint
needs it given). Completeness holds step by step,

    Σ_c TIG_{c,t} = f(x_{≤t}) − f(x_{<t}, b_t)   (up to the quadrature error),

reported as ``extras["step_delta"]`` (N, T), with ``extras["step_base_value"]`` =
``f(x_{<t}, b_t)``; both endpoints ride in the same model calls as the gradient rows.

Layout: lumos's (N, C, T), time last (tint's is (N, T, C)). The rows of one prefix length
go through the model together, in chunks of the row budget, so the model sees T calls
(more only when a prefix's rows exceed the budget); results do not depend on the chunking.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int
from lumos.methods.base import Chunk, State
from lumos.methods.gradient.base import GradientExplainer, scores_and_gradients
from lumos.methods.gradient.integrated_gradients import QUADRATURES, quadrature


class _WithPast:
    """An adapter seen by :func:`scores_and_gradients` whose input is the last step of a
    prefix: ``forward(last)`` evaluates the model on ``cat(past, last)`` along time, so the
    gradient is taken with respect to the last step only."""

    def __init__(self, adapter, past: torch.Tensor):
        self.adapter, self.past = adapter, past

    def forward(self, last: torch.Tensor) -> torch.Tensor:
        return self.adapter.forward(torch.cat([self.past, last], dim=-1))


@register("temporal_ig", "temporal_integrated_gradients")
class TemporalIntegratedGradients(GradientExplainer):
    """Integrated Gradients of each step's prefix along its last step (tint's definition).

    Parameters
    ----------
    n_steps : int, default 50
        Quadrature points on each step's path.
    method : str, default "gausslegendre"
        ``gausslegendre``, ``riemann_left``, ``riemann_right``, ``riemann_middle`` or
        ``riemann_trapezoid`` (as :class:`~lumos.methods.gradient.IntegratedGradients`).
    baseline : None, float or array
        The reference b: None for zeros, a value, one sample (C, T) or one per input;
        ``explain(x, baseline=...)`` overrides it per call.

    The model must accept every prefix length 1..T (recurrent networks, causal
    convolutions or transformers pooled over time).
    """

    layouts = ("timeseries",)
    needs_prefixes = True
    """Calls the model on every prefix ``x[..., :t+1]`` (it must accept any length)."""
    call_options = {"baseline": None}

    def __init__(self, model, *, n_steps: int = 50, method: str = "gausslegendre", baseline=None, **kwargs):
        super().__init__(model, **kwargs)
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.method = check_choice(method, "method", QUADRATURES)
        alphas, weights = quadrature(self.n_steps, self.method)
        # two more copies per input and step: alpha = 1 (f of the prefix) and 0 (f at the baseline)
        self.alphas, self.weights = np.append(alphas, [1.0, 0.0]), np.append(weights, [0.0, 0.0])
        self.baseline = baseline

    def params(self):
        return {**super().params(), "n_steps": self.n_steps, "method": self.method,
                "baseline": self.baseline if np.ndim(self.baseline) == 0 else "array"}

    def prepare(self, x, call, baseline=None):
        ref = broadcast_reference(baseline if baseline is not None else self.baseline, x)
        return State(call, refs=call.adapter.to_tensor(ref))

    def expansion(self, state):
        return self.n_steps + 2

    def expected_rows(self, x, state):
        return x.shape[0] * (x.shape[2] * self.expansion(state) + 1)

    def attribute_chunk(self, x, targets, state):
        adapter, call = state.adapter, state.call
        xt = adapter.to_tensor(x)
        with torch.no_grad():
            scores = adapter.forward(xt)
        target = targets(scores)
        n, channels, steps = xt.shape
        refs = state.refs[torch.as_tensor(targets.index, device=xt.device)]
        alphas = torch.as_tensor(self.alphas, dtype=xt.dtype, device=xt.device)
        weights = torch.as_tensor(self.weights, dtype=xt.dtype, device=xt.device)
        values = torch.zeros_like(xt)
        ends = torch.zeros((n, steps, 2), dtype=scores.dtype, device=xt.device)  # f(x_{<=t}), f(x_{<t}, b_t)
        copies = len(self.alphas)
        for t in range(steps):
            last, base = xt[:, :, t], refs[:, :, t]  # (n, C)
            diff = last - base
            for rows, cols in expansion_chunks(n, copies, call.rows(channels * (t + 1))):
                k = torch.arange(cols.start, cols.stop, device=xt.device)
                points = base[rows] + alphas[k].view(-1, 1, 1) * diff[rows]  # (s, b, C): copies first
                s, b = points.shape[:2]
                past = xt[rows, :, :t].repeat(s, 1, 1)
                out, _, grads = scores_and_gradients(_WithPast(adapter, past), points.reshape(s * b, channels, 1),
                                                     lambda _: target[rows].repeat(s), call)
                grads = grads.view(s, b, channels)
                values[rows, :, t] += (weights[k].view(-1, 1, 1) * grads).sum(0) * diff[rows]
                picked = out.gather(1, target[rows].repeat(s).view(-1, 1)).view(s, b)
                for j, col in enumerate(range(cols.start, cols.stop)):
                    if col >= self.n_steps:
                        ends[rows, t, col - self.n_steps] = picked[j]
        step_delta = values.sum(1) - (ends[..., 0] - ends[..., 1]).to(values.dtype)
        return Chunk(values.detach(), scores, target,
                     extras={"step_delta": step_delta.detach(), "step_base_value": ends[..., 1]})
