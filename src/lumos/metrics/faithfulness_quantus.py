"""Faithfulness metrics of the Quantus family (Hedström et al. 2023), batched.

Each metric equals Quantus 0.6.0 on the same model, inputs, attributions and settings
(``tests/test_metrics_quantus_faithfulness.py`` names the settings of each comparison);
where Quantus deviates from the paper or from itself across batch sizes the docstring says
how lumos chooses. Every metric builds the perturbed copies of a chunk of inputs at once and
scores them in model calls of at most ``batch_size`` rows; a copy identical to one already
scored (a feature replaced by the value it already holds) is not scored again.

- :func:`road` (Rong et al. 2022, arXiv 2202.00449): accuracy after the top (MoRF) or bottom
  (LeRF) p % of pixels are replaced by a noisy linear imputation of their neighbours.
- :func:`irof` (Rieger & Hansen 2020, arXiv 2003.08747): area over the curve of the class
  score (relative to the clean input) while superpixels are removed, most relevant first.
- :func:`monotonicity` (Arya et al. 2019, arXiv 1909.03012): the score rises monotonically
  while features are added to a baseline, least relevant first.
- :func:`monotonicity_correlation` (Nguyen & Martínez 2020, arXiv 2007.07584): Spearman
  correlation between attributions and the variance of the score when each is perturbed.
- :func:`faithfulness_correlation` (Bhatt et al. 2020, arXiv 2005.00631): Pearson correlation
  between the attribution sum of random subsets and the score drop when they are removed.
- :func:`faithfulness_estimate` (Alvarez-Melis & Jaakkola 2018, arXiv 1806.07538): Pearson
  correlation between each feature's attribution and the score drop when it alone is removed.
- :func:`selectivity` (Montavon et al. 2018, arXiv 1706.07979): area under the score curve
  while patches are removed, most relevant first.
- :func:`sufficiency` (Dasgupta et al. 2022, arXiv 2202.00734): among inputs whose
  explanations are close, the fraction that share the predicted class.

Baselines (``baseline=``) are named as in Quantus: ``"black"`` / ``"white"`` the input's
minimum / maximum, ``"mean"`` its mean (all per input), a number, or an array shaped like
one input or like the inputs.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from lumos.core.batching import chunk_slices
from lumos.core.model import as_adapter
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int
from lumos.metrics._base import attributions_of, inputs_of, inputs_per_call, metric, region_map, scorer
from lumos.metrics.axioms import _pearson_rows
from lumos.metrics.faithfulness import PerturbationCurve, perturbation_scores, region_order

NAMED_BASELINES = ("black", "white", "mean")


# -- shared pieces ---------------------------------------------------------------------
def baseline_fill(x: np.ndarray, baseline) -> np.ndarray:
    """Replacement values shaped like ``x``: ``"black"`` / ``"white"`` / ``"mean"`` are each
    input's min / max / mean (Quantus's names), otherwise a scalar or array broadcast."""
    if isinstance(baseline, str):
        check_choice(baseline, "baseline", NAMED_BASELINES)
        axes = tuple(range(1, x.ndim))
        value = {"black": x.min, "white": x.max, "mean": x.mean}[baseline](axis=axes, keepdims=True)
        return np.broadcast_to(value.astype(x.dtype), x.shape)
    return broadcast_reference(baseline, x)


def _setup(model, inputs, attributions, target, output, batch_size, absolute=False):
    """Inputs, flat attributions (their dtype kept, so orderings tie as Quantus's do), the
    adapter, targets and the clean target scores."""
    x = inputs_of(inputs, attributions)
    a = np.asarray(attributions_of(attributions, x)).reshape(len(x), -1)
    if absolute:
        a = np.abs(a)
    adapter = as_adapter(model, output=output)
    with scorer(adapter, x[0].size, batch_size=batch_size) as bound:
        scores = bound.scores(x)
    t = adapter.targets(target, scores)
    return x, a, adapter, t, scores[np.arange(len(t)), t]


def _group_order(a2: np.ndarray, descending: bool) -> np.ndarray:
    """Features of each row sorted by attribution (``np.argsort`` of ``-a`` or ``a``, as
    Quantus sorts), (N, D)."""
    return np.argsort(-a2 if descending else a2, axis=1)


def _groups(a2: np.ndarray, descending: bool, features_in_step: int, order: np.ndarray | None = None) -> np.ndarray:
    """Step at which each feature is perturbed, (N, D): features sorted by attribution
    (:func:`_group_order`, or ``order`` when given) in runs of ``features_in_step``."""
    order = _group_order(a2, descending) if order is None else order
    group = np.empty_like(order)
    steps = np.arange(a2.shape[1]) // features_in_step
    np.put_along_axis(group, order, np.broadcast_to(steps, order.shape), axis=1)
    return group


def _members(order: np.ndarray, features_in_step: int) -> np.ndarray:
    """The features of every group, (N, G, features_in_step), from the sorted ``order``
    (N, D); a last group shorter than ``features_in_step`` repeats its last feature (setting
    a feature twice to the same value changes nothing)."""
    n, d = order.shape
    pad = -d % features_in_step
    if pad:
        order = np.concatenate([order, np.repeat(order[:, -1:], pad, axis=1)], axis=1)
    return order.reshape(n, -1, features_in_step)


def _group_sums(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of ``values`` (N, D) over each group, (N, G)."""
    n = values.shape[0]
    idx = (group + n_groups * np.arange(n)[:, None]).ravel()
    return np.bincount(idx, weights=np.asarray(values, dtype=np.float64).ravel(),
                       minlength=n * n_groups).reshape(n, n_groups)


def _single_group_scores(bound, x2, fill2, group, members, t, shape, fx) -> np.ndarray:
    """(N, G) target scores of the copies in which only group ``g`` (the features
    ``members[:, g]``, see :func:`_members`) holds ``fill2``; a group whose features already
    hold the fill value leaves the input as it is (score f(x)). Each copy is the input with
    the group's features written over (not a where over all D features)."""
    n_groups = members.shape[1]
    changed = _group_sums(fill2 != x2, group, n_groups) > 0
    out = np.repeat(fx[:, None], n_groups, axis=1).astype(np.float64)
    rows, steps = np.nonzero(changed)
    for sl in chunk_slices(rows.size, bound.batch_size):
        r, s = rows[sl], steps[sl]
        idx = members[r, s]  # (k, features_in_step)
        copies = np.asarray(x2[r], dtype=np.result_type(x2.dtype, fill2.dtype))  # np.where's dtype
        copies[np.arange(r.size)[:, None], idx] = fill2[r[:, None], idx]
        out[r, s] = bound.scores(copies.reshape(-1, *shape))[np.arange(r.size), t[r]]
    return out


def _spearman_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Spearman correlation per row (average ranks for ties, as scipy.stats.spearmanr)."""
    return _pearson_rows(rankdata(u, axis=1), rankdata(v, axis=1))


def _trapezoid(curve: np.ndarray) -> np.ndarray:
    """``np.trapz(curve, dx=1, axis=1)``."""
    return curve.sum(axis=1) - (curve[:, 0] + curve[:, -1]) / 2


# -- correlation metrics ------------------------------------------------------------------
@metric("faithfulness_correlation", "faithfulness", higher_is_better=True)
def faithfulness_correlation(model, inputs, attributions, target=None, *, n_runs: int = 100,
                             subset_size: int | None = None, baseline="black", subsets=None, absolute: bool = False,
                             output: str = "raw", batch_size: int | None = None, seed=0) -> np.ndarray:
    """Faithfulness correlation per input (Bhatt et al. 2020, IJCAI, arXiv 2005.00631).

    For ``n_runs`` random subsets ``S`` of ``subset_size`` features, the Pearson correlation
    between ``sum_{i in S} Phi_i`` and ``f(x) - f(x_{S = baseline})``. Higher is better.
    ``subset_size=None`` takes ``min(224, D // 2)`` of the ``D`` features (224 is Quantus's
    default, made for 224 x 224 images). Quantus's defaults: 100 runs of 224 features, ``baseline="black"`` (the input's minimum),
    raw scores (logits; Quantus's ``softmax=False`` for this metric). ``subsets`` (N, n_runs, subset_size) feature indices (of the flattened
    input) replace the draws; otherwise they are drawn from ``seed`` input after input, so
    the values do not depend on ``batch_size``. A constant row gives 0 (Quantus: NaN).
    """
    x, a2, adapter, t, fx = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    n, d = a2.shape
    x2 = x.reshape(n, -1)
    fill2 = np.asarray(baseline_fill(x, baseline)).reshape(n, -1)
    if subsets is not None:
        subsets = np.asarray(subsets)
        if subsets.ndim != 3 or subsets.shape[0] != n or not np.issubdtype(subsets.dtype, np.integer):
            raise ValueError(f"subsets must be integer feature indices of shape (N={n}, n_runs, subset_size), "
                             f"got {subsets.shape} {subsets.dtype}")
        if subsets.min() < 0 or subsets.max() >= d:
            raise ValueError(f"subsets index features in [0, {d - 1}]")
        n_runs, subset_size = subsets.shape[1:]
    n_runs = check_positive_int(n_runs, "n_runs", 2)
    subset_size = max(1, min(224, d // 2)) if subset_size is None else subset_size
    subset_size = check_positive_int(subset_size, "subset_size")
    if subset_size > d:
        raise ValueError(f"subset_size={subset_size} exceeds the {d} features of an input")
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    with scorer(adapter, d, batch_size=batch_size) as bound:
        for sl in chunk_slices(n, inputs_per_call(batch_size, d, n_runs)):
            k = sl.stop - sl.start
            if subsets is None:
                chosen = np.argpartition(rng.random((k, n_runs, d)), subset_size - 1, axis=2)[:, :, :subset_size]
            else:
                chosen = subsets[sl]
            mask = np.zeros((k, n_runs, d), dtype=bool)
            np.put_along_axis(mask, chosen, True, axis=2)
            copies = np.where(mask, fill2[sl, None], x2[sl, None]).reshape(-1, *x.shape[1:])
            scores = bound.scores(copies)[np.arange(k * n_runs), np.repeat(t[sl], n_runs)].reshape(k, n_runs)
            att = np.take_along_axis(np.broadcast_to(a2[sl, None], (k, n_runs, d)), chosen, axis=2).sum(axis=2)
            out[sl] = _pearson_rows(att, fx[sl, None] - scores)
    return out


@metric("faithfulness_estimate", "faithfulness", higher_is_better=True)
def faithfulness_estimate(model, inputs, attributions, target=None, *, features_in_step: int = 1,
                          baseline="black", absolute: bool = False, output: str = "raw",
                          batch_size: int | None = None) -> np.ndarray:
    """Faithfulness estimate per input (Alvarez-Melis & Jaakkola 2018, NeurIPS, arXiv 1806.07538).

    Features in decreasing order of attribution, in groups of ``features_in_step``; group
    ``g`` alone is set to ``baseline`` (default ``"black"``, the input's minimum). The score is
    the Pearson correlation over the groups between ``sum_{i in g} Phi_i`` and ``f(x) - f(x_g)``.
    ``output="raw"`` (logits) as Quantus's default ``softmax=False`` for this metric. Higher is
    better. A constant row gives 0 (Quantus: NaN).
    """
    x, a2, adapter, t, fx = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    n, d = a2.shape
    fis = check_positive_int(features_in_step, "features_in_step")
    n_groups = math.ceil(d / fis)
    x2 = x.reshape(n, -1)
    fill2 = np.asarray(baseline_fill(x, baseline)).reshape(n, -1)
    att, drop = np.empty((n, n_groups)), np.empty((n, n_groups))
    with scorer(adapter, d, batch_size=batch_size) as bound:
        for sl in chunk_slices(n, inputs_per_call(batch_size, d, n_groups)):
            order = _group_order(a2[sl], True)
            group = _groups(a2[sl], True, fis, order)
            scores = _single_group_scores(bound, x2[sl], fill2[sl], group, _members(order, fis), t[sl], x.shape[1:],
                                          fx[sl])
            att[sl], drop[sl] = _group_sums(a2[sl], group, n_groups), fx[sl, None] - scores
    return _pearson_rows(att, drop)  # all rows in one call


@metric("monotonicity_correlation", "faithfulness", higher_is_better=True)
def monotonicity_correlation(model, inputs, attributions, target=None, *, n_samples: int = 100,
                             features_in_step: int = 1, baseline="uniform", uniform_range=(0.0, 1.0),
                             eps: float = 1e-5, absolute: bool = True, output: str = "softmax",
                             batch_size: int | None = None, seed=0) -> np.ndarray:
    """Monotonicity correlation per input (Nguyen & Martínez 2020, arXiv 2007.07584).

    Features in increasing order of attribution, in groups of ``features_in_step``. Group
    ``g`` alone is replaced ``n_samples`` times; its variance term is
    ``v_g = mean_s (f(x_g^s) - f(x))^2 / f(x)^2`` (no division when ``|f(x)| < eps``), and the
    score is the Spearman correlation between ``sum_{i in g} Phi_i`` and ``v_g``. Higher is
    better. ``baseline="uniform"`` (Quantus's default) draws one value per copy from
    ``U(uniform_range)``, from ``seed`` input after input; a deterministic baseline
    (``"black"``, a number...) makes the ``n_samples`` copies identical, so each group is
    scored once. ``absolute=True`` ranks ``|Phi|`` (Quantus's default ``abs=True``).
    """
    x, a2, adapter, t, fx = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    n, d = a2.shape
    fis = check_positive_int(features_in_step, "features_in_step")
    n_samples = check_positive_int(n_samples, "n_samples")
    n_groups = math.ceil(d / fis)
    x2 = x.reshape(n, -1)
    shape = x.shape[1:]
    inv = np.where(np.abs(fx) >= eps, 1.0 / np.maximum(np.abs(fx), eps) ** 2, 1.0)
    uniform = isinstance(baseline, str) and baseline == "uniform"
    fill2 = None if uniform else np.asarray(baseline_fill(x, baseline)).reshape(n, -1)
    lo, hi = uniform_range
    rng = np.random.default_rng(seed)
    att, var = np.empty((n, n_groups)), np.empty((n, n_groups))
    with scorer(adapter, d, batch_size=batch_size) as bound:
        copies_per_input = n_groups * (n_samples if uniform else 1)
        for sl in chunk_slices(n, inputs_per_call(batch_size, d, copies_per_input)):
            k = sl.stop - sl.start
            order = _group_order(a2[sl], False)
            group = _groups(a2[sl], False, fis, order)
            members = _members(order, fis)
            att[sl] = _group_sums(a2[sl], group, n_groups)
            if uniform:
                u = rng.uniform(lo, hi, size=(k, n_groups, n_samples))
                rows, steps, draws = (g.ravel() for g in np.indices(u.shape))
                sq = np.empty(rows.size)
                for part in chunk_slices(rows.size, bound.batch_size):
                    r, s = rows[part], steps[part]
                    copies = x2[sl][r]
                    copies[np.arange(r.size)[:, None], members[r, s]] = u.ravel()[part, None].astype(x.dtype)
                    f = bound.scores(copies.reshape(-1, *shape))[np.arange(r.size), t[sl][r]]
                    sq[part] = (f - fx[sl][r]) ** 2
                var[sl] = sq.reshape(k, n_groups, n_samples).mean(axis=2)
            else:
                scores = _single_group_scores(bound, x2[sl], fill2[sl], group, members, t[sl], shape, fx[sl])
                var[sl] = (scores - fx[sl, None]) ** 2
    # one ranking of all rows at the end (rankdata's cost is mostly per call, not per row)
    return _spearman_rows(att, var * inv[:, None])


# -- curve metrics -------------------------------------------------------------------------
@metric("monotonicity", "faithfulness", higher_is_better=True)
def monotonicity(model, inputs, attributions, target=None, *, features_in_step: int = 1, baseline="black",
                 absolute: bool = True, output: str = "softmax", batch_size: int | None = None) -> PerturbationCurve:
    """Monotonicity (Arya et al. 2019, AIX360, arXiv 1909.03012), 1 or 0 per input.

    Starting from the ``baseline`` (default ``"black"``, the input's minimum, everywhere),
    the input's features are added back in increasing order of attribution, in groups of
    ``features_in_step``; the input scores 1 when the target score never decreases over the
    steps, ``f(x^1) <= f(x^2) <= ... <= f(x^G)``. ``curve`` holds ``f(x^0..G)`` (column 0:
    the baseline alone). Higher is better.

    Quantus 0.6.0's ``Monotonicity`` replaces features of the baseline image with the
    baseline again (its ``perturb_func`` is given the baseline array), so every step scores
    the same image and every input scores True; the tests compare with Quantus given a
    ``perturb_func`` that inserts the input's values, the perturbation its docstring describes.
    """
    x, a2, adapter, t, _ = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    n, d = a2.shape
    fis = check_positive_int(features_in_step, "features_in_step")
    n_groups = math.ceil(d / fis)
    start = baseline_fill(x, baseline)
    counts = np.arange(n_groups + 1)
    curve = perturbation_scores(adapter, start, x, _groups(a2, False, fis), counts, t, batch_size)
    monotone = np.all(np.diff(curve[:, 1:], axis=1) >= 0, axis=1).astype(np.float64)
    return PerturbationCurve(curve, monotone, "lerf", n_groups, counts / n_groups, t)


@metric("selectivity", "faithfulness", higher_is_better=False)
def selectivity(model, inputs, attributions, target=None, *, patch_size=8, baseline="black",
                absolute: bool = False, output: str = "softmax", batch_size: int | None = None) -> PerturbationCurve:
    """Selectivity (Montavon et al. 2018, Digital Signal Processing, arXiv 1706.07979).

    Patches of ``patch_size`` (:func:`lumos.metrics._base.region_map`: all channels of a
    patch, a centred grid as Quantus pads) are set to ``baseline`` (default ``"black"``, the
    input's minimum) one after the other, largest attribution sum first; ``scores`` is the
    trapezoid area under ``f(x^1), ..., f(x^R)`` with unit steps (Quantus's ``get_auc_score``
    per input; ``curve`` column 0 is the clean input and not part of the area). A fast drop
    (low area) is better.
    """
    x, a2, adapter, t, _ = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    regions = region_map(x.shape[1:], patch_size)
    n_regions = int(regions.max()) + 1
    rank = region_order(a2.reshape(x.shape), regions, "morf")
    counts = np.arange(n_regions + 1)
    curve = perturbation_scores(adapter, x, baseline_fill(x, baseline), rank[:, regions.reshape(-1)], counts, t,
                                batch_size)
    area = _trapezoid(curve[:, 1:]) if n_regions > 1 else np.zeros(len(x))
    return PerturbationCurve(curve, area, "morf", n_regions, counts / n_regions, t)


def slic_segments(x: np.ndarray, **options) -> np.ndarray:
    """SLIC superpixels of every image (N, C, H, W) -> (N, H, W) labels from 0, computed as
    Quantus does (``skimage.segmentation.slic(image (H, W, C) as float64, start_label=0)``)."""
    try:
        from skimage.segmentation import slic
    except ImportError:  # pragma: no cover - scikit-image is in the test extra
        raise ImportError("irof's superpixels need scikit-image: pip install scikit-image, "
                          "or pass segments=") from None
    options.setdefault("start_label", 0)
    return np.stack([slic(np.moveaxis(img, 0, -1).astype(np.float64), **options) for img in x])


@metric("irof", "faithfulness", higher_is_better=True, data=("image",))
def irof(model, inputs, attributions, target=None, *, segments=None, baseline="mean", absolute: bool = False,
         output: str = "softmax", batch_size: int | None = None, **slic_options) -> PerturbationCurve:
    """Iterative removal of features, IROF (Rieger & Hansen 2020, arXiv 2003.08747).

    The image is cut into superpixels (``segments`` (N, H, W) integer labels, or SLIC as in
    Quantus: :func:`slic_segments`, ``slic_options`` passed on), ranked by their mean
    attribution (all channels); they are set to ``baseline`` one after the other, most
    relevant first. With ``p_k = f(x^k) / f(x)`` after ``k`` of the ``S`` segments, the
    score is the area over the curve ``S - trapz(p_1, ..., p_S)`` (Quantus's definition,
    unit steps). Higher is better.

    Differences from Quantus 0.6.0, which agree with it when its batch holds one image:
    ``baseline="mean"`` is the mean of the clean input (Quantus takes the mean of the whole
    batch of partly perturbed images at every step), and an image with fewer segments than
    others is not padded (Quantus's batch padding subtracts another ``p_S / 2``).
    """
    x, a2, adapter, t, fx = _setup(model, inputs, attributions, target, output, batch_size, absolute)
    if x.ndim != 4:
        raise ValueError(f"irof needs images (N, C, H, W), got inputs of shape {x.shape}")
    n = len(x)
    seg = slic_segments(x, **slic_options) if segments is None else np.asarray(segments)
    if seg.shape != (n, *x.shape[2:]) or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"segments must be integer labels of shape {(n, *x.shape[2:])}, got {seg.shape} {seg.dtype}")
    labels = np.stack([np.unique(s, return_inverse=True)[1].reshape(s.shape) for s in seg])
    n_seg = labels.reshape(n, -1).max(axis=1) + 1
    s_max = int(n_seg.max())
    full = np.broadcast_to(labels[:, None], x.shape).reshape(n, -1)
    sums = _group_sums(a2, full, s_max)
    sizes = np.maximum(_group_sums(np.ones_like(a2), full, s_max), 1)
    att = np.where(np.arange(s_max)[None] < n_seg[:, None], sums / sizes, -np.inf)
    order = np.argsort(-att, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(s_max), order.shape), axis=1)
    counts = np.arange(s_max + 1)
    curve = perturbation_scores(adapter, x, baseline_fill(x, baseline), np.take_along_axis(rank, full, axis=1),
                                counts, t, batch_size)
    p = curve[:, 1:] / fx[:, None]
    k = np.arange(s_max)[None]
    inside = k < n_seg[:, None]
    last = np.take_along_axis(p, (n_seg - 1)[:, None], axis=1)[:, 0]
    trapz = (p * inside).sum(axis=1) - (p[:, 0] + last) / 2
    trapz = np.where(n_seg > 1, trapz, 0.0)
    return PerturbationCurve(curve, n_seg - trapz, "morf", s_max, counts / s_max, t)


# -- ROAD ---------------------------------------------------------------------------------------
_NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
               ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def linear_imputation(images: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Rong et al.'s linear imputation of many images at once.

    ``images`` (M, C, H, W), ``removed`` (M, H*W) bool. Every removed pixel takes the
    weighted mean of its 8 neighbours (weights 1/6 for the 4 direct, 1/12 for the diagonal
    ones, renormalised at the border), removed neighbours being unknowns themselves: one
    sparse linear system per image, all solved as one block-diagonal system with one
    right-hand side per channel. Returns the values of the removed pixels, (K, C), in the
    order of ``np.nonzero(removed)``.
    """
    m, c, h, w = images.shape
    sys_id, pix = np.nonzero(removed)
    k = pix.size
    var = np.full((m, h * w), -1, dtype=np.int64)
    var[sys_id, pix] = np.arange(k)
    flat = images.reshape(m, c, h * w)
    b = np.zeros((k, c))
    diag = np.ones(k)
    rows, cols, vals = [], [], []
    py, px = pix // w, pix % w
    for (dy, dx), weight in _NEIGHBOURS:
        ny, nx = py + dy, px + dx
        valid = (ny >= 0) & (nx >= 0) & (ny < h) & (nx < w)
        diag[~valid] -= weight
        i = np.nonzero(valid)[0]
        nb = ny[i] * w + nx[i]
        nv = var[sys_id[i], nb]
        unknown = nv >= 0
        rows.append(i[unknown])
        cols.append(nv[unknown])
        vals.append(np.full(int(unknown.sum()), weight))
        known = i[~unknown]
        b[known] -= weight * flat[sys_id[known], :, nb[~unknown]]
    rows.append(np.arange(k))
    cols.append(np.arange(k))
    vals.append(-diag)
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    # unknowns are numbered image after image in pixel order, so a neighbour is at most W + 1
    # unknowns away: the system is banded, and a banded LU (LAPACK gbsv) costs O(K W^2), where a
    # general sparse LU of these grids spent 3x longer on fill-in (measured on MNIST)
    band = int(np.abs(rows - cols).max()) if k else 0
    if 0 < band <= 64:
        ab = np.zeros((2 * band + 1, k))
        np.add.at(ab, (band + rows - cols, cols), vals)
        return scipy.linalg.solve_banded((band, band), ab, b, check_finite=False)
    a = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(k, k))
    return scipy.sparse.linalg.splu(a, permc_spec="NATURAL").solve(b)


@metric("road", "faithfulness", higher_is_better=False, data=("image",))
def road(model, inputs, attributions, target=None, *, percentages=None, order: str = "morf", noise: float = 0.01,
         output: str = "softmax", batch_size: int | None = None, seed=0) -> PerturbationCurve:
    """RemOve And Debias, ROAD (Rong et al. 2022, ICML, arXiv 2202.00449).

    For every ``p`` in ``percentages`` (default 1, 3, ..., 99 as Quantus), the
    ``int(H W p / 100)`` pixels with the largest (``order="morf"``) or smallest (``"lerf"``)
    attribution (summed over channels) are replaced by their noisy linear imputation
    (:func:`linear_imputation` plus ``noise`` x N(0, 1), drawn from ``seed`` input after
    input); ``curve[n, j]`` is 1 when the model still predicts ``target`` (None: the class
    predicted on the clean input), ``scores`` its mean over the percentages. For MoRF a fast
    drop (low score) is better; for LeRF a high score. ``fractions`` are ``p / 100``.

    Quantus 0.6.0 (MoRF only) uses the same weights and equations; it draws its noise from
    NumPy's global state and sorts the flattened attributions, so it handles one channel.
    """
    order = check_choice(order, "order", ("morf", "lerf"))
    x = inputs_of(inputs, attributions)
    if x.ndim != 4:
        raise ValueError(f"road imputes pixels of images (N, C, H, W), got inputs of shape {x.shape}")
    a = np.asarray(attributions_of(attributions, x))
    n, c, h, w = x.shape
    per_pixel = (a[:, 0] if c == 1 else a.sum(axis=1)).reshape(n, -1)
    percentages = list(range(1, 100, 2)) if percentages is None else list(percentages)
    if not percentages or any(not 0 <= p <= 100 for p in percentages):
        raise ValueError(f"percentages must lie in [0, 100], got {percentages!r}")
    sizes = np.array([int(h * w * p / 100) for p in percentages])
    ranked = np.argsort(-per_pixel if order == "morf" else per_pixel, axis=1)
    rank = np.empty_like(ranked)
    np.put_along_axis(rank, ranked, np.broadcast_to(np.arange(h * w), ranked.shape), axis=1)
    adapter = as_adapter(model, output=output)
    rng = np.random.default_rng(seed)
    n_p = len(percentages)
    curve = np.empty((n, n_p))
    with scorer(adapter, x[0].size, batch_size=batch_size) as bound:
        t = adapter.targets(target, bound.scores(x))
        for sl in chunk_slices(n, inputs_per_call(batch_size, x[0].size, n_p)):
            k = sl.stop - sl.start
            removed = (rank[sl, None, :] < sizes[None, :, None]).reshape(k * n_p, h * w)
            images = np.repeat(x[sl], n_p, axis=0)
            values = linear_imputation(images, removed)
            if noise:
                values = values + noise * rng.standard_normal(values.shape)
            sys_id, pix = np.nonzero(removed)
            flat = images.reshape(k * n_p, c, h * w)
            flat[sys_id, :, pix] = values.astype(x.dtype)
            pred = np.argmax(bound.scores(flat.reshape(images.shape)), axis=1)
            curve[sl] = (pred == np.repeat(t[sl], n_p)).reshape(k, n_p)
    fractions = np.asarray(percentages, dtype=np.float64) / 100
    return PerturbationCurve(curve, curve.mean(axis=1), order, h * w, fractions, t)


# -- sufficiency --------------------------------------------------------------------------------
_SCALED = {"euclidean": lambda a: a,
           "seuclidean": lambda a: a / np.sqrt(a.var(axis=0, ddof=1))}  # cdist's default V: the variances, ddof 1
"""Distances that are the Euclidean distance of the rows scaled by these."""


def _close_pairs(a: np.ndarray, distance: str, threshold: float) -> np.ndarray:
    """``cdist(a, a, distance) / max <= threshold`` for the rows of ``a`` (N, d). The (standardised)
    Euclidean distances come from one matrix product of the scaled rows ``z``,
    ``sqrt(|z_i|^2 + |z_j|^2 - 2 z_i.z_j)`` (BLAS instead of cdist's O(N^2 d) loop); the pairs that
    rounding could decide (within 1e-9 of the threshold) and the maximum are measured again from
    the differences of their rows, as cdist does; other distances by cdist."""
    n = len(a)
    if not a.shape[1]:
        dist = np.zeros((n, n))
    elif distance not in _SCALED:
        dist = cdist(a, a, distance)
    else:
        z = _SCALED[distance](a)
        sq = np.einsum("ij,ij->i", z, z)
        dist = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        np.fill_diagonal(dist, 0.0)
        np.sqrt(np.maximum(dist, 0.0, out=dist), out=dist)

        def exact(i, j):
            return np.sqrt(np.square(z[i] - z[j]).sum(axis=-1))

        top = exact(*np.unravel_index(np.argmax(dist), dist.shape))
        if top > 0:
            near = np.argwhere(np.abs(dist / top - threshold) <= 1e-9 * max(threshold, 1.0))
            dist /= top
            dist[near[:, 0], near[:, 1]] = exact(near[:, 0], near[:, 1]) / top
        return dist <= threshold
    top = np.abs(dist).max()
    return (dist / top if top > 0 else dist) <= threshold


@metric("sufficiency", "faithfulness", higher_is_better=True)
def sufficiency(model, inputs, attributions, target=None, *, threshold: float = 0.6, distance: str = "seuclidean",
                absolute: bool = True, batch_size: int | None = None) -> np.ndarray:
    """Sufficiency (Dasgupta, Frost & Moshkovitz 2022, ICML, arXiv 2202.00734), per input.

    Distances between the (absolute, ``absolute=True``) attributions of all inputs given
    (``scipy.spatial.distance.cdist`` with ``distance``, default the standardised Euclidean
    distance with the variances of this set), divided by their maximum; input ``i``'s score
    is the fraction of the other inputs within ``threshold`` whose predicted class equals
    ``i``'s (0 without such neighbours). Higher is better. ``target`` is not used: the
    definition compares predicted classes. The set is the batch, as in Quantus (whose
    batches of ``batch_size`` inputs are separate sets); features whose attribution is the
    same for every input carry no distance and are left out of ``"seuclidean"`` (Quantus
    divides 0 by a 0 variance and gets NaN). Euclidean distances are taken from one matrix
    product (:func:`_close_pairs`), the pairs near the threshold measured again as cdist does.
    """
    x = inputs_of(inputs, attributions)
    a2 = np.asarray(attributions_of(attributions, x), dtype=np.float64).reshape(len(x), -1)
    if absolute:
        a2 = np.abs(a2)
    if distance == "seuclidean":
        a2 = a2[:, a2.var(axis=0, ddof=1) > 0] if len(x) > 1 else a2[:, :0]
    close = _close_pairs(a2, distance, threshold)
    np.fill_diagonal(close, False)
    with scorer(model, x[0].size, batch_size=batch_size) as bound:
        pred = np.argmax(bound.scores(x), axis=1)
    same = pred[None, :] == pred[:, None]
    n_close = close.sum(axis=1)
    return np.where(n_close > 0, (close & same).sum(axis=1) / np.maximum(n_close, 1), 0.0)
