"""More localisation metrics against a known ground truth (as in :mod:`lumos.metrics.localisation`,
masks may omit the channel axis; attributions are then summed over channels first).

- :func:`focus` (Arias-Duart, Parés, Garcia-Gasulla & Giménez-Ábalos 2022, "Focus! Rating
  XAI methods and finding biases", FUZZ-IEEE, arXiv:2109.15035): on a *mosaic* of images
  (:func:`mosaics`), the share of the positive relevance that falls on the tiles of the
  explained class.
- :func:`top_k_intersection` (Theiner, Müller-Budack & Ewerth 2021, "Interpretable
  semantic photo geolocation", arXiv:2104.14995): the fraction of the ``k`` most relevant
  features that lie in the mask.
- :func:`attribution_localisation` (Kohlbrenner et al. 2020, "Towards best practice in
  explaining neural network decisions with LRP", IJCNN, arXiv:1910.09840): the share of
  the (absolute) attribution inside the mask.

All three are ratios or orders, so a positive rescaling of a map (Quantus's default
``normalise_by_max``, per batch or per input) does not change them: lumos does not
normalise, and equals Quantus 0.6 with its defaults (tests/test_metrics_quantus_robustness.py).
"""
from __future__ import annotations

import numpy as np

from lumos.core.validate import check_positive_int
from lumos.metrics._base import metric
from lumos.metrics.localisation import _flat_pair, relevance_mass_accuracy


def tile_mask(tiles, shape: tuple[int, ...]) -> np.ndarray:
    """Pixel mask ``(N, *shape[-2:])`` (or ``(N, L)`` for a series) of the tiles flagged
    in ``tiles`` ``(N, rows, cols)`` (or ``(N, segments)``; a flat ``(N, 4)`` is the 2 x 2
    mosaic in the order top-left, top-right, bottom-left, bottom-right, Quantus's order).
    Tile edges at ``i * H // rows``: the lower/right tiles take the odd pixel, as Quantus."""
    t = np.asarray(tiles)
    if t.ndim == 2 and t.shape[1] == 4 and len(shape) >= 3:
        t = t.reshape(-1, 2, 2)
    t = t.astype(bool)
    spatial = shape[-2:] if t.ndim == 3 else shape[-1:]
    if len(shape) < t.ndim:
        raise ValueError(f"tiles of shape {t.shape} need inputs with {t.ndim - 1} positional axes, got {shape}")
    idx = []
    for size, parts in zip(spatial, t.shape[1:]):
        if parts > size:
            raise ValueError(f"{parts} tiles do not fit along an axis of {size}")
        edges = np.arange(parts + 1) * size // parts
        idx.append(np.searchsorted(edges, np.arange(size), side="right") - 1)
    grid = np.ix_(*idx)
    return t[(slice(None),) + grid]


@metric("focus", "localisation", higher_is_better=True, data=("timeseries", "image"), needs="mask")
def focus(attributions, tiles) -> np.ndarray:
    """Focus per mosaic (Arias-Duart et al. 2022), higher is better.

    ``Focus = sum_{i in target tiles} R_i^+ / sum_i R_i^+`` with ``R^+ = max(Phi, 0)``:
    1 when all positive relevance falls on the tiles of the explained class, about the
    tiles' share (0.5 in a 2 x 2 mosaic with two target tiles) for a map blind to the
    class. ``tiles`` flags the target tiles per mosaic: ``(N, 2, 2)`` or Quantus's
    ``(N, 4)`` p-batch, or any ``(N, rows, cols)`` grid (``(N, segments)`` for series);
    see :func:`mosaics`. An all-non-positive map scores 0. Equal to Quantus 0.6 ``Focus``
    (``custom_batch`` = the tiles)."""
    a = np.asarray(getattr(attributions, "values", attributions))
    mask = tile_mask(tiles, a.shape)
    return relevance_mass_accuracy(attributions, mask, positive=True)


