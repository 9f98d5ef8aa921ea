"""Word highlights for text explanations: each word on a background coloured by its relevance.

A diverging map centred on zero (red: the word raises the explained score, blue: lowers
it, white: no effect), symmetric limits ``±max |relevance|`` of the sentence (or ``lim=``),
words set left to right in a monospace font and wrapped into lines. The same colours serve
the HTML report (:func:`word_colours`) and the terminal (:func:`ansi_words`).
"""
from __future__ import annotations

import numpy as np


def _limit(values, lim=None) -> float:
    if lim is not None:
        return float(lim)
    m = float(np.max(np.abs(values))) if len(values) else 0.0
    return m if m > 0 else 1.0


def word_colours(values, lim: float | None = None, cmap: str = "bwr") -> list[tuple[float, float, float]]:
    """RGB in [0, 1] of each value on the diverging map centred on zero."""
    from matplotlib import colormaps

    lim = _limit(values, lim)
    cm = colormaps[cmap]
    return [tuple(float(c) for c in cm(0.5 + 0.5 * float(np.clip(v / lim, -1, 1)))[:3]) for v in values]


def _wrap(words: list[str], line_chars: int) -> list[list[int]]:
    lines, current, used = [], [], 0
    for i, w in enumerate(words):
        need = len(w) + (1 if current else 0)
        if current and used + need > line_chars:
            lines.append(current)
            current, used = [], 0
            need = len(w)
        current.append(i)
        used += need
    if current:
        lines.append(current)
    return lines


def plot_text(exp, index: int = 0, ax=None, title: str | None = None, cmap: str = "bwr", line_chars: int = 64,
              lim: float | None = None):
    """Draw the words of input ``index`` of a text explanation on relevance-coloured
    backgrounds; returns the Axes. A colour bar below gives the scale."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    pairs = exp.words(index)
    words = [w if w else "\u2423" for w, _ in pairs]
    values = np.array([v for _, v in pairs], dtype=np.float64)
    lines = _wrap(words, line_chars)
    width_in = 9.0
    font = min(14.0, width_in * 72 / (line_chars * 0.62))
    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(width_in, 1.1 + 0.42 * len(lines) * font / 12))
    lim = _limit(values, lim)
    colours = word_colours(values, lim, cmap)
    ax.set_xlim(0, line_chars)
    ax.set_ylim(len(lines) + 0.2, -0.4)
    ax.axis("off")
    for row, line in enumerate(lines):
        x = 0.0
        for i in line:
            r, g, b = colours[i]
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(x, row + 0.5, words[i], family="monospace", fontsize=font, va="center", ha="left",
                    color="white" if dark else "black",
                    bbox={"facecolor": (r, g, b), "edgecolor": "none", "boxstyle": "square,pad=0.15"})
            x += len(words[i]) + 1
    mappable = ScalarMappable(norm=Normalize(-lim, lim), cmap=cmap)
    bar = ax.figure.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.08, pad=0.02, aspect=50)
    bar.set_label("relevance (red raises the explained score, blue lowers it)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    head = title or exp.method
    if exp.target is not None:
        head += f" | class {int(exp.target[index])}"
        if exp.prediction is not None:
            head += f" (score {float(exp.prediction[index, int(exp.target[index])]):.3g})"
    ax.set_title(head.replace("$", r"\$"), fontsize=10, loc="left")
    if own:  # the title and the colour bar inside the figure, saved with or without bbox_inches="tight"
        ax.figure.tight_layout()
    return ax


def ansi_words(pairs, lim: float | None = None, colour: bool = True) -> str:
    """The words of one input for a terminal: ANSI 24-bit backgrounds (``colour=True``) or a
    plain fallback, ``word(+0.12)`` for words above 10 % of the largest |relevance|."""
    values = np.array([v for _, v in pairs], dtype=np.float64)
    lim = _limit(values, lim)
    if not colour:
        return " ".join(f"{w}({v:+.2g})" if abs(v) >= 0.1 * lim else w for w, v in pairs)
    out = []
    for (w, _), (r, g, b) in zip(pairs, word_colours(values, lim)):
        fg = "97" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "30"
        out.append(f"\x1b[{fg};48;2;{int(r * 255)};{int(g * 255)};{int(b * 255)}m{w}\x1b[0m")
    return " ".join(out)
