"""Localisation against a known ground-truth mask (e.g. a planted cue, a watermark).

- :func:`relevance_mass_accuracy` (Arras et al. 2022, arXiv 2003.07258):
  ``R_within / R_total`` of the positive relevance.
- :func:`relevance_rank_accuracy` (Arras et al. 2022): with ``K = |mask|``, the fraction
  of the K most relevant features that lie inside the mask.
- :func:`pointing_game` (Zhang et al. 2018): 1 if the most relevant feature lies in the
  mask (optionally dilated by ``tolerance`` features), else 0.

Masks may omit the channel axis (``(N, H, W)`` for ``(N, C, H, W)`` attributions); then
attributions are summed over channels first.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from lumos.core.explanation import Explanation
from lumos.metrics._base import metric


def _pair(attributions, mask) -> tuple[np.ndarray, np.ndarray]:
    a = attributions.values if isinstance(attributions, Explanation) else attributions
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    m = np.asarray(mask)
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("mask must be boolean or 0/1")
        m = m.astype(bool)
    if m.ndim == a.ndim - 1 and a.ndim >= 3 and m.shape[0] == a.shape[0]:
        a = a.sum(axis=1)  # channels pooled to the mask's resolution
    if m.shape != a.shape:
        try:
            m = np.broadcast_to(m, a.shape)
        except ValueError:
            raise ValueError(f"mask of shape {m.shape} does not match attributions of shape {a.shape}") from None
    if not m.reshape(a.shape[0], -1).any(axis=1).all():
        raise ValueError("every input needs a non-empty mask")
    return a, m


def _flat_pair(attributions, mask) -> tuple[np.ndarray, np.ndarray]:
    a, m = _pair(attributions, mask)
    return a.reshape(a.shape[0], -1), m.reshape(a.shape[0], -1)


@metric("relevance_mass_accuracy", "localisation", higher_is_better=True, needs="mask")
def relevance_mass_accuracy(attributions, mask, *, positive: bool = True) -> np.ndarray:
    """``sum_{i in mask} R_i / sum_i R_i`` with ``R = max(Phi, 0)`` (``positive=True``, as in
    Arras et al.) or ``R = |Phi|``. 1 when all relevance lies inside the mask; 0 for an
    all-zero map."""
    a, m = _flat_pair(attributions, mask)
    r = np.clip(a, 0, None) if positive else np.abs(a)
    total = r.sum(axis=1)
    return np.where(total > 0, (r * m).sum(axis=1) / np.maximum(total, 1e-300), 0.0)


@metric("relevance_rank_accuracy", "localisation", higher_is_better=True, needs="mask")
def relevance_rank_accuracy(attributions, mask, *, absolute: bool = False) -> np.ndarray:
    """Fraction of the ``K = |mask|`` highest-relevance features that lie in the mask
    (ties broken by position, stable sort)."""
    a, m = _flat_pair(attributions, mask)
    r = np.abs(a) if absolute else a
    order = np.argsort(-r, axis=1, kind="stable")
    k = m.sum(axis=1)
    hits = np.take_along_axis(m, order, axis=1)
    within = np.cumsum(hits, axis=1)[np.arange(len(k)), k - 1]
    return within / k


@metric("pointing_game", "localisation", higher_is_better=True, needs="mask")
def pointing_game(attributions, mask, *, tolerance: int = 0) -> np.ndarray:
    """1.0 if the maximum of the attribution map lies inside the mask dilated by
    ``tolerance`` features (along every non-batch axis), else 0.0."""
    a, m = _pair(attributions, mask)
    if tolerance:
        st = ndimage.generate_binary_structure(m.ndim - 1, m.ndim - 1)
        m = np.stack([ndimage.binary_dilation(f, st, iterations=int(tolerance)) for f in m])
    a, m = a.reshape(a.shape[0], -1), m.reshape(a.shape[0], -1)
    best = np.argmax(a, axis=1)
    return m[np.arange(a.shape[0]), best].astype(np.float64)
