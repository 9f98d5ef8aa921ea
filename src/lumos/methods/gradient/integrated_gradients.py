"""Integrated Gradients (Sundararajan, Taly, Yan 2017, arXiv:1703.01365).

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂f(x' + α(x − x'))/∂x_i dα
            ≈ (x_i − x'_i) · Σ_k w_k ∂f(x' + α_k(x − x'))/∂x_i

with the quadrature nodes α_k and weights w_k of a Riemann rule (left, right, middle,
trapezoid) or Gauss–Legendre on [0, 1]. Completeness: Σ_i IG_i = f(x) − f(x'); lumos
returns the error ``delta = Σ IG − (f(x) − f(x'))`` per input, which shrinks as the
number of steps grows.

With ``baseline_distribution`` (M reference inputs), IG is averaged over the M baselines
(the expected-gradients idea of Erion et al. 2021, arXiv:1906.10670, with a quadrature
over α instead of one random α); completeness then holds against the mean of f(x'_m).

The N × steps (× M) interpolated inputs are evaluated in chunks of at most
``batch_size`` rows (the one memory knob, :class:`~lumos.core.batching.RowBudget`); the
chunk sums are exact, so the result does not depend on the chunk size and memory stays
bounded whatever the number of steps.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.core.validate import broadcast_reference, check_choice, check_finite, check_positive_int
from lumos.methods.base import Chunk, State, record_completeness
from lumos.methods.gradient.base import GradientExplainer, input_gradients, scores_and_gradients

QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Nodes α_k in [0, 1] and weights w_k (summing to 1) of a quadrature rule."""
    n = check_positive_int(n_steps, "n_steps")
    method = check_choice(method, "method", QUADRATURES)
    nodes, weights = _quadrature(n, method)
    return nodes.copy(), weights.copy()


