"""The three plots tabular users know from shap: waterfall, beeswarm and bar.

- :func:`waterfall` — one row: starts at the base value ``E[f(X)]`` (or ``f(baseline)``),
  adds each feature's attribution, largest first, and ends at the explained score ``f(x)``;
  each bar is labelled ``name = value``; the smallest features are folded into one
  "N other features" bar so that the arrows still sum to ``f(x)``.
- :func:`beeswarm` — many rows: one line per feature (sorted by mean |attribution|), one dot
  per row at its attribution, coloured by the feature's value in that row (blue low, red
  high), so a reader sees both how much and in which direction a feature pushes.
- :func:`bar` — mean |attribution| per feature over the rows (a global importance), or the
  values of a global explanation (permutation importance) with their error bars.

Each takes an :class:`~lumos.core.explanation.Explanation` of tabular rows ``(N, d)`` and
returns the matplotlib Figure; an ``ax=`` draws into an existing Axes instead.
"""
from __future__ import annotations

import numpy as np

RED, BLUE = "#c0392b", "#2e6da4"


def _plain(text) -> str:  # user strings are drawn literally (no mathtext)
    return str(text).replace("$", r"\$")


def _axes(ax, size):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def _table(exp) -> np.ndarray:
    values = np.asarray(exp.values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"this plot is for tabular explanations of shape (rows, features); got values of shape "
                         f"{values.shape}. Use exp.plot() for images, series and text.")
    return values


def _names(exp, d: int) -> list[str]:
    names = exp.feature_names
    if names is not None and len(names) == d:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(d)]


