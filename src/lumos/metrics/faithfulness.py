"""Faithfulness: does removing what the explanation calls relevant change the output?

- :func:`region_perturbation` (Samek et al. 2017, arXiv 1509.06321): regions ordered
  by their summed relevance are replaced one after the other (MoRF: most relevant
  first; LeRF: least relevant first; or a random order); the curve ``f(x^k)``,
  ``k = 0..L``, and ``AOPC = 1/(L+1) sum_k (f(x^0) - f(x^k))``.
  :func:`pixel_flipping` (Bach et al. 2015) is the case of single features.
- :func:`abpc`: area between the LeRF and MoRF curves, ``1/(L+1) sum_k (f(x_LeRF^k) -
  f(x_MoRF^k))`` = AOPC(MoRF) - AOPC(LeRF).
- :func:`deletion` / :func:`insertion` (Petsiuk et al. 2018, arXiv 1806.07421): the
  class probability while features are deleted (set to a baseline) or inserted into a
  blurred canvas, most relevant first; the trapezoid area under the curve over the
  fraction of features in [0, 1].

The perturbed copies of all steps of many inputs are built at once from a rank map (the
order of each feature's region) and scored in model calls of at most ``batch_size`` rows
(see :mod:`lumos.metrics`); a copy that equals the previous step's copy is not scored twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lumos.core.batching import chunk_slices
from lumos.core.model import as_adapter
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int
from lumos.metrics._base import attributions_of, inputs_of, metric, region_map, region_sums, scorer

ORDERS = ("morf", "lerf", "random")
REPLACEMENTS = ("uniform", "constant", "mean", "blur")


@dataclass
class PerturbationCurve:
    """Result of a perturbation experiment.

    ``curve`` (N, L+1): the target score after k perturbation steps (column 0 is the
    unperturbed input). ``drop`` = ``curve[:, :1] - curve``. ``scores`` (N,): the
    per-input AOPC (region perturbation) or AUC (deletion / insertion).
    """

    curve: np.ndarray
    scores: np.ndarray
    order: str
    n_regions: int
    fractions: np.ndarray
    target: np.ndarray

    @property
    def drop(self) -> np.ndarray:
        return self.curve[:, :1] - self.curve

    @property
    def mean_curve(self) -> np.ndarray:
        return self.curve.mean(axis=0)

    @property
    def value(self) -> float:
        """Mean of ``scores`` over the inputs (AOPC or AUC)."""
        return float(self.scores.mean())


def region_order(attributions: np.ndarray, regions: np.ndarray, order: str, absolute: bool = False,
                 seed=None) -> np.ndarray:
    """Rank of every region per input, (N, R): 0 is removed first."""
    check_choice(order, "order", ORDERS)
    n = attributions.shape[0]
    sums = region_sums(np.abs(attributions) if absolute else attributions, regions)
    if order == "random":
        rng = np.random.default_rng(seed)
        perm = np.stack([rng.permutation(sums.shape[1]) for _ in range(n)])
    else:
        perm = np.argsort(-sums if order == "morf" else sums, axis=-1)
    rank = np.empty_like(perm)
    np.put_along_axis(rank, perm, np.arange(perm.shape[1])[None, :].repeat(n, 0), axis=1)
    return rank


def perturbation_scores(adapter, start: np.ndarray, fill: np.ndarray, feature_rank: np.ndarray,
                        counts: np.ndarray, target: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Target scores of the copies ``where(feature_rank < counts[s], fill, start)``.

    ``start``, ``fill``: (N, ...) ; ``feature_rank``: (N, D) rank of each feature's region;
    ``counts``: (S,) increasing numbers of regions taken from ``fill``. Returns (N, S).

    ``adapter``: a model or a :class:`~lumos.core.model.ModelAdapter` (its ``output`` is
    kept), evaluated on a private view. Copies are scored in model calls of at most
    ``batch_size`` rows (None: sized from the element count). A copy identical to the
    previous one of the same input (its new regions already held the fill value, e.g. black
    background replaced by black) is not scored again: it gets the previous score, which is
    exact because the model sees the same input.
    """
    n, shape = start.shape[0], start.shape[1:]
    counts = np.asarray(counts, dtype=np.int64)
    if (np.diff(counts) < 0).any():
        raise ValueError("counts must be increasing")
    start2 = start.reshape(n, -1)
    fill2 = fill.reshape(n, -1)
    n_ranks = int(feature_rank.max()) + 1
    differs = (fill2 != start2).reshape(-1)
    idx = (feature_rank + n_ranks * np.arange(n)[:, None]).reshape(-1)
    rank_changes = np.bincount(idx, weights=differs, minlength=n * n_ranks).reshape(n, n_ranks) > 0
    cum = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(rank_changes, axis=1)], axis=1)
    at = cum[:, np.minimum(counts, n_ranks)]
    needed = np.ones((n, len(counts)), dtype=bool)
    needed[:, 1:] = np.diff(at, axis=1) > 0
    rows, steps = np.nonzero(needed)
    values = np.zeros(rows.size, dtype=np.float64)
    with scorer(adapter, start2.shape[1], batch_size=batch_size) as bound:
        for sl in chunk_slices(rows.size, bound.batch_size):
            r, st = rows[sl], steps[sl]
            taken = feature_rank[r] < counts[st][:, None]
            copies = np.where(taken, fill2[r], start2[r])
            scores = bound.scores(copies.reshape(-1, *shape))
            values[sl] = scores[np.arange(r.size), target[r]]
    out = np.zeros(needed.shape, dtype=np.float64)
    out[rows, steps] = values
    last = np.maximum.accumulate(np.where(needed, np.arange(len(counts))[None, :], 0), axis=1)
    return np.take_along_axis(out, last, axis=1)


