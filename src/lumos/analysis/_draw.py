"""Matplotlib drawing of a DFA (graphviz is not needed)."""
from __future__ import annotations

import numpy as np


def draw_dfa(dfa, ax=None, title: str | None = None):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Arc, Circle, FancyArrowPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 1.1 * dfa.n_states, 1.6 + 1.1 * dfa.n_states))
    n, radius = dfa.n_states, 0.32
    angles = np.pi / 2 + 2 * np.pi * np.arange(n) / n
    spread = 0.0 if n == 1 else max(1.2, 0.55 * n)
    pos = np.stack([spread * np.cos(angles), spread * np.sin(angles)], 1) if n > 1 else np.zeros((1, 2))
    if n == 2:
        pos = np.array([[-1.2, 0.0], [1.2, 0.0]])
    for q in range(n):
        x, y = pos[q]
        ax.add_patch(Circle((x, y), radius, fill=True, fc="#f4f4f4", ec="black", lw=1.2, zorder=3))
        if dfa.accepting[q]:
            ax.add_patch(Circle((x, y), radius * 0.8, fill=False, ec="black", lw=1.0, zorder=4))
        ax.text(x, y, f"q{q}", ha="center", va="center", fontsize=10, zorder=5)
    # start arrow from the left of the start state
    sx, sy = pos[dfa.start]
    tail = np.array([sx - radius - 0.55, sy])
    ax.add_patch(FancyArrowPatch(tuple(tail), (sx - radius, sy), arrowstyle="-|>", mutation_scale=14, lw=1.2,
                                 color="black", zorder=2))
    ax.text(tail[0] - 0.05, sy, "start", ha="right", va="center", fontsize=8)
    centre = pos.mean(0)
    for q in range(n):
        targets: dict[int, list[str]] = {}
        for a, sym in enumerate(dfa.alphabet):
            targets.setdefault(int(dfa.delta[q, a]), []).append(sym)
        for r, syms in targets.items():
            label = ",".join(syms)
            if r == q:  # self-loop drawn away from the centre of the layout
                d = pos[q] - centre
                d = d / (np.hypot(*d) or 1.0) if n > 1 else np.array([0.0, 1.0])
                if q == dfa.start and d[0] < -0.5:  # keep clear of the start arrow
                    d = np.array([0.0, 1.0])
                loop_r = 0.2
                c = pos[q] + d * (radius + loop_r * 0.55)
                base = np.degrees(np.arctan2(d[1], d[0]))
                ax.add_patch(Arc(tuple(c), 2 * loop_r, 2 * loop_r, theta1=base - 125, theta2=base + 125,
                                 lw=1.0, color="#333333", zorder=2))
                end_angle = np.radians(base + 125)
                tip = c + loop_r * np.array([np.cos(end_angle), np.sin(end_angle)])
                back = c + loop_r * np.array([np.cos(end_angle - 0.5), np.sin(end_angle - 0.5)])
                ax.add_patch(FancyArrowPatch(tuple(back), tuple(tip), arrowstyle="-|>", mutation_scale=10, lw=1.0,
                                             color="#333333", zorder=2))
                ax.text(*(c + d * (loop_r + 0.14)), label, ha="center", va="center", fontsize=9, color="#b00000")
                continue
            p0, p1 = pos[q], pos[r]
            d = (p1 - p0) / np.hypot(*(p1 - p0))
            start, end = p0 + d * radius, p1 - d * radius
            rad = 0.25 if dfa.delta[r].tolist().count(q) else 0.0
            ax.add_patch(FancyArrowPatch(tuple(start), tuple(end), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=12, lw=1.0, color="#333333", zorder=2))
            mid = (start + end) / 2 + np.array([d[1], -d[0]]) * (0.5 * rad * np.hypot(*(end - start)) + 0.12)
            ax.text(*mid, label, ha="center", va="center", fontsize=9, color="#b00000")
    pad = radius + 0.9
    ax.set_xlim(pos[:, 0].min() - pad, pos[:, 0].max() + pad)
    ax.set_ylim(pos[:, 1].min() - pad, pos[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
