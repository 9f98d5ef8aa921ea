"""Axioms an attribution may promise, checked numerically.

- :func:`completeness_error`: ``sum_i Phi_i - (f(x) - f(x'))`` for methods with a baseline
  ``x'`` (Integrated Gradients, Shapley values, DeepLIFT-like rules; Sundararajan et al. 2017).
- :func:`conservation_error`: ``sum_i R_i - f(x)`` for LRP with the output relevance set to
  the explained logit (Bach et al. 2015; Montavon et al. 2019). Exact only for rules that
  conserve (epsilon -> 0, no bias absorption); report, do not assume.
- :func:`sensitivity_n` (Ancona et al. 2018, arXiv 1711.06104): for random subsets ``S`` of
  ``n`` features, the Pearson correlation between ``sum_{i in S} Phi_i`` and the output drop
  ``f(x) - f(x_{S = baseline})``.
"""
from __future__ import annotations

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.validate import broadcast_reference, check_positive_int
from lumos.metrics._base import attributions_of, inputs_of, inputs_per_call, metric, region_map, scorer


def _target_scores(adapter, x, target):
    scores = adapter.scores(x)
    t = adapter.targets(target, scores)
    return scores[np.arange(len(t)), t], t


@metric("completeness_error", "axioms", higher_is_better=False)
def completeness_error(model, inputs, attributions, target=None, *, baseline=0.0, output: str = "raw",
                       absolute: bool = True, batch_size: int | None = None) -> np.ndarray:
    """``sum_i Phi_i(x) - (f_t(x) - f_t(baseline))`` per input (its absolute value when
    ``absolute``); 0 for a complete method with that baseline. Lower is better."""
    x = inputs_of(inputs, attributions)
    a = attributions_of(attributions, x)
    ref = broadcast_reference(baseline, x)
    with scorer(model, x[0].size, output, batch_size) as adapter:
        fx, t = _target_scores(adapter, x, target)
        fb = adapter.scores(ref)[np.arange(len(t)), t]
    err = a.reshape(len(x), -1).sum(axis=1, dtype=np.float64) - (fx - fb)
    return np.abs(err) if absolute else err


@metric("conservation_error", "axioms", higher_is_better=False)
def conservation_error(model, inputs, attributions, target=None, *, output: str = "raw",
                       relative: bool = True, batch_size: int | None = None) -> np.ndarray:
    """LRP conservation: ``|sum_i R_i - f_t(x)|`` per input, divided by ``|f_t(x)|`` when
    ``relative``. Lower is better."""
    x = inputs_of(inputs, attributions)
    a = attributions_of(attributions, x)
    with scorer(model, x[0].size, output, batch_size) as adapter:
        fx, _ = _target_scores(adapter, x, target)
    err = np.abs(a.reshape(len(x), -1).sum(axis=1, dtype=np.float64) - fx)
    return err / np.maximum(np.abs(fx), 1e-12) if relative else err


@metric("sensitivity_n", "axioms", higher_is_better=True)
def sensitivity_n(model, inputs, attributions, target=None, *, n: int = 10, n_subsets: int = 100, region=1,
                  baseline=0.0, output: str = "raw", batch_size: int | None = None, seed=0) -> np.ndarray:
    """Sensitivity-n per input (Ancona et al. 2018): Pearson correlation over ``n_subsets``
    random subsets ``S`` of ``n`` regions between ``sum_{i in S} Phi_i`` and
    ``f_t(x) - f_t(x with S set to baseline)``. 1 means the attributions predict the effect
    of removing any ``n`` features; call it for several ``n`` to draw the published curve.
    All subsets of a chunk of inputs are scored in one batched call.

    Quantus 0.6.0's ``SensitivityN`` computes another quantity and is not matched: it removes
    the top-``n`` features (not random subsets), sums only the attributions of the last
    ``features_in_step`` features removed (not of the whole removed set), and correlates over
    the inputs of its first batch (one value per ``n``), not over subsets per input."""
    n_subsets = check_positive_int(n_subsets, "n_subsets", 2)
    x = inputs_of(inputs, attributions)
    a = np.asarray(attributions_of(attributions, x), dtype=np.float64).reshape(len(x), -1)
    regions = region_map(x.shape[1:], region).reshape(-1)
    n_regions = int(regions.max()) + 1
    n = check_positive_int(n, "n")
    if n > n_regions:
        raise ValueError(f"n={n} exceeds the {n_regions} regions")
    ref = broadcast_reference(baseline, x).reshape(len(x), -1)
    x2 = x.reshape(len(x), -1)
    rng = np.random.default_rng(seed)  # drawn chunk after chunk: the same draws for any batch_size
    out = np.empty(len(x))
    with scorer(model, x[0].size, output, batch_size) as adapter:
        fx, t = _target_scores(adapter, x, target)
        for sl in chunk_slices(len(x), inputs_per_call(batch_size, x[0].size, n_subsets)):
            k = sl.stop - sl.start
            chosen = np.argsort(rng.random((k, n_subsets, n_regions)), axis=2)[:, :, :n]
            in_s = np.zeros((k, n_subsets, n_regions), dtype=bool)
            np.put_along_axis(in_s, chosen, True, axis=2)
            mask = in_s[:, :, regions]
            pert = np.where(mask, ref[sl, None], x2[sl, None]).reshape(-1, *x.shape[1:])
            scores = adapter.scores(pert.astype(x.dtype, copy=False))
            rows = np.repeat(t[sl], n_subsets)
            drop = fx[sl, None] - scores[np.arange(rows.size), rows].reshape(k, n_subsets)
            attr = np.einsum("ksd,kd->ks", mask.astype(np.float64), a[sl])
            out[sl] = _pearson_rows(attr, drop)
    return out


def _pearson_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u - u.mean(axis=1, keepdims=True)
    v = v - v.mean(axis=1, keepdims=True)
    den = np.sqrt((u ** 2).sum(1) * (v ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (u * v).sum(1) / den, 0.0)
