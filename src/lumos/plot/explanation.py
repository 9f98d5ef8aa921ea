"""Draw one sample of an :class:`~lumos.core.explanation.Explanation`.

Colour conventions follow the XAI literature: a diverging map (red positive, blue
negative) centred on zero for signed attributions, symmetric limits so that white means 0.
"""
from __future__ import annotations

import numpy as np


def _limits(values: np.ndarray) -> float:
    v = float(np.nanpercentile(np.abs(values), 99.5)) if values.size else 1.0
    return v if v > 0 else 1.0


def _nice(v: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``v`` (a scale bar's length)."""
    if v <= 0:
        return 1.0
    k = np.floor(np.log10(v))
    return float(max(m for m in (1, 2, 5) if m * 10 ** k <= v) * 10 ** k)


def plot_explanation(exp, index: int = 0, ax=None, title: str | None = None, cmap: str = "bwr"):
    """Plot sample ``index`` of ``exp`` and return the matplotlib Axes.

    Images (C, H, W): the attribution summed over channels as a heatmap, over the colour
    image (translucent where |attribution| is small) for RGB inputs, with the input's outline
    as a contour for grey ones. Time series (C, T): each channel's signal over a band
    coloured by its attribution, with the amplitude on the y axis (one channel) or a scale
    bar (stacked channels). The title names the explained class (``meta["class_names"]``).
    Tables (d,) and global explanations: horizontal bars sorted by magnitude.
    """
    import matplotlib.pyplot as plt

    if exp.meta.get("layout") == "text":  # token ids: words highlighted (lumos.plot.text)
        from lumos.plot.text import plot_text

        return plot_text(exp, index, ax=ax, title=title, cmap=cmap)
    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(5, 4))
    name = title or exp.method
    if exp.scope == "global" or exp.values.ndim == 2:
        vals = exp.values if exp.scope == "global" else exp.values[index]
        err = exp.extras.get("std") if exp.scope == "global" else None
        from lumos.plot.tabular import _number, _plain

        names = exp.feature_names or [f"x{i}" for i in range(vals.shape[0])]
        order = np.argsort(np.abs(vals))[-20:]
        colors = ["#c0392b" if v > 0 else "#2e6da4" for v in vals[order]]
        ax.barh(np.arange(len(order)), vals[order], xerr=None if err is None else err[order], color=colors)
        row = exp.inputs[index] if exp.scope == "local" and exp.inputs is not None else None
        labels = [f"{_plain(names[i])} = {_number(float(row[i]))}" if row is not None and row.shape == vals.shape
                  else _plain(names[i]) for i in order]  # the feature's value beside its name
        ax.set_yticks(np.arange(len(order)), labels, fontsize=8)
        ax.axvline(0, color="k", lw=0.5)
        shown = f" ({len(order)} of {vals.shape[0]} shown, largest |attribution|)" if len(order) < vals.shape[0] else ""
        ax.set_xlabel("attribution" + shown)
    elif exp.values.ndim == 3:  # (N, C, T)
        from matplotlib.collections import LineCollection
        from matplotlib.colors import Normalize

        vals = exp.values[index]
        x = exp.inputs[index] if exp.inputs is not None else np.zeros(vals.shape)
        vals = np.broadcast_to(vals, x.shape)
        lim = _limits(vals)
        norm = Normalize(-lim, lim)
        span = float(np.ptp(x)) or 1.0
        t = np.arange(x.shape[1])
        offsets, labels = [], []
        for c in range(x.shape[0]):
            y = x[c] - 1.1 * span * c
            # the attribution as a wide coloured band under the signal, which stays visible
            # (dark, thin) where the attribution is near zero (white)
            points = np.stack([t, y], 1)
            band = LineCollection(np.stack([points[:-1], points[1:]], 1), cmap=cmap, norm=norm, linewidth=5,
                                  zorder=1, capstyle="round")
            band.set_array((vals[c][:-1] + vals[c][1:]) / 2)
            ax.add_collection(band)
            ax.plot(t, y, color="0.2", lw=0.9, zorder=2)
            offsets.append(float(np.mean(y)))
            labels.append(exp.feature_names[c] if exp.feature_names and len(exp.feature_names) == x.shape[0]
                          else f"ch{c}")
        ax.autoscale_view()
        ax.figure.colorbar(band, ax=ax, fraction=0.046, label="attribution")
        ax.set_xlabel("time step")
        if x.shape[0] == 1:  # one channel: its real amplitude on the y axis
            ax.set_ylabel(f"amplitude ({labels[0]})" if exp.feature_names else "amplitude")
        else:  # stacked channels: names on the axis and a scale bar for the amplitude
            ax.set_yticks(offsets, labels, fontsize=8)
            bar = _nice(0.5 * span)
            x0 = t[-1] + 0.01 * len(t)
            top = offsets[0] + 0.25 * span
            ax.plot([x0, x0], [top - bar, top], color="k", lw=1.5, clip_on=False)
            ax.text(x0, top - bar / 2, f" {bar:g}", fontsize=7, va="center", ha="left", clip_on=False)
            ax.set_xlim(t[0], x0)
    elif exp.values.ndim == 4:  # (N, C, H, W)
        vals = exp.values[index].sum(0)
        lim = _limits(vals)
        rgb = exp.inputs is not None and exp.inputs.shape[1] == 3 and exp.inputs.shape[-2:] == vals.shape
        if rgb:  # the heatmap over the colour image, translucent where the attribution is small
            img = np.moveaxis(np.asarray(exp.inputs[index], dtype=float), 0, -1)
            lo, hi = float(img.min()), float(img.max())
            ax.imshow((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img), interpolation="nearest")
            alpha = np.clip(np.abs(vals) / lim, 0, 1) * 0.85
            im = ax.imshow(vals, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest", alpha=alpha)
        else:
            im = ax.imshow(vals, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        if exp.inputs is not None and not rgb:  # a grey input's outline as contour lines over the heatmap
            img = exp.inputs[index].mean(0)
            lo, hi = float(img.min()), float(img.max())
            if hi > lo and img.shape == vals.shape:
                ax.contour(img, levels=[(lo + hi) / 2], colors="k", linewidths=0.8)
        ax.figure.colorbar(im, ax=ax, fraction=0.046, label="attribution")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        raise ValueError(f"cannot plot values of shape {exp.values.shape}")
    if exp.target is not None and exp.scope == "local":
        t = int(exp.target[index])
        classes = exp.meta.get("class_names") if isinstance(exp.meta, dict) else None
        name += f" (class {classes[t]})" if classes and t < len(classes) else f" (target {t})"
    ax.set_title(name.replace("$", r"\$"), fontsize=10)
    if own:  # colour bar label and title inside the figure
        ax.figure.tight_layout()
    return ax
