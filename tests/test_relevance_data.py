"""LRP on real data: a 1-D CNN on ECG200 and a 2-D CNN on MNIST (tiny, seeded training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import shared_data
from lumos.data import load_ecg200, load_mnist
from lumos.methods.relevance import LRP, DeepTaylor, EpsilonGammaBox
from lumos.models.reference import CNN1d
from lumos.models.train import accuracy, fit


@pytest.fixture(scope="module")
def mnist_model():
    shared_data("mnist.npz")
    data = load_mnist()
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    model = fit(cnn, data.X_train[:3000], data.y_train[:3000], epochs=2, lr=3e-3, seed=0)
    return model, data


def test_mnist_relevance_concentrates_on_the_digit(mnist_model):
    model, data = mnist_model
    assert accuracy(model, data.X_test[:500], data.y_test[:500]) > 0.8
    x = data.X_test[:32]
    digit = x > 0.1
    # background: pixels more than 2 pixels away from any stroke
    near = torch.nn.functional.max_pool2d(torch.from_numpy(digit.astype(np.float32)), 5, stride=1, padding=2).numpy() > 0
    background = ~near
    for explainer in (LRP(model, composite=EpsilonGammaBox(low=0.0, high=1.0)), DeepTaylor(model, input_bounds=(0, 1))):
        exp = explainer.explain(x)
        assert np.isfinite(exp.values).all() and exp.values.shape == x.shape
        mass = np.abs(exp.values)
        share_background = (mass * background).reshape(32, -1).sum(1) / mass.reshape(32, -1).sum(1)
        share_pixels = background.reshape(32, -1).mean(1)
        # background is ~70% of the image but receives a small share of the relevance
        assert share_pixels.mean() > 0.5
        assert share_background.mean() < 0.15, (explainer, share_background.mean())


def test_ecg200_relevance_marks_what_the_model_uses():
    shared_data("ecg200.npz")
    data = load_ecg200()
    model = fit(CNN1d(1, 2, channels=(8, 16)), data.X_train, data.y_train, epochs=100, lr=1e-2, batch_size=32, seed=0)
    assert accuracy(model, data.X_test, data.y_test) > 0.7
    x = data.X_test
    exp = LRP(model, composite="epsilon_plus").explain(x)
    assert np.isfinite(exp.values).all() and exp.values.shape == x.shape
    # deleting the 10% most relevant time steps (set to 0, the series mean) lowers the explained
    # logit far more than deleting the 10% least relevant ones
    k = x.shape[-1] // 10
    order = np.argsort(exp.values[:, 0], axis=1)
    rows = np.arange(len(x))[:, None]

    def drop(idx):
        xd = x.copy()
        xd[rows, 0, idx] = 0.0
        with torch.no_grad():
            out = model(torch.from_numpy(xd)).numpy()
        return (exp.target_score() - out[np.arange(len(x)), exp.target]).mean()

    most, least = drop(order[:, -k:]), drop(order[:, :k])
    assert most > 0 and most > 3 * abs(least), (most, least)
