"""Plots of evaluation results (matplotlib is imported only when a plot is drawn)."""
from __future__ import annotations

from typing import Any

import numpy as np


def curves_of(result: Any, metric: str = "region_perturbation") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{method: (fractions, mean curve)}`` from an :func:`lumos.metrics.evaluate` table
    (its ``attrs["curves"]``) or such a dict itself."""
    curves = getattr(result, "attrs", {}).get("curves", result) if not isinstance(result, dict) else result
    if metric in curves and isinstance(curves[metric], dict):
        curves = curves[metric]
    if not curves:
        raise ValueError(f"no {metric} curves in the result; include '{metric}' among the metrics")
    return curves


def plot_curves(result: Any, metric: str = "region_perturbation", ax=None, relative: bool = False):
    """One line per method: the mean target score against the perturbation step (MoRF
    curves for region perturbation; fraction deleted / inserted for deletion / insertion).
    ``relative`` plots ``f(x^k) - f(x^0)``. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    curves = curves_of(result, metric)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for method, (steps, curve) in curves.items():
        y = np.asarray(curve) - (curve[0] if relative else 0.0)
        ax.plot(np.arange(len(y)) if metric in ("region_perturbation", "pixel_flipping") else steps, y,
                label=method)
    ax.set_xlabel("perturbation step k" if metric in ("region_perturbation", "pixel_flipping") else "fraction of features")
    ax.set_ylabel("f(x^k) - f(x^0)" if relative else "mean target score f(x^k)")
    ax.set_title(metric.replace("_", " "))
    ax.legend(frameon=False, fontsize=8)
    return ax
