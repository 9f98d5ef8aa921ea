"""DeepLiftShap: DeepLIFT averaged over background references (Lundberg & Lee 2017,
"A unified approach to interpreting model predictions", arXiv:1705.07874, DeepSHAP;
DeepLIFT: Shrikumar et al. 2017, arXiv:1704.02685; as captum's ``DeepLiftShap``).

    φ_i(x) = 1/B Σ_b C_i(x; b) = 1/B Σ_b m_i(x; b) · (x_i − b_i)

with C(x; b) the DeepLIFT (Rescale) contributions of x against the reference b
(:mod:`lumos.methods.gradient.deeplift`). Summation-to-delta holds for every reference,
so the mean satisfies

    Σ_i φ_i = f_c(x) − 1/B Σ_b f_c(b)

lumos returns ``base_value = mean_b f_c(b)`` and ``delta = Σ φ − (f_c(x) − base_value)``
(float rounding on networks of supported modules). Like DeepSHAP, it treats the
features as independent of each other when the background is sampled independently.

The N × B (input, reference) pairs of a chunk go through the model as batches of 2·pairs
rows (the inputs, then their references), in blocks of at most ``batch_size`` rows, so
memory stays bounded whatever B; the block sums are exact.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.core.validate import as_array, check_positive_int
from lumos.methods.base import State, record_completeness
from lumos.methods.gradient.base import GradientExplainer
from lumos.methods.gradient.deeplift import DeepLiftSetup, _check_eps, check_summation


def background_rows(background, x, method: str) -> np.ndarray:
    """Background rows shaped like the samples ``(B, *S)``, finite, in the inputs' dtype."""
    if background is None:
        raise ValueError(f"{method} needs background rows (references drawn from the training data, shaped like "
                         f"the inputs): {method}(model, background=X_train[:100]) or explain(x, background=...)")
    bg = as_array(background, "background")
    if x is None:
        return bg
    if bg.shape[1:] != x.shape[1:]:
        raise ValueError(f"background rows have shape {bg.shape[1:]}, but the inputs have samples of shape "
                         f"{x.shape[1:]}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    return bg.astype(dtype, copy=False)


@register("deeplift_shap", "deep_lift_shap", "deepshap", "deep_shap")
class DeepLiftShap(GradientExplainer):
    """The mean of DeepLIFT over background references.

    Parameters
    ----------
    background : array (B, *sample_shape)
        Reference rows (e.g. ``X_train[:100]``); given here or per call,
        ``explain(x, background=...)`` (a call's background replaces this one).
    n_background : int, optional
        Use a random subset of this many background rows (drawn with ``seed``, the same
        for every input of the call).
    seed : int or None, default 0
        Seed of the subset; None draws a fresh one, recorded in the explanation's params.
    eps, strict
        As :class:`~lumos.methods.gradient.deeplift.DeepLift`.

    Results: ``base_value = mean_b f(b)``, ``delta = Σ φ − (f(x) − base_value)``. Equal to
    captum's ``DeepLiftShap(model).attribute(x, baselines=background)``.
    """

    call_options = {"background": None}
    needs_background = True
    stochastic = True  # the n_background subset
    torchscript = False

    def __init__(self, model, *, background=None, n_background: int | None = None, seed: int | None = 0,
                 eps: float = 1e-10, strict: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.background = None if background is None else background_rows(background, None, type(self).__name__)
        self.n_background = None if n_background is None else check_positive_int(n_background, "n_background")
        self.seed = seed
        self.eps = _check_eps(eps)
        self.strict = bool(strict)

    def params(self):
        bg = None if self.background is None else list(self.background.shape)
        return {**super().params(), "background": bg, "n_background": self.n_background, "seed": self.seed,
                "eps": self.eps, "strict": self.strict}

    def prepare(self, x, call, background=None):
        bg = background_rows(background if background is not None else self.background, x, type(self).__name__)
        if self.n_background is not None and self.n_background < len(bg):
            bg = bg[call.shared_rng().choice(len(bg), self.n_background, replace=False)]
        adapter = call.adapter
        refs = adapter.to_tensor(bg)
        bg_scores = adapter.scores(bg)  # (B, K)
        setup = DeepLiftSetup(call, None, self.eps, self.strict, type(self).__name__, owner=self.adapter.model)
        return State(call, refs=refs, bg_scores=bg_scores, setup=setup)

    def expansion(self, state):
        return 2 * state.refs.shape[0]

    def expected_rows(self, x, state):
        return x.shape[0] * (2 * state.refs.shape[0] + 1)

    def gradient_rows(self, x, target, index, state):
        refs = state.refs
        n_refs = refs.shape[0]
        total = torch.zeros_like(x)
        sample = x.shape[1:]
        for rows, copies in expansion_chunks(x.shape[0], n_refs, max(1, state.call.rows(x[0].numel()) // 2)):
            xs, bs = x[rows], refs[copies]
            c, r = bs.shape[0], xs.shape[0]
            # the pairs (reference k, input j) at row k * r + j: inputs, then references
            batch = torch.cat([xs.expand(c, r, *sample), bs[:, None].expand(c, r, *sample)]).view(2 * c * r, *sample)
            t = target[rows].repeat(c)
            mult = state.setup.multipliers(batch, lambda scores: t)[3]
            total[rows] += (xs[None] - bs[:, None]).mul_(mult.view(c, r, *sample)).sum(0)
        return total / n_refs

    def finish(self, x, result, state):
        super().finish(x, result, state)
        f_x = record_completeness(result, state.bg_scores.mean(axis=0)[result.target].astype(np.float64), np.float64)
        check_summation(result.delta, f_x, result.base_value, type(self).__name__, state.setup)
