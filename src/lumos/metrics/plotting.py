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


def plot_randomisation(results, kind: str = "spearman", ax=None):
    """Similarity against the randomised layer, one line per method, from
    :func:`lumos.metrics.model_randomisation` results (one or a list): the cascade's stages
    on the x axis (top layer first), each method's reference level (the similarity of its maps of
    unrelated inputs, the verdict's yardstick) as a dotted line in its colour — or the fixed
    threshold as a dashed line when the results carry no reference — the top layers shaded
    (cascading), each method's verdict in the legend. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    results = [results] if hasattr(results, "stages") else list(results)
    if not results:
        raise ValueError("no sanity results to plot")
    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(8.0, 3.5))
    stages = results[0].stages
    for r in results:
        if r.stages != stages:
            raise ValueError(f"results randomise different stages: {stages} and {r.stages}")
        m = r.scores[kind]
        x = np.arange(len(stages))
        (line,) = ax.plot(x, m.mean(1), marker="o", label=f"{r.method} ({'pass' if r.passed else 'FAIL'})")
        ax.fill_between(x, np.percentile(m, 25, axis=1), np.percentile(m, 75, axis=1), alpha=0.15)
        level = (r.reference or {}).get(kind)
        if level is not None:  # the reference rule: this method's maps of unrelated inputs, in its colour
            ax.axhline(level, ls=":", color=line.get_color(), lw=1)
    top = results[0].top_layers
    if top:
        ax.axvspan(-0.5, top - 0.5, color="0.9", zorder=0, label="top layers")
    if any((r.reference or {}).get(kind) is not None for r in results):
        ax.plot([], [], ls=":", color="0.4", lw=1, label="similarity of unrelated inputs' maps (reference)")
    else:
        ax.axhline(results[0].threshold, ls="--", color="0.4", lw=1, label=f"threshold {results[0].threshold:g}")
    ax.set_xticks(np.arange(len(stages)))
    ax.set_xticklabels(["+" + s if i else s for i, s in enumerate(stages)] if results[0].mode == "cascading"
                       else stages, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(stages) - 0.5)
    ax.set_ylim(min(-0.1, float(np.min([r.scores[kind].mean(1).min() for r in results]))), 1.05)
    ax.set_xlabel(("cascading: layers randomised, top first" if results[0].mode == "cascading"
                   else "layer randomised"))
    ax.set_ylabel(f"{kind} similarity to the original")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, not over, the data
    if own:
        ax.figure.tight_layout()
    return ax