def _number(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _class_label(exp, index: int) -> str:
    if exp.target is None:
        return ""
    t = int(np.asarray(exp.target).reshape(-1)[index])
    names = exp.meta.get("class_names") if isinstance(exp.meta, dict) else None
    return f"class {names[t]}" if names and t < len(names) else f"class {t}"


def waterfall(exp, index: int = 0, *, max_display: int = 10, ax=None, title: str | None = None):
    """Waterfall of row ``index``: base value + attributions (largest first) = f(x).

    The base value is ``exp.base_value[index]`` (the expected score over the background for
    Shapley values, ``f(baseline)`` for path methods); without one the plot starts at 0 and
    says so. Features beyond ``max_display - 1`` are summed into one bar.
    """
    values = _table(exp)
    if exp.scope == "global":
        raise ValueError("waterfall() explains one row; for a global explanation use lumos.plot.bar(exp)")
    if not -len(values) <= index < len(values):
        raise IndexError(f"row index {index} out of range for {len(values)} rows")
    phi = values[index]
    d = phi.shape[0]
    names = _names(exp, d)
    x = None if exp.inputs is None else np.asarray(exp.inputs, dtype=float).reshape(len(values), -1)[index]
    base = 0.0 if exp.base_value is None else float(np.asarray(exp.base_value).reshape(-1)[index])
    order = np.argsort(-np.abs(phi))
    shown = order[: max_display - 1] if d > max_display else order
    rest = order[len(shown):]
    labels = [f"{_plain(names[i])} = {_number(x[i])}" if x is not None and x.shape[0] == d else _plain(names[i])
              for i in shown]
    steps = list(phi[shown])
    if len(rest):
        labels.append(f"{len(rest)} other features")
        steps.append(float(phi[rest].sum()))
    fig, ax = _axes(ax, (6.5, 0.45 * len(steps) + 1.8))
    # as in shap: the walk starts at the base value on the bottom row (the folded features)
    # and climbs to f(x) on the top row, the largest attribution
    steps, labels = steps[::-1], labels[::-1]
    left = base + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    end = base + float(np.sum(steps))
    span = max(float(np.max(np.maximum(left, left + steps)) - np.min(np.minimum(left, left + steps))), 1e-12)
    for row, (s, v) in enumerate(zip(left, steps)):
        ax.barh(row, v, left=s, color=RED if v > 0 else BLUE, height=0.6)
        tip = s + v
        ax.text(tip + (0.01 if v >= 0 else -0.01) * span, row, f"{'+' if v >= 0 else '−'}{_number(abs(v))}",
                va="center", ha="left" if v >= 0 else "right", fontsize=8)
        if row + 1 < len(steps):  # the connector to the next step
            ax.plot([tip, tip], [row + 0.3, row + 0.7], color="0.6", lw=0.6)
    lo = min(float(np.min(np.minimum(left, left + steps))), base, end)
    hi = max(float(np.max(np.maximum(left, left + steps))), base, end)
    ax.set_xlim(lo - 0.18 * span, hi + 0.18 * span)
    ax.set_ylim(-1.1, len(steps) + 0.1)
    base_name = "E[f(X)]" if "shap" in (exp.method or "") else "f(baseline)"  # Shapley: the background mean
    ax.axvline(base, color="0.45", lw=0.8, ls=":")
    ax.axvline(end, color="0.15", lw=0.8, ls="--")
    ax.text(base, -0.85, f"{base_name} = {_number(base)}", ha="center", va="center", fontsize=8, color="0.3",
            bbox={"fc": "white", "ec": "none", "pad": 1})
    ax.text(end, len(steps) - 0.35, f"f(x) = {_number(end)}", ha="center", va="bottom", fontsize=8,
            bbox={"fc": "white", "ec": "none", "pad": 1})
    ax.set_yticks(np.arange(len(steps)), labels, fontsize=8)
    ax.set_xlabel("model score" + ("" if exp.base_value is not None else " (no base value recorded: starts at 0)"),
                  fontsize=8)
    head = title or f"{exp.method or 'attribution'}, row {index}"
    label = _class_label(exp, index)
    ax.set_title(_plain(head + (f" ({label})" if label else "")), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def beeswarm(exp, *, max_display: int = 20, ax=None, title: str | None = None, seed: int = 0):
    """One line per feature, one dot per row at its attribution, coloured by feature value.

    Features are sorted by mean |attribution|; the rest are folded into "N other features"
    (the sum of their attributions per row). Dots are spread vertically where they crowd
    (a deterministic jitter by the density of the row, ``seed`` fixes it).
    """
    import matplotlib as mpl

    values = _table(exp)
    if exp.scope == "global":
        raise ValueError("beeswarm() needs one explanation per row; this one is global: use lumos.plot.bar(exp)")
    n, d = values.shape
    names = _names(exp, d)
    x = None if exp.inputs is None else np.asarray(exp.inputs, dtype=float).reshape(n, -1)
    order = np.argsort(-np.abs(values).mean(0))
    shown = order[: max_display - 1] if d > max_display else order
    rest = order[len(shown):]
    rows = [(names[i], values[:, i], None if x is None else x[:, i]) for i in shown]
    if len(rest):
        rows.append((f"{len(rest)} other features", values[:, rest].sum(1), None))
    fig, ax = _axes(ax, (7, 0.4 * len(rows) + 1.6))
    cmap = mpl.colormaps["coolwarm"]
    rng = np.random.default_rng(seed)
    for k, (name, v, feature) in enumerate(rows):
        y = len(rows) - 1 - k
        # jitter proportional to the local density of the dots, like shap's beeswarm
        hist, edges = np.histogram(v, bins=min(50, max(n // 3, 1)))
        density = hist[np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(hist) - 1)]
        spread = 0.35 * density / max(hist.max(), 1)
        jitter = (rng.random(n) * 2 - 1) * spread
        if feature is not None and np.ptp(feature) > 0:
            lo, hi = np.nanpercentile(feature, [5, 95])
            colour = cmap(np.clip((feature - lo) / ((hi - lo) or 1.0), 0, 1))
        else:
            colour = "0.55"
        ax.scatter(v, y + jitter, s=9, c=colour, alpha=0.8, linewidths=0)
    ax.axvline(0, color="0.4", lw=0.6)
    ax.set_yticks(np.arange(len(rows))[::-1], [_plain(r[0]) for r in rows], fontsize=8)
    ax.set_xlabel("attribution (impact on the model score)", fontsize=8)
    if x is not None:
        sm = mpl.cm.ScalarMappable(cmap=cmap)
        bar = fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"], fontsize=8)
        bar.set_label("feature value", fontsize=8)
    ax.set_title(_plain(title or f"{exp.method or 'attribution'}: {n} rows"), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def bar(exp, *, max_display: int = 20, ax=None, title: str | None = None):
    """Mean |attribution| per feature over the rows, largest at the top.

    A global explanation (``exp.scope == "global"``, e.g. permutation importance) is drawn
    as its signed values, with ``exp.extras["std"]`` as error bars when recorded.
    """
    values = np.asarray(exp.values, dtype=float)
    if exp.scope == "global":
        if values.ndim != 1:
            raise ValueError(f"bar() draws one value per feature; this global explanation has shape {values.shape}")
        score, err, what = values, exp.extras.get("std"), "importance"
    else:
        values = _table(exp)
        score, err, what = np.abs(values).mean(0), None, f"mean |attribution| over {values.shape[0]} rows"
    d = score.shape[0]
    names = _names(exp, d)
    order = np.argsort(-np.abs(score))
    shown = order[:max_display]
    fig, ax = _axes(ax, (6, 0.35 * len(shown) + 1.4))
    rows = np.arange(len(shown))[::-1]
    colours = [RED if score[i] >= 0 else BLUE for i in shown]
    ax.barh(rows, score[shown], color=colours, height=0.65,
            xerr=None if err is None else np.asarray(err)[shown], error_kw={"lw": 0.8})
    for row, i in zip(rows, shown):
        ax.text(score[i], row, f" {_number(score[i])}", va="center", ha="left" if score[i] >= 0 else "right",
                fontsize=7)
    ax.set_yticks(rows, [_plain(names[i]) for i in shown], fontsize=8)
    ax.axvline(0, color="0.3", lw=0.6)
    more = f" ({len(shown)} of {d} shown)" if d > len(shown) else ""
    ax.set_xlabel(what + more, fontsize=8)
    ax.set_title(_plain(title or exp.method or "feature importance"), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
