"""Which panels the report draws for clinical series: ECG records as printouts over their
relevance (:func:`lumos.plot.plot_ecg`, one per method, beat-averaged where R peaks are
found) and EEG epochs as channel x time relevance maps (:func:`lumos.plot.eeg_heatmap`), both
drawn by :func:`lumos.plot.panels.render_series_row`.

``modality``: ``"ecg"``, ``"eeg"``, ``"series"`` (the generic line panels) or ``"auto"``
(:func:`infer_modality`: from the channel names).
"""
from __future__ import annotations

import re

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
