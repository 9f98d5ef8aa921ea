"""GradientShap / expected gradients (Erion, Janizek, Sturmfels, Lundberg, Lee 2021,
"Improving performance of deep learning models with axiomatic attribution priors and
expected gradients", Nature Machine Intelligence 3, arXiv:1906.10670; Lundberg & Lee 2017,
arXiv:1705.07874; as captum's ``GradientShap``).

    φ(x) = E_{b ~ background, α ~ U(0, 1), ε ~ N(0, σ²)} [ (x̃ − b) ⊙ ∇f(b + α(x̃ − b)) ],  x̃ = x + ε

estimated with ``n_samples`` draws of (b, α, ε) per input. Without noise (σ = 0, the
default) its expectation is Integrated Gradients averaged over the background,
E_b IG(x; b), so E[Σ φ] = f(x) − E_b f(b); lumos returns ``base_value = mean_b f(b)`` over
the whole background and ``delta = Σ φ − (f(x) − base_value)``, which here is the Monte
Carlo error of the estimate (it shrinks like 1/√n_samples), not a rounding error.

The draws of input ``i`` come from a generator seeded by ``(seed, row_offset + i)``
(:meth:`lumos.methods.base.Call.rng`), noise in float64 whatever the model's dtype, so a
result depends neither on the batch size nor on how ``explain_dataset`` chunks a data
set. ``explain(x, draws=(index, alpha, noise))`` replaces the random draws (e.g. to
replay another library's): ``index`` (N, n_samples) background rows, ``alpha``
(N, n_samples) in [0, 1], ``noise`` (N, n_samples, *sample_shape) in input units or None.
The N × n_samples points go through the model in blocks of at most ``batch_size`` rows.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.core.validate import check_finite, check_positive_int
from lumos.methods.base import Chunk, State, record_completeness
from lumos.methods.gradient.base import GradientExplainer, input_gradients, scores_and_gradients
from lumos.methods.gradient.deeplift_shap import background_rows


@register("gradient_shap", "expected_gradients", "gradientshap")
class GradientShap(GradientExplainer):
    """Expected gradients over background references, random path positions and
    optional input noise.

    Parameters
    ----------
    background : array (B, *sample_shape)
        Reference rows (e.g. ``X_train[:100]``); given here or per call,
        ``explain(x, background=...)`` (a call's background replaces this one).
    n_samples : int, default 50
        Draws of (reference, α, noise) per input.
    stdevs : float, default 0.0
        Standard deviation of the Gaussian noise added to the input, in input units
        (captum's ``stdevs``); 0 adds none.
    seed : int or None, default 0
        None draws a fresh seed, recorded in the explanation's params.

    ``explain(x, target, background=None, draws=None)``: see the module docstring for ``draws``.
    """

    call_options = {"background": None, "draws": None}
    needs_background = True
    stochastic = True

    def __init__(self, model, *, background=None, n_samples: int = 50, stdevs: float = 0.0,
                 seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.background = None if background is None else background_rows(background, None, type(self).__name__)
        self.n_samples = check_positive_int(n_samples, "n_samples")
        if isinstance(stdevs, bool) or not isinstance(stdevs, (int, float, np.floating)) or not np.isfinite(stdevs) \
                or stdevs < 0:
            raise ValueError(f"stdevs must be a non-negative number (noise standard deviation in input units), "
                             f"got {stdevs!r}")
        self.stdevs = float(stdevs)
        self.seed = seed

    def params(self):
        bg = None if self.background is None else list(self.background.shape)
        return {**super().params(), "background": bg, "n_samples": self.n_samples, "stdevs": self.stdevs,
                "seed": self.seed}

    def prepare(self, x, call, background=None, draws=None):
        bg = background_rows(background if background is not None else self.background, x, type(self).__name__)
        adapter = call.adapter
        # the background's scores ride in the first chunk's gradient call when they fit (else: finish)
        state = State(call, refs=adapter.to_tensor(bg), background=bg, bg_scores=None, draws=None, x_scores=None)
        if draws is not None:
            state.draws = self._check_draws(draws, x, len(bg))
        # a recurrent model's call costs nearly as much for 8 rows as for 80, so the inputs ride in the gradient
        # pass; when the whole call does not fit one pass, the inputs and the background are scored once here, in
        # one forward pass without gradients, instead of one extra row per input in every pass
        n = x.shape[0]
        if call.budget.recurrent and n * (self.n_samples + 1) + len(bg) > call.rows(x[0].size):
            scores = adapter.scores(np.concatenate([x, bg.astype(x.dtype, copy=False)]))
            state.x_scores, state.bg_scores = scores[:n], scores[n:]
        return state

    def _check_draws(self, draws, x, n_refs):
        if not isinstance(draws, (tuple, list)) or len(draws) != 3:
            raise TypeError("draws must be a tuple (index, alpha, noise): background row indices and alphas of shape "
                            "(N, n_samples), noise of shape (N, n_samples, *sample_shape) or None")
        index, alpha, noise = draws
        shape = (x.shape[0], self.n_samples)
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        alpha = np.asarray(alpha.cpu() if isinstance(alpha, torch.Tensor) else alpha, dtype=np.float64)
        if index.shape != shape or alpha.shape != shape:
            raise ValueError(f"draws: index and alpha must have shape (N, n_samples) = {shape}, got {index.shape} and "
                             f"{alpha.shape}")
        if not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= n_refs:
            raise ValueError(f"draws: index must hold integers in [0, {n_refs}) (rows of the background)")
        check_finite(alpha, "draws alpha")
        if noise is not None:
            noise = np.asarray(noise.cpu() if isinstance(noise, torch.Tensor) else noise, dtype=np.float64)
            if noise.shape != shape + x.shape[1:]:
                raise ValueError(f"draws: noise must have shape (N, n_samples, *sample_shape) = "
                                 f"{shape + x.shape[1:]}, got {noise.shape}")
            check_finite(noise, "draws noise")
        return index.astype(np.int64), alpha, noise

    def expansion(self, state):
        return self.n_samples + (0 if state.x_scores is not None else 1)  # + the input itself (see attribute_chunk)

    def _draw(self, positions: np.ndarray, copies: slice, state, sample_shape):
        """(index, alpha, noise or None) of shapes (c, r), (c, r), (c, r, *S) for the inputs
        at batch positions ``positions`` and draws ``copies``."""
        if state.draws is not None:
            index, alpha, noise = state.draws
            return (index[positions, copies].T, alpha[positions, copies].T,
                    None if noise is None else np.moveaxis(noise[positions, copies], 0, 1))
        n, n_refs = self.n_samples, state.refs.shape[0]
        idx, alp, eps = [], [], []
        for p in positions.tolist():
            rng = state.call.rng(p)
            idx.append(rng.integers(n_refs, size=n)[copies])
            alp.append(rng.uniform(size=n)[copies])
            if self.stdevs > 0:
                eps.append(rng.standard_normal((n, *sample_shape))[copies] * self.stdevs)
        return (np.stack(idx, 1), np.stack(alp, 1), np.stack(eps, 1) if eps else None)

    def gradient_rows(self, x, target, index, state):
        total = torch.zeros_like(x)
        positions = index.cpu().numpy()
        sample = x.shape[1:]
        for rows, copies in expansion_chunks(x.shape[0], self.n_samples, state.call.rows(x[0].numel())):
            idx, alpha, noise = self._draw(positions[rows], copies, state, tuple(sample))
            c, r = idx.shape
            xb = x[rows][None]  # (1, r, ...)
            if noise is not None:
                xb = xb + torch.as_tensor(noise, device=x.device).to(x.dtype)
            refs = state.refs[torch.as_tensor(idx.reshape(-1), device=x.device)].view(c, r, *sample)
            diff = xb - refs  # (c, r, ...)
            a = torch.as_tensor(alpha.reshape(-1), device=x.device).to(x.dtype).view(c, r, *([1] * len(sample)))
            points = a * xb + (1 - a) * refs  # = b + α(x̃ − b), written as captum does (same rounding)
            grads = input_gradients(state.adapter, points.reshape(c * r, *sample), target[rows].repeat(c), state.call)
            total[rows] += (diff * grads.view(c, r, *sample)).sum(0)
        return total / self.n_samples

    def attribute_chunk(self, x, targets, state):
        """One gradient pass per chunk when its rows fit the budget: the ``n_samples`` points
        per input. The inputs (their scores give the prediction and the target) and, on the
        first chunk, the background (its scores give ``base_value``) are needed only forward:
        for a feed-forward model they go through one forward pass without gradients (half
        the cost of a row of the gradient pass); a recurrent model's call costs nearly the
        same for 8 rows as for 80, so there they ride in the gradient pass as in captum's
        single call (their gradients are not used)."""
        n, n_samples, call, adapter = x.shape[0], self.n_samples, state.call, state.adapter
        rows, recurrent = call.rows(x[0].size), call.budget.recurrent
        if state.x_scores is not None or n * (n_samples + (1 if recurrent else 0)) > rows:
            return super().attribute_chunk(x, targets, state)  # inputs scored in prepare, or several calls anyway
        nr = state.refs.shape[0]  # a large background is scored in finish, in chunks
        with_bg = state.bg_scores is None and (n * (n_samples + 1) + nr <= rows if recurrent else
                                               n + nr <= call.rows(x[0].size, "forward"))
        bg = state.refs if with_bg else state.refs[:0]
        nb = bg.shape[0]
        xt = adapter.to_tensor(x)
        sample = xt.shape[1:]
        idx, alpha, noise = self._draw(np.asarray(targets.index), slice(0, n_samples), state, tuple(sample))
        xb = xt[None]
        if noise is not None:
            xb = xb + torch.as_tensor(noise, device=xt.device).to(xt.dtype)
        refs = state.refs[torch.as_tensor(idx.reshape(-1), device=xt.device)].view(n_samples, n, *sample)
        diff = xb - refs
        a = torch.as_tensor(alpha.reshape(-1), device=xt.device).to(xt.dtype).view(n_samples, n, *([1] * len(sample)))
        points = (a * xb + (1 - a) * refs).reshape(n_samples * n, *sample)  # = b + α(x̃ − b), as gradient_rows

        if recurrent:
            def choose(scores):
                t = targets(scores[:n])
                return torch.cat([t, t.new_zeros(nb), t.repeat(n_samples)])

            scores, _, grads = scores_and_gradients(adapter, torch.cat([xt, bg, points]), choose, call)
            grads = grads[n + nb:]
        else:
            with torch.no_grad():
                scores = adapter.forward(torch.cat([xt, bg]))
            grads = input_gradients(adapter, points, targets(scores[:n]).repeat(n_samples), call)
        if nb:
            state.bg_scores = scores[n:n + nb].cpu().numpy()
        values = (diff * grads.view(n_samples, n, *sample)).sum(0) / n_samples
        return Chunk(values.detach(), scores[:n].detach(), targets(scores[:n]))

    def finish(self, x, result, state):
        super().finish(x, result, state)
        if state.bg_scores is None:
            state.bg_scores = state.adapter.scores(state.background)
        record_completeness(result, state.bg_scores.mean(axis=0)[result.target].astype(np.float64), np.float64)
