"""Where IG and GradientShap take the scores their completeness check needs, and that the
answer does not depend on it.

IG's endpoints (f(x) for the prediction, f(x') for ``base_value``) and GradientShap's inputs
and background are needed forward only. Feed-forward models: one forward pass without
gradients per chunk, a shared baseline scored once. Recurrent models: the endpoints ride in
the gradient pass when the whole call fits one pass, otherwise they are scored once for all
inputs before the chunks. Each path must give the same explanation as the others.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import rows_per_call
from lumos import GradientShap, IntegratedGradients
from lumos.models import RecurrentClassifier


def _gru():
    torch.manual_seed(0)
    return RecurrentClassifier(2, 3).eval()  # a GRU: differentiated calls of up to 512 rows


def _series(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2, 12)).astype(np.float32)


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(48, 3)).eval()


def test_recurrent_ig_scores_the_endpoints_once_when_the_call_takes_several_passes():
    model, x = _gru(), _series(60)
    ig = IntegratedGradients(model, n_steps=8)
    whole, rows = rows_per_call(model, lambda: ig.explain(x, target=1))
    # 60 x (8 + 2) = 600 rows do not fit one 512-row pass: 61 endpoint rows (the inputs and the one shared
    # baseline) in one forward pass, then the 480 path rows in balanced passes
    assert rows[0] == 61 and sum(rows[1:]) == 60 * 8 and len(rows) == 2
    parts = [ig.explain(x[i:i + 5], target=1) for i in range(0, 60, 5)]  # 5 x 10 rows: endpoints ride along
    for field in ("values", "prediction", "base_value", "delta"):
        np.testing.assert_allclose(getattr(whole, field), np.concatenate([getattr(p, field) for p in parts]),
                                   rtol=1e-5, atol=1e-6, err_msg=field)
    assert np.abs(whole.delta).max() < 5e-2  # 8 Gauss-Legendre steps on a smooth GRU


def test_recurrent_ig_with_a_baseline_per_input_and_a_distribution():
    model, x = _gru(), _series(60)
    base = _series(60, seed=1)
    ig = IntegratedGradients(model, n_steps=8)
    whole = ig.explain(x, target=0, baseline=base)
    parts = [ig.explain(x[i:i + 6], target=0, baseline=base[i:i + 6]) for i in range(0, 60, 6)]
    np.testing.assert_allclose(whole.values, np.concatenate([p.values for p in parts]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.base_value, np.concatenate([p.base_value for p in parts]), rtol=1e-5, atol=1e-6)
    dist = IntegratedGradients(model, n_steps=4, baseline_distribution=_series(3, seed=2))
    whole = dist.explain(x, target=0)
    parts = [dist.explain(x[i:i + 4], target=0) for i in range(0, 60, 4)]
    np.testing.assert_allclose(whole.values, np.concatenate([p.values for p in parts]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.delta, np.concatenate([p.delta for p in parts]), rtol=1e-4, atol=1e-6)


def test_feed_forward_ig_scores_a_shared_baseline_once_per_chunk():
    model, x = _cnn(), _series(10)
    ig = IntegratedGradients(model, n_steps=16)
    exp, rows = rows_per_call(model, lambda: ig.explain(x, target=2))
    assert rows == [11, 160]  # the 10 inputs and the zero baseline without gradients, then the path
    np.testing.assert_allclose(exp.values.reshape(10, -1).sum(1), exp.prediction[:, 2] - exp.base_value,
                               atol=float(np.abs(exp.delta).max()) + 1e-6)
    with torch.no_grad():
        f0 = model(torch.zeros(1, 2, 12))[0, 2].item()
    np.testing.assert_allclose(exp.base_value, f0, rtol=1e-6)


@pytest.mark.parametrize("make", [_cnn, _gru])
def test_gradient_shap_scores_inputs_and_background_forward_only(make):
    model, x, bg = make(), _series(6), _series(5, seed=3)
    gs = GradientShap(model, n_samples=4, seed=0)
    exp, rows = rows_per_call(model, lambda: gs.explain(x, target=1, background=bg))
    if make is _cnn:
        assert rows == [11, 24]  # inputs + background without gradients, then the 6 x 4 points
    else:
        assert rows == [35]  # recurrent: inputs, background and points in one pass
    with torch.no_grad():
        f = model(torch.as_tensor(x))[:, 1].numpy()
        fb = model(torch.as_tensor(bg))[:, 1].numpy().mean()
    np.testing.assert_allclose(exp.prediction[:, 1], f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exp.base_value, fb, rtol=1e-5, atol=1e-6)
    # calls of at most 5 rows: the plain path (inputs scored apart, the points in blocks); per-row seeds
    small = GradientShap(model, n_samples=4, seed=0, batch_size=5).explain(x, target=1, background=bg)
    for field in ("values", "prediction", "base_value", "delta"):
        np.testing.assert_allclose(getattr(exp, field), getattr(small, field), rtol=1e-5, atol=1e-6, err_msg=field)


def test_recurrent_gradient_shap_scores_inputs_and_background_once_when_the_call_takes_several_passes():
    model, x, bg = _gru(), _series(100), _series(5, seed=3)
    gs = GradientShap(model, n_samples=6, seed=0)
    whole, rows = rows_per_call(model, lambda: gs.explain(x, target=1, background=bg))
    # 100 x (6 + 1) + 5 rows do not fit one 512-row pass: inputs and background once, then the 600 points
    assert rows[0] == 105 and sum(rows[1:]) == 600 and len(rows) == 3
    small = GradientShap(model, n_samples=6, seed=0, batch_size=7).explain(x, target=1, background=bg)
    for field in ("values", "prediction", "base_value", "delta"):
        np.testing.assert_allclose(getattr(whole, field), getattr(small, field), rtol=1e-5, atol=1e-6, err_msg=field)