def _replacement(x: np.ndarray, replacement, value: float, sigma: float, noise_range, seed) -> np.ndarray:
    if isinstance(replacement, str):
        check_choice(replacement, "replacement", REPLACEMENTS)
        if replacement == "constant":
            return np.full_like(x, value, dtype=np.result_type(x.dtype, np.float32))
        if replacement == "mean":
            axes = tuple(range(1, x.ndim))
            return np.broadcast_to(x.mean(axis=axes, keepdims=True), x.shape).astype(x.dtype)
        if replacement == "blur":
            return blur(x, sigma)
        rng = np.random.default_rng(seed)
        if noise_range is None:
            axes = tuple(range(1, x.ndim))
            lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
        else:
            lo, hi = noise_range
        return (lo + (np.asarray(hi) - lo) * rng.random(x.shape)).astype(x.dtype)
    return broadcast_reference(replacement, x, "replacement")


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every sample over its non-channel axes (all axes for tables)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    spatial = (0,) + (sigma,) * (x.ndim - 1) if x.ndim == 2 else (0, 0) + (sigma,) * (x.ndim - 2)
    return ndimage.gaussian_filter(x.astype(np.float64), sigma=spatial, mode="nearest").astype(x.dtype)


def _prepare(model, inputs, attributions, target, output, batch_size):
    x = inputs_of(inputs, attributions)
    a = attributions_of(attributions, x)
    adapter = as_adapter(model, output=output)  # scored on a private view by scorer()
    with scorer(adapter, x[0].size, batch_size=batch_size) as bound:
        scores = bound.scores(x)
    t = adapter.targets(target, scores)
    return x, a, adapter, t


@metric("region_perturbation", "faithfulness", higher_is_better=True)
def region_perturbation(model, inputs, attributions, target=None, *, order: str = "morf", region=1,
                        n_steps: int | None = None, replacement="uniform", value: float = 0.0,
                        sigma: float = 2.0, noise_range=None, absolute: bool = False, output: str = "softmax",
                        batch_size: int | None = None, seed=0) -> PerturbationCurve:
    """Region perturbation (Samek et al. 2017) and its AOPC.

    Regions (see :func:`lumos.metrics._base.region_map`: windows for tables and series,
    ``region x region`` patches for images) are ranked by the sum of their attributions
    (``order="morf"``: largest first; ``"lerf"``: smallest first; ``"random"``). In step
    ``k`` the first ``k`` regions hold ``replacement`` values, kept fixed over the steps:
    ``"uniform"`` noise in ``noise_range`` (default: each input's min..max), a
    ``"constant"`` ``value``, the input's ``"mean"``, a Gaussian ``"blur"`` of the input
    (``sigma``), or an array shaped like the inputs.

    ``AOPC = 1/(L+1) sum_{k=0}^{L} (f(x^0) - f(x^k))`` per input, with ``L = n_steps``
    (default: ``min(100, number of regions)``, Samek et al.'s L = 100). Higher is better for MoRF, lower for LeRF. ``f`` is the
    model's ``output`` score of ``target`` (None: the predicted class).
    """
    order = check_choice(order, "order", ORDERS)
    x, a, adapter, t = _prepare(model, inputs, attributions, target, output, batch_size)
    regions = region_map(x.shape[1:], region)
    n_regions = int(regions.max()) + 1
    steps = min(100, n_regions) if n_steps is None else check_positive_int(n_steps, "n_steps")
    if steps > n_regions:
        raise ValueError(f"n_steps={steps} exceeds the {n_regions} regions of size {region!r}")
    rank = region_order(a, regions, order, absolute, seed)
    feature_rank = rank[:, regions.reshape(-1)]
    fill = _replacement(x, replacement, value, sigma, noise_range, seed)
    counts = np.arange(steps + 1)
    curve = perturbation_scores(adapter, x, fill, feature_rank, counts, t, batch_size)
    aopc = (curve[:, :1] - curve).mean(axis=1)
    return PerturbationCurve(curve, aopc, order, n_regions, counts / n_regions, t)


