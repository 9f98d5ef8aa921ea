"""Complexity of explanations beyond :func:`~lumos.metrics.sparseness` / :func:`~lumos.metrics.entropy`.

- :func:`effective_complexity` (Nguyen & Martinez 2020, "On quantitative aspects of model
  interpretability", arXiv:2007.07584): the number of features whose normalised
  attribution exceeds a threshold, ``EC = |{i : |Phi_i| / max_j |Phi_j| > eps}|``.

Normalisation (shared with :mod:`lumos.metrics.stability` and
:mod:`lumos.metrics.conservation`): ``normalise=True`` divides each input's map by its own
``max |Phi|`` (an all-zero map stays zero). Quantus's default ``normalise_by_max`` divides
by the maximum over the *whole batch* it is handed, so one input's score depends on the
others; lumos equals Quantus with ``normalise_func_kwargs={"normalise_axes": (1, ..., ndim-1)}``
(per input), and with ``normalise=False`` on both sides.
"""
from __future__ import annotations

import numpy as np

from lumos.core.explanation import Explanation
from lumos.metrics._base import metric


def normalise_rows(a: np.ndarray) -> np.ndarray:
    """``a / max |a|`` per row of a ``(N, d)`` float array (rows that are all zero stay zero)."""
    peak = np.abs(a).max(axis=1, keepdims=True)
    return np.divide(a, peak, out=np.zeros_like(a), where=peak > 0)


def flat_values(attributions) -> np.ndarray:
    """Attribution values ``(N, d)`` as float64 from an Explanation, tensor or array."""
    values = attributions.values if isinstance(attributions, Explanation) else attributions
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"attributions need a batch axis, got shape {values.shape}")
    return values.reshape(values.shape[0], -1)


def prepare(a: np.ndarray, normalise: bool, absolute: bool) -> np.ndarray:
    """Quantus's order: normalise (per row here), then take absolute values."""
    if normalise:
        a = normalise_rows(a)
    return np.abs(a) if absolute else a


@metric("effective_complexity", "complexity", higher_is_better=False, needs="attributions_only")
def effective_complexity(attributions, *, eps: float = 1e-5, normalise: bool = True, absolute: bool = True
                         ) -> np.ndarray:
    """Effective complexity per input (Nguyen & Martinez 2020), lower is simpler.

    ``EC = |{i : a_i > eps}|`` with ``a = |Phi / max |Phi||`` (``normalise``, ``absolute``
    as Quantus's defaults): how many features carry more than ``eps`` of the largest
    attribution. Equal to Quantus 0.6 ``EffectiveComplexity(eps, abs, normalise)`` with
    per-input normalisation (see the module docstring)."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    a = prepare(flat_values(attributions), normalise, absolute)
    return (a > eps).sum(axis=1).astype(np.float64)
