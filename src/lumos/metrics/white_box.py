"""White-box metrics: attributions scored against a known true saliency mask, as tint
defines them (``tint.metrics.white_box``, time_interpret 0.3.0; Crabbé & van der Schaar
2021, arXiv:2106.05303, Sec. 4.1; Enguehard 2023, arXiv:2306.02109).

What tint does, and lumos repeats (checked against tint 0.3.0's ``base.py``):

1. **Normalisation** (``normalize=True``): each input's attributions are min-max scaled
   over all its cells, ``a' = (a - min) / (max - min + 1e-5)``. No absolute value is taken
   (``absolute=False``, as tint; tint's experiments pass ``attr.abs()``, and so does
   lumos's benchmark: use ``absolute=True``).
2. **Pooling** (``reduce="pooled"``): the normalised attributions and the mask of all
   inputs are flattened into one vector each and the metric is computed once over every
   cell of the batch (tint returns one number per batch). ``reduce="per_input"`` computes
   it per input instead (an array of N values).
3. The metric, with ``m`` the 0/1 mask:

   - **AUP** / **AUR**: ``precision, recall, thresholds = sklearn.metrics.precision_recall_curve(m, a')``;
     AUP = ``auc(thresholds, precision[:-1])``, AUR = ``auc(thresholds, recall[:-1])``
     (trapezoids over the distinct attribution values; 0 when there is only one).
     This is the area under precision (recall) as a function of the threshold, linearly
     interpolated between the observed values. Consequence: a binary map equal to the
     mask gets ``AUP = (1 + prevalence) / 2`` (the segment from threshold 0, where
     precision is the prevalence, to threshold 1 is interpolated), not 1; a graded perfect
     map (true cells above all others, spread down towards the others) gets close to 1.
     ``curve="step"`` integrates the step function instead, ``AUP = ∫_0^{max a'} P(τ) dτ``
     with ``P(τ)`` the precision of ``{a' ≥ τ}`` (Crabbé & van der Schaar's definition as
     an integral over thresholds): a binary perfect map gets 1.
   - **AUROC**: ``sklearn.metrics.roc_auc_score(m, a')`` (NaN when the mask has one class).
   - **AUPRC**: ``sklearn.metrics.average_precision_score(m, a')``.
   - **information**: ``sum over the true cells of |log2(1 - a' + 1e-5)|`` (higher: more
     of the attribution sits on the true cells).
   - **entropy** (:func:`white_box_entropy`, named apart from lumos's complexity
     :func:`lumos.metrics.entropy`): ``sum over the true cells of a'|log2(1e-5 + a')| +
     (1 - a')|log2(1e-5 + 1 - a')|`` (lower: crisper attributions on the true cells).

   information and entropy are sums, so they grow with the number of true cells in the
   batch: compare them only between batches of the same inputs.

Masks are boolean or 0/1 arrays shaped like the attributions, or one sample's shape
(broadcast to every input).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from lumos.core.explanation import Explanation
from lumos.metrics._base import metric

EPS = 1e-5
REDUCTIONS = ("pooled", "per_input")
CURVES = ("tint", "step")

__all__ = ["normalise_attributions", "aup", "aur", "auroc", "auprc", "information", "white_box_entropy",
           "white_box_metrics", "WHITE_BOX_METRICS"]


def _values(attributions) -> np.ndarray:
    a = attributions.values if isinstance(attributions, Explanation) else attributions
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TypeError(f"attributions must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim < 2:
        raise ValueError(f"attributions need a leading input axis, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("attributions contain NaN or infinite values")
    return a


def normalise_attributions(attributions, absolute: bool = False) -> np.ndarray:
    """tint's per-input min-max scaling, ``(a - min) / (max - min + 1e-5)`` over all cells
    of each input (after ``|a|`` when ``absolute``); float64, same shape."""
    a = _values(attributions)
    if absolute:
        a = np.abs(a)
    flat = a.reshape(len(a), -1)
    lo = flat.min(axis=1, keepdims=True)
    hi = flat.max(axis=1, keepdims=True)
    return ((flat - lo) / (hi - lo + EPS)).reshape(a.shape)


def _prepare(attributions, true_mask, normalize: bool, absolute: bool) -> tuple[np.ndarray, np.ndarray]:
    a = normalise_attributions(attributions, absolute) if normalize else _values(attributions)
    if not normalize and absolute:
        a = np.abs(a)
    m = true_mask.detach().cpu().numpy() if hasattr(true_mask, "detach") else np.asarray(true_mask)
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("true_mask must be boolean or 0/1")
        m = m.astype(bool)
    if m.shape != a.shape:
        try:
            m = np.broadcast_to(m, a.shape)
        except ValueError:
            raise ValueError(f"true_mask of shape {m.shape} does not match attributions of shape {a.shape}") from None
    return a.reshape(len(a), -1), m.reshape(len(a), -1)


def _reduce(fn, attributions, true_mask, normalize, absolute, reduce):
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    a, m = _prepare(attributions, true_mask, normalize, absolute)
    if reduce == "pooled":
        return float(fn(a.ravel(), m.ravel()))
    return np.array([fn(ai, mi) for ai, mi in zip(a, m)], dtype=np.float64)


def _step_area(a: np.ndarray, m: np.ndarray, which: str) -> float:
    """∫_0^{max a} P(τ) dτ (or R(τ)) of the step curves of ``{a ≥ τ}``."""
    order = np.argsort(-a, kind="stable")
    a_sorted, m_sorted = a[order], m[order].astype(np.float64)
    distinct = np.r_[np.nonzero(np.diff(a_sorted))[0], a_sorted.size - 1]  # last index of each value (descending)
    tp = np.cumsum(m_sorted)[distinct]
    n_sel = distinct + 1.0
    values = a_sorted[distinct]  # descending thresholds
    if which == "precision":
        curve = tp / n_sel
    else:
        total = m_sorted.sum()
        curve = tp / total if total > 0 else np.zeros_like(tp)
    lower = np.r_[values[1:], 0.0]  # P(τ) for τ in (next lower value, value]
    return float(np.sum((values - lower) * curve))


def _pr_area(which: str, curve: str):
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")

    def fn(a, m):
        if curve == "step":
            return _step_area(a, m, which)
        if not m.any():
            return np.nan
        precision, recall, thresholds = precision_recall_curve(m.astype(np.int64), a)
        if len(thresholds) <= 1:
            return 0.0
        return auc(thresholds, (precision if which == "precision" else recall)[:-1])

    return fn


@metric("aup", "white_box", higher_is_better=True, needs="mask")
def aup(attributions, true_mask, *, normalize: bool = True, absolute: bool = False, reduce: str = "pooled",
        curve: str = "tint"):
    """Area under the precision curve over thresholds (tint's ``aup``; see the module
    docstring). Higher is better. ``curve="step"``: the exact area of the step curve."""
    return _reduce(_pr_area("precision", curve), attributions, true_mask, normalize, absolute, reduce)


@metric("aur", "white_box", higher_is_better=True, needs="mask")
def aur(attributions, true_mask, *, normalize: bool = True, absolute: bool = False, reduce: str = "pooled",
        curve: str = "tint"):
    """Area under the recall curve over thresholds (tint's ``aur``). Higher is better."""
    return _reduce(_pr_area("recall", curve), attributions, true_mask, normalize, absolute, reduce)


def _roc(a, m):
    if m.all() or not m.any():
        return np.nan
    return roc_auc_score(m.astype(np.int64), a)


def _ap(a, m):
    if not m.any():
        return np.nan
    return average_precision_score(m.astype(np.int64), a)


@metric("auroc", "white_box", higher_is_better=True, needs="mask")
def auroc(attributions, true_mask, *, normalize: bool = True, absolute: bool = False, reduce: str = "pooled"):
    """Area under the ROC curve of the attributions as scores for the mask (tint's
    ``roc_auc``): 1 when every true cell outranks every other, 0.5 for a random map."""
    return _reduce(_roc, attributions, true_mask, normalize, absolute, reduce)


@metric("auprc", "white_box", higher_is_better=True, needs="mask")
def auprc(attributions, true_mask, *, normalize: bool = True, absolute: bool = False, reduce: str = "pooled"):
    """Average precision (area under the precision-recall curve, tint's ``auprc``)."""
    return _reduce(_ap, attributions, true_mask, normalize, absolute, reduce)


def _information(a, m):
    return float(np.abs(np.log2(1 - a[m] + EPS)).sum())


def _entropy(a, m):
    s = a[m]
    return float((s * np.abs(np.log2(EPS + s)) + (1 - s) * np.abs(np.log2(EPS + 1 - s))).sum())


@metric("information", "white_box", higher_is_better=True, needs="mask")
def information(attributions, true_mask, *, normalize: bool = True, absolute: bool = False, reduce: str = "pooled"):
    """``sum over the true cells of |log2(1 - a + 1e-5)|`` (tint's ``information``).
    Higher is better; a sum, so it grows with the number of true cells."""
    return _reduce(_information, attributions, true_mask, normalize, absolute, reduce)


@metric("white_box_entropy", "white_box", higher_is_better=False, needs="mask")
def white_box_entropy(attributions, true_mask, *, normalize: bool = True, absolute: bool = False,
                      reduce: str = "pooled"):
    """Binary entropy of the attributions on the true cells, summed (tint's ``entropy``).
    Lower is better."""
    return _reduce(_entropy, attributions, true_mask, normalize, absolute, reduce)


WHITE_BOX_METRICS = {"aup": aup, "aur": aur, "auroc": auroc, "auprc": auprc, "information": information,
                     "entropy": white_box_entropy}
"""tint's six white-box metrics by their tint names (``entropy`` is :func:`white_box_entropy`)."""


def white_box_metrics(attributions, true_mask, *, normalize: bool = True, absolute: bool = False,
                      reduce: str = "pooled", metrics=None) -> dict:
    """All of :data:`WHITE_BOX_METRICS` (or those named in ``metrics``) on the same
    attributions: ``{name: value}``."""
    names = list(WHITE_BOX_METRICS) if metrics is None else list(metrics)
    unknown = [n for n in names if n not in WHITE_BOX_METRICS]
    if unknown:
        raise ValueError(f"unknown white-box metrics {unknown}; available: {list(WHITE_BOX_METRICS)}")
    return {n: WHITE_BOX_METRICS[n](attributions, true_mask, normalize=normalize, absolute=absolute, reduce=reduce)
            for n in names}
