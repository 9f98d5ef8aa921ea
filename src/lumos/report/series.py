"""The report's panels for clinical series: ECG records drawn as printouts over their
relevance (:func:`lumos.plot.plot_ecg`, one per method, beat-averaged where R peaks are
found) and EEG epochs as channel x time relevance maps (:func:`lumos.plot.eeg_heatmap`).

``modality``: ``"ecg"``, ``"eeg"``, ``"series"`` (the generic line panels) or ``"auto"``
(:func:`infer_modality`: from the channel names).
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np

from lumos.report import figures

MODALITIES = ("auto", "ecg", "eeg", "series")
_ECG = {"i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "mlii", "ecg", "lead i",
        "lead ii", "lead iii"}
_EEG = re.compile(r"^(fp|af|f|fc|ft|c|cp|tp|t|p|po|o|i|a|m)(\d{1,2}|z)$", re.IGNORECASE)


def infer_modality(feature_names, layout: str) -> str:
    """``"ecg"`` when every channel is named as an ECG lead (I, II, ..., V6, MLII), ``"eeg"``
    when most are 10-20/10-10 electrode names (Fz, Cz, Pz, O1, TP9 ...), else ``"series"``."""
    if layout != "timeseries" or not feature_names:
        return "series"
    names = [str(n).strip().lower() for n in feature_names]
    if all(n in _ECG for n in names):
        return "ecg"
    if sum(bool(_EEG.match(n.replace("eeg", "").strip(" -_"))) for n in names) >= max(1, 0.6 * len(names)):
        return "eeg"
    return "series"


def resolve_modality(modality: str | None, layout: str, feature_names) -> str:
    m = "auto" if modality is None else str(modality).lower()
    if m not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if m == "auto":
        return infer_modality(feature_names, layout)
    if m != "series" and layout != "timeseries":
        raise ValueError(f"modality={m!r} draws series (channels x time), but the inputs are {layout}; "
                         "use modality='auto'")
    return m


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


def render_row(x: np.ndarray, panels: list[tuple[str, np.ndarray]], modality: str, *, input_title: str,
               feature_names=None, times=None, sfreq=None) -> str:
    """One sample (C, T) with each method's relevance, as ECG printouts or EEG heatmaps."""
    plt = figures._plt()
    if not panels:
        return figures.render_row(x, panels, "timeseries", input_title=input_title, feature_names=feature_names,
                                  times=times, sfreq=sfreq)
    if modality == "ecg":
        from lumos.plot import plot_ecg

        names = list(feature_names) if feature_names is not None and len(feature_names) == x.shape[0] else None
        pngs = [figures.to_png(plot_ecg(x, v, sfreq, lead_names=names, title=f"{figures.plain(title)} ({input_title})",
                                        relevance_label=f"{figures.plain(title)} relevance"), dpi=72)
                for title, v in panels]
        return _stack(pngs)
    from lumos.plot import eeg_heatmap

    cols = min(3, len(panels) + 1)
    rows = int(np.ceil((len(panels) + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, (1.4 + 0.22 * x.shape[0]) * rows), squeeze=False,
                             layout="constrained")
    figures._series(axes.flat[0], x, None, feature_names or [f"ch{c}" for c in range(x.shape[0])], times, sfreq,
                    show_labels=True)
    axes.flat[0].set_title(figures.plain(input_title), fontsize=9)
    for ax, (title, v) in zip(list(axes.flat)[1:], panels):
        eeg_heatmap(np.asarray(v, dtype=np.float64), ch_names=feature_names, sfreq=sfreq, times=times, ax=ax,
                    title=figures.plain(title))
    for ax in list(axes.flat)[len(panels) + 1:]:
        ax.axis("off")
    return figures.to_png(fig)
