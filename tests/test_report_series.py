"""The report's series panels (#16 item 5): ECG printouts and EEG channel x time maps chosen
by ``modality=`` (or from the channel names), and ``lumos report --modality``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumos.models import CNN1d
from lumos.report import build_report
from lumos.report.series import infer_modality, resolve_modality

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def test_modality_from_channel_names():
    assert infer_modality(LEADS, "timeseries") == "ecg"
    assert infer_modality(["MLII"], "timeseries") == "ecg"
    assert infer_modality(["Fz", "Cz", "Pz", "Oz", "TP9", "AF7"], "timeseries") == "eeg"
    assert infer_modality(["EEG Fz", "EEG Cz"], "timeseries") == "eeg"
    assert infer_modality(["temperature", "pressure"], "timeseries") == "series"
    assert infer_modality(None, "timeseries") == "series"
    assert infer_modality(LEADS, "tabular") == "series"
    assert resolve_modality("ECG", "timeseries", None) == "ecg"
    with pytest.raises(ValueError, match="modality must be one of"):
        resolve_modality("emg", "timeseries", None)
    with pytest.raises(ValueError, match="inputs are image"):
        resolve_modality("eeg", "image", None)


def _record(n, c, t, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c, t)).astype(np.float32)


@pytest.mark.parametrize("names, sfreq, drawn", [(LEADS, 100.0, "ECG"), (["Fz", "Cz", "Pz", "Oz"], 128.0, "EEG")])
def test_report_draws_clinical_panels(names, sfreq, drawn):
    torch.manual_seed(0)
    model = CNN1d(len(names), 2, channels=(4,), kernel_size=3).eval()
    x = _record(1, len(names), 200)
    rep = build_report(model, x, feature_names=names, sfreq=sfreq, methods=["saliency"], n_classes=1)
    assert f"drawn as {drawn}" in rep.html and "data:image/png;base64," in rep.html
    plain = build_report(model, x, feature_names=names, sfreq=sfreq, methods=["saliency"], n_classes=1,
                         modality="series")
    assert "drawn as" not in plain.html