@functools.lru_cache(maxsize=64)
def _quadrature(n: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("riemann_trapezoid needs n_steps >= 2")
        alphas = np.linspace(0, 1, n)
        weights = np.full(n, 1 / (n - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    k = np.arange(n)
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (k + offset) / n, np.full(n, 1 / n)


@register("integrated_gradients", "ig")
class IntegratedGradients(GradientExplainer):
    """Path-integrated gradients from a baseline to the input.

    Parameters
    ----------
    n_steps : int, default 50
        Quadrature points on the path.
    method : str, default "gausslegendre"
        One of ``gausslegendre``, ``riemann_left``, ``riemann_right``, ``riemann_middle``,
        ``riemann_trapezoid``.
    baseline : None, float or array
        The reference x': None for zeros, a value, one sample, or one per input. Can be
        overridden per call: ``explain(x, baseline=...)``.
    baseline_distribution : array (M, *sample_shape), optional
        Average IG over these M baselines instead (expected gradients).
    n_baseline_samples : int, optional
        Draw this many of the M baselines at random (``seed``) instead of using all.
    batch_size : int, optional
        Maximum rows of interpolated inputs per forward pass (default: about 262k input
        elements, between 16 and 8192 rows).
    """

    call_options = {"baseline": None}
    stochastic = True  # draws baselines when n_baseline_samples is given (seed)

    def __init__(self, model, *, n_steps: int = 50, method: str = "gausslegendre", baseline=None,
                 baseline_distribution=None, n_baseline_samples: int | None = None,
                 seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.method = check_choice(method, "method", QUADRATURES)
        self.alphas, self.weights = quadrature(self.n_steps, self.method)
        self.baseline = baseline
        if baseline is not None and baseline_distribution is not None:
            raise ValueError("give either baseline or baseline_distribution, not both")
        self.baseline_distribution = None if baseline_distribution is None else np.asarray(baseline_distribution)
        if self.baseline_distribution is not None:
            check_finite(self.baseline_distribution, "baseline_distribution")
        self.n_baseline_samples = None if n_baseline_samples is None else check_positive_int(n_baseline_samples, "n_baseline_samples")
        self.seed = seed

    def params(self):
        return {**super().params(), "n_steps": self.n_steps, "method": self.method,
                "baseline": self.baseline if np.ndim(self.baseline) == 0 else "array",
                "baseline_distribution": None if self.baseline_distribution is None else list(self.baseline_distribution.shape),
                "n_baseline_samples": self.n_baseline_samples, "seed": self.seed}

    # -- baselines ------------------------------------------------------------
    def prepare(self, x, call, baseline=None):
        """The baselines of this call as a tensor of shape (M, N or 1, ...)."""
        adapter = call.adapter
        if baseline is not None or self.baseline_distribution is None:
            given = baseline if baseline is not None else self.baseline
            # one baseline for every input (None, a scalar, one sample): kept as one row, so its
            # score is computed once (1, 1, ...); a baseline per input: (1, N, ...)
            shared = given is None or np.ndim(given) == 0 or tuple(np.shape(given)) == x.shape[1:]
            ref = broadcast_reference(given, x[:1] if shared else x)
            return self._endpoints(x, State(call, refs=adapter.to_tensor(ref)[None], fused=True, ref_scores=[]))
        dist = self.baseline_distribution
        if dist.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"baseline_distribution has samples of shape {dist.shape[1:]}, inputs have {x.shape[1:]}"
            )
        if self.n_baseline_samples is not None and self.n_baseline_samples < len(dist):
            dist = dist[call.shared_rng().choice(len(dist), self.n_baseline_samples, replace=False)]
        return self._endpoints(x, State(call, refs=adapter.to_tensor(dist.astype(x.dtype, copy=False))[:, None],
                                        fused=True, ref_scores=[]))  # refs (M, 1, ...)

    def _endpoints(self, x, state):
        """Where the endpoints' scores come from (see :meth:`attribute_chunk`). A recurrent
        model whose whole call does not fit one gradient pass with them gets them here, in
        one forward pass without gradients over all inputs and each distinct baseline
        (``x_scores``, ``base_all``), instead of two extra rows per input in every pass."""
        call, refs = state.call, state.refs
        recurrent = call.budget.recurrent
        state.ride = recurrent and x.shape[0] * refs.shape[0] * (self.n_steps + 2) <= call.rows(x[0].size)
        state.x_scores = state.base_all = None
        if recurrent and not state.ride:
            flat = refs.reshape(-1, *x.shape[1:]).cpu().numpy().astype(x.dtype, copy=False)
            ends = call.adapter.scores(np.concatenate([x, flat]))
            state.x_scores = ends[: x.shape[0]]
            state.base_all = ends[x.shape[0]:].reshape(refs.shape[0], refs.shape[1], -1).mean(axis=0)  # (N or 1, K)
        return state

    def expansion(self, state):
        return state.refs.shape[0] * (self.n_steps + (2 if state.ride else 0))  # ride: + the endpoints x and x'

    def attribute_chunk(self, x, targets, state):
        """One gradient pass per chunk when its rows fit the budget. The endpoints (α = 1:
        the input, whose scores give the prediction and the target; α = 0: the baseline,
        whose scores give ``base_value``) are needed only forward: for a feed-forward model
        they go through one forward pass without gradients per chunk (half the cost of a row
        of the gradient pass), each distinct baseline once. A recurrent model's call costs
        nearly as much for 8 rows as for 80 (its time loop is sequential): when the whole
        call fits one gradient pass they ride in it with quadrature weight 0, otherwise they
        were scored once for all inputs in ``prepare``."""
        refs, call, adapter = state.refs, state.call, state.adapter
        n_base, n = refs.shape[0], x.shape[0]
        if state.x_scores is not None:  # endpoints scored in prepare: the path alone
            return super().attribute_chunk(x, targets, state)
        fused = state.ride
        copies = self.n_steps + (2 if fused else 0)
        if n * n_base * copies > call.rows(x[0].size):  # the chunk takes several calls: endpoints apart
            state.fused = False
            return super().attribute_chunk(x, targets, state)
        xt = adapter.to_tensor(x)
        sample = xt.shape[1:]
        index = torch.as_tensor(targets.index, device=xt.device)
        ref = refs[:, index] if refs.shape[1] != 1 else refs  # (M, n or 1, ...)
        if fused:
            alphas, weights = np.append([1.0, 0.0], self.alphas), np.append([0.0, 0.0], self.weights)
        else:
            alphas, weights = self.alphas, self.weights
            with torch.no_grad():
                ends = adapter.forward(torch.cat([xt, ref.reshape(-1, *sample)]))
            end_scores = ends[:n]
            t = targets(end_scores)
        alphas = torch.as_tensor(alphas, dtype=xt.dtype, device=xt.device)
        weights = torch.as_tensor(weights, dtype=xt.dtype, device=xt.device) / n_base
        shape = (1, copies) + (1,) * xt.ndim
        diff = (xt[None] - ref)[:, None]  # (M, 1, n, ...)
        points = ref[:, None] + alphas.view(shape) * diff  # (M, copies, n, ...); fused: copy 0 is x itself
        total = n_base * copies * n
        if fused:
            scores, _, grads = scores_and_gradients(adapter, points.reshape(total, *sample),
                                                    lambda s: targets(s[:n]).repeat(n_base * copies), call)
            end_scores = scores[:n]
            t = targets(end_scores)
            base = scores.view(n_base, copies, n, -1)[:, 1].mean(0)
        else:
            grads = input_gradients(adapter, points.reshape(total, *sample), t.repeat(n_base * copies), call)
            base = ends[n:].view(n_base, ref.shape[1], -1).mean(0).expand(n, -1)
        values = (weights.view(shape) * diff * grads.view(n_base, copies, n, *sample)).sum((0, 1))
        state.ref_scores.append(base.cpu().numpy())
        return Chunk(values.detach(), end_scores.detach(), t)

    # -- attribution ----------------------------------------------------------
    def gradient_rows(self, x, target, index, state):
        refs = state.refs
        per_input = refs.shape[1] != 1
        n_base, n_steps = refs.shape[0], self.n_steps
        alphas = torch.as_tensor(self.alphas, dtype=x.dtype, device=x.device)
        weights = torch.as_tensor(self.weights, dtype=x.dtype, device=x.device) / n_base
        total = torch.zeros_like(x)
        shape = (-1,) + (1,) * x.ndim
        for rows, copies in expansion_chunks(x.shape[0], n_base * n_steps, state.call.rows(x[0].numel())):
            j = torch.arange(copies.start, copies.stop, device=x.device)
            m, k = j // n_steps, j % n_steps
            xb = x[rows][None]  # (1, b, ...)
            ref = refs[:, index[rows]] if per_input else refs  # (M, b or 1, ...): rows first, then copies
            if n_base > 1:
                ref = ref[m]  # (s, b or 1, ...)
            diff = xb - ref  # (1 or s, b, ...)
            points = ref + alphas[k].view(shape) * diff  # (s, b, ...)
            s, b = points.shape[:2]
            grads = input_gradients(state.adapter, points.reshape(s * b, *x.shape[1:]), target[rows].repeat(s),
                                    state.call)
            total[rows] += (weights[k].view(shape) * diff * grads.view(s, b, *x.shape[1:])).sum(0)
        return total

    def finish(self, x, result, state):
        super().finish(x, result, state)
        refs = state.refs
        if state.base_all is not None:  # scored in prepare
            ref_scores = state.base_all
        elif getattr(state, "fused", False):  # every chunk's baseline scores came with its gradient pass
            ref_scores = np.concatenate(state.ref_scores)  # (N, K)
        else:
            flat = refs.reshape(-1, *x.shape[1:])
            ref_scores = state.adapter.scores(flat)  # (M*N or M, K)
            ref_scores = ref_scores.reshape(refs.shape[0], refs.shape[1], -1).mean(axis=0)  # (N or 1, K)
        ref_scores = np.broadcast_to(ref_scores, result.prediction.shape)
        record_completeness(result, ref_scores[np.arange(len(result.target)), result.target])
