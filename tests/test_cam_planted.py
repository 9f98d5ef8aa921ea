"""Planted cue: a 1-D CNN trained on series whose class is the sign of a bump at a random,
known position. Grad-CAM's peak must fall inside the bump for at least 90% of test series."""
from __future__ import annotations

import numpy as np
import torch

from lumos.methods.cam import GradCAM
from lumos.models import CNN1d
from lumos.models.train import accuracy, fit

T, WIDTH = 64, 3.0


def planted(n, seed):
    """Noise plus one Gaussian bump (class 1) or dip (class 0) centred at a random step."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centre = rng.integers(8, T - 8, n)
    t = np.arange(T)
    bump = np.exp(-0.5 * ((t[None] - centre[:, None]) / WIDTH) ** 2)
    x = rng.normal(0, 0.5, (n, T)) + 2.0 * np.where(y[:, None] == 1, 1.0, -1.0) * bump
    return x[:, None].astype(np.float32), y, centre


def test_gradcam_peak_inside_planted_bump():
    x_train, y_train, _ = planted(600, seed=1)
    x_test, y_test, centre = planted(200, seed=2)
    torch.manual_seed(0)
    model = fit(CNN1d(1, 2, channels=(8, 16, 16), kernel_size=5), x_train, y_train, epochs=15, lr=3e-3, seed=0)
    assert accuracy(model, x_test, y_test) >= 0.95
    exp = GradCAM(model).explain(x_test, target=y_test)
    peak = exp.values[:, 0].argmax(1)
    inside = np.abs(peak - centre) <= 2 * WIDTH  # the bump's support: centre +- 2 sigma
    assert inside.mean() >= 0.9, f"peak inside the bump for only {inside.mean():.0%} of test series"
