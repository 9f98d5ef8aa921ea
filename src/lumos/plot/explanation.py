"""Draw one sample of an :class:`~lumos.core.explanation.Explanation`.

Colour conventions follow the XAI literature: a diverging map (red positive, blue
negative) centred on zero for signed attributions, symmetric limits so that white means 0.
"""
from __future__ import annotations

import numpy as np


def _limits(values: np.ndarray) -> float:
    v = float(np.nanpercentile(np.abs(values), 99.5)) if values.size else 1.0
    return v if v > 0 else 1.0


def plot_explanation(exp, index: int = 0, ax=None, title: str | None = None, cmap: str = "bwr"):
    """Plot sample ``index`` of ``exp`` and return the matplotlib Axes.

    Images (C, H, W): the attribution summed over channels as a heatmap over the grey
    input. Time series (C, T): each channel's signal coloured by its attribution.
    Tables (d,) and global explanations: horizontal bars sorted by magnitude.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    name = title or exp.method
    if exp.scope == "global" or exp.values.ndim == 2:
        vals = exp.values if exp.scope == "global" else exp.values[index]
        err = exp.extras.get("std") if exp.scope == "global" else None
        names = exp.feature_names or [f"x{i}" for i in range(vals.shape[0])]
        order = np.argsort(np.abs(vals))[-20:]
        colors = ["#c0392b" if v > 0 else "#2e6da4" for v in vals[order]]
        ax.barh(np.arange(len(order)), vals[order], xerr=None if err is None else err[order], color=colors)
        ax.set_yticks(np.arange(len(order)), [names[i] for i in order], fontsize=8)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("attribution")
    elif exp.values.ndim == 3:  # (N, C, T)
        vals = exp.values[index]
        x = exp.inputs[index] if exp.inputs is not None else np.zeros(vals.shape)
        vals = np.broadcast_to(vals, x.shape)
        lim = _limits(vals)
        offset = 0.0
        span = float(np.ptp(x)) or 1.0
        for c in range(x.shape[0]):
            t = np.arange(x.shape[1])
            ax.plot(t, x[c] + offset, color="0.75", lw=0.8, zorder=1)
            sc = ax.scatter(t, x[c] + offset, c=vals[c], cmap=cmap, vmin=-lim, vmax=lim, s=8, zorder=2)
            label = exp.feature_names[c] if exp.feature_names and len(exp.feature_names) == x.shape[0] else f"ch{c}"
            ax.text(t[0], offset + x[c][0], label, fontsize=7, ha="right")
            offset -= span * 1.1
        ax.figure.colorbar(sc, ax=ax, fraction=0.046, label="attribution")
        ax.set_xlabel("time step")
        ax.set_yticks([])
    elif exp.values.ndim == 4:  # (N, C, H, W)
        vals = exp.values[index].sum(0)
        lim = _limits(vals)
        if exp.inputs is not None:
            img = exp.inputs[index]
            img = img.mean(0) if img.shape[0] != 3 else np.moveaxis(img, 0, -1)
            ax.imshow(img, cmap="gray", alpha=0.35, interpolation="nearest")
        im = ax.imshow(vals, cmap=cmap, vmin=-lim, vmax=lim, alpha=0.75, interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, fraction=0.046, label="attribution")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        raise ValueError(f"cannot plot values of shape {exp.values.shape}")
    if exp.target is not None and exp.scope == "local":
        name += f" (target {int(exp.target[index])})"
    ax.set_title(name, fontsize=10)
    return ax