def mosaics(images, labels, n_per_class: int = 10, *, classes=None, seed=0):
    """Build 2 x 2 mosaics for :func:`focus`: for each class c, ``n_per_class`` mosaics of
    two images of class c and two of other classes at random positions.

    Returns ``(mosaics (M, C, 2H, 2W), targets (M,), tiles (M, 2, 2) bool, sources (M, 4))``
    with ``sources`` the indices of the four images (top-left, top-right, bottom-left,
    bottom-right). Drawn from ``numpy.random.default_rng(seed)``."""
    x = np.asarray(images)
    y = np.asarray(labels).reshape(-1)
    if x.ndim != 4:
        raise ValueError(f"mosaics need images (N, C, H, W), got shape {x.shape}")
    n_per_class = check_positive_int(n_per_class, "n_per_class")
    rng = np.random.default_rng(seed)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if len(np.unique(y)) < 2:
        raise ValueError("mosaics need images of at least two classes")
    out, targets, flags, sources = [], [], [], []
    for c in classes:
        own, other = np.flatnonzero(y == c), np.flatnonzero(y != c)
        if own.size == 0:
            raise ValueError(f"no image of class {c}")
        for _ in range(n_per_class):
            pick = np.concatenate([rng.choice(own, 2, replace=own.size < 2), rng.choice(other, 2, replace=other.size < 2)])
            order = rng.permutation(4)
            pick, is_target = pick[order], (order < 2)
            top = np.concatenate([x[pick[0]], x[pick[1]]], axis=2)
            bottom = np.concatenate([x[pick[2]], x[pick[3]]], axis=2)
            out.append(np.concatenate([top, bottom], axis=1))
            targets.append(c)
            flags.append(is_target.reshape(2, 2))
            sources.append(pick)
    return np.stack(out), np.asarray(targets), np.stack(flags), np.stack(sources)


@metric("top_k_intersection", "localisation", higher_is_better=True, needs="mask")
def top_k_intersection(attributions, mask, *, k: float | int = 0.1, concept_influence: bool = False) -> np.ndarray:
    """Top-k intersection per input (Theiner et al. 2021), higher is better.

    The fraction of the ``k`` largest attributions (signed; ties by position) that lie in
    the mask; ``k < 1`` is a fraction of the features (Quantus takes a count, default
    1000, meant for 224 x 224 images). ``concept_influence`` divides by the mask's share
    of the features (1 = chance). A one-hot mask on the map's maximum with ``k=1``
    scores 1. Equal to Quantus 0.6 ``TopKIntersection(k)`` where the top k hold no ties
    (Quantus sorts with an unstable sort)."""
    a, m = _flat_pair(attributions, mask)
    d = a.shape[1]
    kk = int(np.ceil(k * d)) if k < 1 else int(k)
    if not 1 <= kk <= d:
        raise ValueError(f"k={k} gives {kk} features out of {d}")
    if kk == d:
        top = np.ones_like(m)
    else:
        part = np.argpartition(-a, kk - 1, axis=1)[:, :kk]  # the kk largest, then ordered with ties by position
        kth = np.take_along_axis(a, part, axis=1).min(axis=1, keepdims=True)
        above = a > kth
        ties = (a == kth) & (np.cumsum(a == kth, axis=1) <= kk - above.sum(axis=1, keepdims=True))
        top = above | ties
    score = (top & m).sum(axis=1) / kk
    if concept_influence:
        score = score * d / m.sum(axis=1)
    return score


@metric("attribution_localisation", "localisation", higher_is_better=True, needs="mask")
def attribution_localisation(attributions, mask, *, absolute: bool = True, positive: bool = False,
                             weighted: bool = False) -> np.ndarray:
    """Attribution localisation per input (Kohlbrenner et al. 2020), higher is better.

    ``mu = sum_{i in mask} R_i / sum_i R_i`` with ``R = |Phi|`` (``absolute``, Quantus's
    default), ``max(Phi, 0)`` (``positive``) or ``Phi``; NaN where the ratio exceeds 1
    (mixed signs with ``absolute=False``, as Quantus). ``weighted=True`` divides by the
    mask's share of the features, ``|mask| / d``, so that a uniform map scores 1 (Quantus
    0.6's ``weighted`` multiplies by ``|mask| / x_batch[2:].size``, a slice of the batch
    rather than one input, so only ``weighted=False`` is compared). A map that is zero
    outside the mask scores 1. Equal to Quantus 0.6 ``AttributionLocalisation(abs,
    positive_attributions)`` (Quantus adds 1e-9 to the denominator)."""
    a, m = _flat_pair(attributions, mask)
    if positive:
        a = np.clip(a, 0, None)
    elif absolute:
        a = np.abs(a)
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(total != 0, (a * m).sum(axis=1) / np.where(total != 0, total, 1.0), 0.0)
    mu = np.where(mu > 1, np.nan, mu)
    if weighted:
        mu = mu * m.shape[1] / m.sum(axis=1)
    return mu
