"""The panels of the HTML report, drawn here (lumos.plot owns all drawing; :mod:`lumos.report`
only embeds them), rendered with matplotlib's Agg backend to base64 PNG strings: a row of
heatmaps per input (:func:`render_row`; ECG printouts and EEG maps: :func:`render_series_row`),
global importances (:func:`render_global`) and deletion curves (:func:`render_curves`).

Colour convention (shared with :mod:`lumos.plot`): diverging red/blue centred on zero,
red = evidence for the explained class, blue = evidence against; each map is divided by
its own largest |value| so that methods with different units share one colour scale.

Names from the user (features, channels, classes, titles) are drawn as plain text: a ``$``
is escaped, so matplotlib never parses them as mathtext.
"""
from __future__ import annotations

import base64
import io

import numpy as np

CMAP = "bwr"
LEGEND = ("relative attribution: red = evidence for the class, blue = against, white = none "
          "(each map divided by its largest |value|)")


def plain(text) -> str:
    """``text`` as matplotlib draws it literally (``$`` escaped: no mathtext)."""
    return str(text).replace("$", r"\$")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def to_png(fig, dpi: int = 100) -> str:
    """Base64 PNG of a figure (the figure is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def normalise(v: np.ndarray) -> np.ndarray:
    m = float(np.max(np.abs(v))) if v.size else 0.0
    return v / m if m > 0 else np.zeros_like(v)


def time_axis(n: int, times=None, sfreq=None) -> tuple[np.ndarray, str]:
    if times is not None and len(times) == n:
        return np.asarray(times) * 1000.0, "time after stimulus (ms)"
    if sfreq:
        return np.arange(n) / sfreq, "time (s)"
    return np.arange(n), "time step (sample)"


def _image(ax, x, v, first):
    img = x.mean(0) if x.shape[0] != 3 else np.moveaxis(x, 0, -1)
    if v is None:
        ax.imshow(img, cmap="gray", interpolation="nearest")
        return None
    heat = normalise(np.broadcast_to(v, x.shape).sum(0))
    im = ax.imshow(heat, cmap=CMAP, vmin=-1, vmax=1, interpolation="nearest")
    grey = img if img.ndim == 2 else img.mean(-1)
    lo, hi = float(grey.min()), float(grey.max())
    if hi > lo:  # the input's outline, so that the map can be read against it
        ax.contour(grey, levels=[lo + 0.5 * (hi - lo)], colors="0.15", linewidths=0.7, alpha=0.8)
    return im


def _series(ax, x, v, names, times, sfreq, show_labels):
    from matplotlib.collections import LineCollection

    t, label = time_axis(x.shape[1], times, sfreq)
    if x.shape[0] > 3:  # many channels: a channel x time map
        if v is None:
            lim = float(np.max(np.abs(x))) or 1.0
            im = ax.imshow(x, aspect="auto", cmap="PuOr_r", vmin=-lim, vmax=lim, interpolation="nearest",
                           extent=(t[0], t[-1], x.shape[0] - 0.5, -0.5))
        else:
            heat = normalise(np.broadcast_to(v, x.shape))
            im = ax.imshow(heat, aspect="auto", cmap=CMAP, vmin=-1, vmax=1, interpolation="nearest",
                           extent=(t[0], t[-1], x.shape[0] - 0.5, -0.5))
        ax.set_yticks(range(x.shape[0]), [plain(n) for n in names] if show_labels else [""] * x.shape[0],
                      fontsize=7)
        ax.set_xlabel(label, fontsize=8)
        if times is not None:
            ax.axvline(0, color="k", lw=0.6, ls=":")
        return im if v is not None else None
    span = float(np.nanmax(x) - np.nanmin(x)) or 1.0
    heat = normalise(np.broadcast_to(v, x.shape)) if v is not None else None
    lc = None
    for c in range(x.shape[0]):
        off = -c * span * 1.15
        y = x[c] + off
        if heat is None:
            ax.plot(t, y, color="0.2", lw=1.0)
        else:
            pts = np.stack([t, y], axis=1)[:, None, :]
            segs = np.concatenate([pts[:-1], pts[1:]], axis=1)
            lc = LineCollection(segs, cmap=CMAP, norm=_plt().Normalize(-1, 1), linewidths=2.2)
            lc.set_array((heat[c][:-1] + heat[c][1:]) / 2)
            ax.add_collection(lc)
            ax.plot(t, y, color="0.6", lw=0.4, zorder=0)
        if show_labels and x.shape[0] > 1:
            ax.text(t[0], off + np.nanmean(x[c]), plain(names[c]) + " ", fontsize=7, ha="right", va="center")
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel(label, fontsize=8)
    if x.shape[0] == 1:
        ax.tick_params(axis="y", labelsize=7)
        if show_labels:
            ax.set_ylabel("amplitude", fontsize=8)
    else:
        ax.set_yticks([])
    return lc


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _bars(ax, v, x, names, top=10, raw=None):
    v = normalise(np.asarray(v, dtype=float).reshape(-1))
    order = np.argsort(np.abs(v))[-top:]
    colors = ["#c0392b" if v[i] > 0 else "#2e6da4" for i in order]
    ax.barh(np.arange(len(order)), v[order], color=colors)
    if raw is not None:
        labels = [f"{plain(names[i])} = {_num(raw[i])}" for i in order]
    else:
        labels = [f"{plain(names[i])} = {x[i]:.2g}" for i in order]
    ax.set_yticks(np.arange(len(order)), labels, fontsize=7)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("relative attribution", fontsize=8)


def render_row(x: np.ndarray, panels: list[tuple[str, np.ndarray]], layout: str, *, input_title: str,
               feature_names=None, times=None, sfreq=None, max_cols: int | None = None,
               value_note: str = "", raw_values=None) -> str:
    """One sample: the input then one panel per method, wrapped into rows, with a shared
    colour legend. ``panels`` is a list of (title, values shaped like x)."""
    plt = _plt()
    tabular = layout == "tabular"
    names = feature_names or ([f"ch{c}" for c in range(x.shape[0])] if not tabular else
                              [f"x{i}" for i in range(x.shape[-1])])
    if layout == "timeseries" and x.shape[0] > 3:
        input_title += "\n(orange +, purple − amplitude)"
    items = panels if tabular else [(input_title, None)] + panels
    if not items:
        fig, ax = plt.subplots(figsize=(6, 0.8))
        ax.axis("off")
        ax.text(0, 0.5, "no method produced an explanation for this input (see Methods)", fontsize=10)
        return to_png(fig)
    cols = max_cols or (3 if tabular else (4 if layout == "timeseries" else 6))
    cols = max(1, min(cols, len(items)))
    rows = int(np.ceil(len(items) / cols))
    w, h = (3.6, 2.6) if tabular else ((3.4, 2.2 + 0.12 * x.shape[0]) if layout == "timeseries" else (2.1, 2.2))
    # constrained layout keeps titles, axis labels and the shared colour bar from overlapping
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols + (1.5 if tabular else 0), h * rows + 0.5),
                             squeeze=False, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.06, wspace=0.05 if tabular else 0.02, hspace=0.04)
    mappable = None
    for k, ax in enumerate(axes.flat):
        if k >= len(items):
            ax.axis("off")
            continue
        title, v = items[k]
        if layout == "image":
            m = _image(ax, x, v, k == 0)
            ax.set_xticks([])
            ax.set_yticks([])
        elif layout == "timeseries":
            m = _series(ax, x, v, names, times, sfreq, show_labels=(k % cols == 0))
        else:
            _bars(ax, v, x, names, raw=raw_values)
            m = None
        mappable = m if m is not None else mappable
        ax.set_title(plain(title), fontsize=9)
    if mappable is None and not tabular:
        import matplotlib as mpl

        mappable = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(-1, 1), cmap=CMAP)
    if mappable is not None:
        cb = fig.colorbar(mappable, ax=axes.ravel().tolist(), orientation="horizontal", fraction=0.04 / rows,
                          shrink=0.6, aspect=50)
        cb.set_label(LEGEND + value_note, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return to_png(fig)


def render_global(exp, title: str) -> str:
    """Bar chart of a global explanation (e.g. permutation importance) with its spread."""
    plt = _plt()
    v = np.asarray(exp.values, dtype=float).reshape(-1)
    names = exp.feature_names or [f"feature {i}" for i in range(v.size)]
    err = exp.extras.get("std")
    order = np.argsort(v)[-15:]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(order) + 1.2))
    ax.barh(np.arange(len(order)), v[order], xerr=None if err is None else np.asarray(err).reshape(-1)[order],
            color="#7d3c98", ecolor="0.3", capsize=2)
    ax.set_yticks(np.arange(len(order)), [plain(names[i]) for i in order], fontsize=8)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("drop in score when the feature is permuted (mean ± sd over repeats)", fontsize=8)
    ax.set_title(plain(title), fontsize=10)
    return to_png(fig)


def render_curves(curves: dict[str, np.ndarray], title: str, highlight: int = 5, scores: dict | None = None,
                  score_name: str = "AOPC", higher_is_better: bool = True) -> str:
    """Mean deletion curves per method (and the random ordering, dashed black). With more
    than ``highlight`` methods, the ``highlight`` with the best ``scores`` (default: the
    largest AOPC of the curve, the steepest drop: the best rankings) are drawn in colour and
    named in the legend with their score (``score_name``, e.g. the evaluation table's
    ``deletion``, ``higher_is_better=False``), the others thin and grey, so 18 methods stay
    readable."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.0, 3.8))
    palette = plt.get_cmap("tab10").colors
    methods = {k: v for k, v in curves.items() if k != "random"}
    area = ({k: float(scores[k]) for k in methods} if scores is not None
            else {k: float((v[:, :1] - v).mean()) for k, v in methods.items()})
    sign = -1.0 if higher_is_better else 1.0
    best = sorted(area, key=lambda k: sign * area[k])[:highlight] if len(methods) > highlight else list(methods)
    rest = [k for k in methods if k not in best]
    for k, name in enumerate(rest):
        c = methods[name]
        ax.plot(np.linspace(0, 100, c.shape[1]), c.mean(0), color="0.7", lw=0.9, zorder=1,
                label=f"{len(rest)} other methods (grey)" if k == 0 else None)
    for k, name in enumerate(best):
        c = methods[name]
        ax.plot(np.linspace(0, 100, c.shape[1]), c.mean(0), color=palette[k % 10], lw=2.0, zorder=3,
                label=f"{plain(name)} ({score_name} {area[name]:.3f})" if rest else plain(name))
    if "random" in curves:
        c = curves["random"]
        ax.plot(np.linspace(0, 100, c.shape[1]), c.mean(0), color="k", ls="--", lw=2.0, zorder=2,
                label=plain("random"))
    if rest:
        title += f": the {len(best)} best of {len(methods)} methods by {score_name} in colour"
    ax.set_xlabel("features deleted, most relevant first (%)", fontsize=9)
    ax.set_ylabel("probability of the explained class", fontsize=9)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=1, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def _stack(pngs: list[str]) -> str:
    """One PNG of several, stacked vertically (narrower ones padded with white)."""
    import matplotlib.pyplot as plt

    imgs = [plt.imread(io.BytesIO(base64.b64decode(p)), format="png") for p in pngs]
    imgs = [np.dstack([im, np.ones(im.shape[:2])]) if im.shape[2] == 3 else im for im in imgs]
    width = max(im.shape[1] for im in imgs)
    padded = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in imgs]
    buf = io.BytesIO()
    plt.imsave(buf, np.concatenate(padded, axis=0), format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_series_row(x: np.ndarray, panels: list[tuple[str, np.ndarray]], modality: str, *, input_title: str,
                      feature_names=None, times=None, sfreq=None) -> str:
    """One sample (C, T) with each method's relevance, as ECG printouts or EEG heatmaps."""
    plt = _plt()
    if not panels:
        return render_row(x, panels, "timeseries", input_title=input_title, feature_names=feature_names,
                                  times=times, sfreq=sfreq)
    if modality == "ecg":
        from lumos.plot import plot_ecg

        names = list(feature_names) if feature_names is not None and len(feature_names) == x.shape[0] else None
        pngs = [to_png(plot_ecg(x, v, sfreq, lead_names=names, title=f"{plain(title)} ({input_title})",
                                        relevance_label=f"{plain(title)} relevance"), dpi=72)
                for title, v in panels]
        return _stack(pngs)
    from lumos.plot import eeg_heatmap

    cols = min(3, len(panels) + 1)
    rows = int(np.ceil((len(panels) + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, (1.4 + 0.22 * x.shape[0]) * rows), squeeze=False,
                             layout="constrained")
    _series(axes.flat[0], x, None, feature_names or [f"ch{c}" for c in range(x.shape[0])], times, sfreq,
                    show_labels=True)
    axes.flat[0].set_title(plain(input_title), fontsize=9)
    for ax, (title, v) in zip(list(axes.flat)[1:], panels):
        eeg_heatmap(np.asarray(v, dtype=np.float64), ch_names=feature_names, sfreq=sfreq, times=times, ax=ax,
                    title=plain(title))
    for ax in list(axes.flat)[len(panels) + 1:]:
        ax.axis("off")
    return to_png(fig)