@metric("pixel_flipping", "faithfulness", higher_is_better=True)
def pixel_flipping(model, inputs, attributions, target=None, **options) -> PerturbationCurve:
    """Pixel flipping (Bach et al. 2015): :func:`region_perturbation` with single features
    (``region=1``). Options as for :func:`region_perturbation`."""
    if "region" in options:
        raise TypeError("pixel_flipping perturbs single features; use region_perturbation for regions")
    return region_perturbation(model, inputs, attributions, target, region=1, **options)


@metric("abpc", "faithfulness", higher_is_better=True)
def abpc(model, inputs, attributions, target=None, **options) -> np.ndarray:
    """Area between the perturbation curves, per input: ``1/(L+1) sum_k (f(x_LeRF^k) -
    f(x_MoRF^k))`` = AOPC(MoRF) - AOPC(LeRF). Options as for :func:`region_perturbation`."""
    if "order" in options:
        raise TypeError("abpc runs both orders; do not pass 'order'")
    morf = region_perturbation(model, inputs, attributions, target, order="morf", **options)
    lerf = region_perturbation(model, inputs, attributions, target, order="lerf", **options)
    return (lerf.curve - morf.curve).mean(axis=1)


def _auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area over [0, 1] of curves sampled at equal steps (Petsiuk et al.)."""
    return (curve.sum(axis=1) - curve[:, 0] / 2 - curve[:, -1] / 2) / (curve.shape[1] - 1)


def _petsiuk(model, inputs, attributions, target, insert: bool, region, n_steps, baseline, sigma, absolute,
             output, batch_size) -> PerturbationCurve:
    x, a, adapter, t = _prepare(model, inputs, attributions, target, output, batch_size)
    regions = region_map(x.shape[1:], region)
    n_regions = int(regions.max()) + 1
    steps = min(check_positive_int(n_steps, "n_steps"), n_regions)
    rank = region_order(a, regions, "morf", absolute)
    feature_rank = rank[:, regions.reshape(-1)]
    counts = np.unique(np.round(np.linspace(0, n_regions, steps + 1)).astype(np.int64))
    if insert:
        start, fill = blur(x, sigma) if baseline is None else broadcast_reference(baseline, x), x
    else:
        start, fill = x, broadcast_reference(0.0 if baseline is None else baseline, x)
    curve = perturbation_scores(adapter, start, fill, feature_rank, counts, t, batch_size)
    return PerturbationCurve(curve, _auc(curve), "morf", n_regions, counts / n_regions, t)


@metric("deletion", "faithfulness", higher_is_better=False)
def deletion(model, inputs, attributions, target=None, *, region=1, n_steps: int = 100, baseline=None,
             absolute: bool = False, output: str = "softmax", batch_size: int | None = None) -> PerturbationCurve:
    """Deletion AUC (Petsiuk et al. 2018): features are set to ``baseline`` (default 0),
    most relevant region first, in ``n_steps`` equal fractions; the score is the trapezoid
    area under the class probability over the deleted fraction in [0, 1]. Lower is better."""
    return _petsiuk(model, inputs, attributions, target, False, region, n_steps, baseline, 0.0, absolute,
                    output, batch_size)


@metric("insertion", "faithfulness", higher_is_better=True)
def insertion(model, inputs, attributions, target=None, *, region=1, n_steps: int = 100, baseline=None,
              sigma: float = 5.0, absolute: bool = False, output: str = "softmax",
              batch_size: int | None = None) -> PerturbationCurve:
    """Insertion AUC (Petsiuk et al. 2018): starting from a Gaussian blur of the input
    (``sigma``; or ``baseline`` when given), the original features are inserted, most
    relevant region first, in ``n_steps`` equal fractions; the score is the trapezoid
    area under the class probability over the inserted fraction. Higher is better."""
    return _petsiuk(model, inputs, attributions, target, True, region, n_steps, baseline, sigma, absolute,
                    output, batch_size)
