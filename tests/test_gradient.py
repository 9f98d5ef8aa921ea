"""Gradient family: exact properties from ../shared/METHODS.md (Gradients section)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.methods.gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad, quadrature
from lumos.models import CNN1d, CNN2d, MLP, RecurrentClassifier


def linear_model(d=6, k=3, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    m = nn.Linear(d, k).to(dtype)
    return m


class Saturating(nn.Module):
    """f(x) = 1 − ReLU(1 − x): gradient 0 at x = 2, but f(2) − f(0) = 1."""

    def forward(self, x):
        return (1 - torch.relu(1 - x)).sum(1, keepdim=True)


# -- Integrated Gradients -------------------------------------------------------
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_ig_linear_model_is_w_times_x_minus_baseline(method, rng):
    m = linear_model()
    x = rng.normal(size=(5, 6))
    base = rng.normal(size=(6,))
    exp = IntegratedGradients(m, n_steps=7, method=method).explain(x, target=2, baseline=base)
    w = m.weight.detach().numpy()[2]
    np.testing.assert_allclose(exp.values, w * (x - base), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-12)


def test_ig_completeness_error_shrinks_with_steps(rng):
    torch.manual_seed(0)
    m = MLP(8, 3, hidden=(32, 16), activation=nn.Tanh).double()
    x = rng.normal(size=(6, 8))
    errors = []
    for steps in (2, 8, 32, 300):
        exp = IntegratedGradients(m, n_steps=steps, method="gausslegendre").explain(x, target=1)
        gap = np.abs(exp.target_score() - exp.base_value)
        errors.append(np.max(np.abs(exp.delta) / gap))
    assert errors[0] > errors[1] > errors[2] >= errors[3] - 1e-15
    assert errors[-1] < 1e-3


def test_ig_completeness_trained_relu_mlp_on_breast_cancer():
    """A ReLU network's path gradient is piecewise constant, so quadrature converges as
    O(1/n) per sample; over the batch the relative error is below 1e-3 at 300 steps."""
    from lumos.data import load_breast_cancer
    from lumos.models.train import fit

    ds = load_breast_cancer()
    m = fit(MLP(30, 2, hidden=(32, 16)), ds.X_train, ds.y_train, epochs=30, seed=0)
    x = ds.X_test[:50]
    rel = []
    for steps in (10, 50, 300):
        exp = IntegratedGradients(m, n_steps=steps).explain(x)
        rel.append(np.abs(exp.delta).sum() / np.abs(exp.target_score() - exp.base_value).sum())
    assert rel[0] > rel[1] > rel[2]
    assert rel[2] < 1e-3


def test_ig_saturation_example():
    m = Saturating().double()
    x = np.array([[2.0]])
    with pytest.warns(UserWarning, match="saturated"):  # all-zero gradient: said, not silent
        grad = Saliency(m, absolute=False).explain(x).values
    ig = IntegratedGradients(m, n_steps=64).explain(x).values
    assert grad[0, 0] == 0.0
    assert ig[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_ig_chunking_does_not_change_the_result(rng):
    torch.manual_seed(0)
    m = CNN1d(2, 3, channels=(4, 4)).double()
    x = rng.normal(size=(5, 2, 20))
    full = IntegratedGradients(m, n_steps=20).explain(x)
    for ibs in (1, 7, 33, 1000):
        part = IntegratedGradients(m, n_steps=20, batch_size=ibs).explain(x)
        np.testing.assert_allclose(part.values, full.values, rtol=1e-10, atol=1e-12)


def test_ig_baseline_distribution_is_mean_of_single_baselines(rng):
    m = MLP(5, 2, hidden=(8,), activation=nn.Tanh).double()
    x = rng.normal(size=(3, 5))
    dist = rng.normal(size=(4, 5))
    exp = IntegratedGradients(m, n_steps=40, baseline_distribution=dist).explain(x, target=0)
    singles = [IntegratedGradients(m, n_steps=40, baseline=b).explain(x, target=0) for b in dist]
    np.testing.assert_allclose(exp.values, np.mean([s.values for s in singles], axis=0), rtol=1e-10)
    np.testing.assert_allclose(exp.base_value, np.mean([s.base_value for s in singles], axis=0), rtol=1e-10)
    assert np.max(np.abs(exp.delta)) < 1e-6


def test_ig_baseline_subsampling_is_seeded(rng):
    m = MLP(5, 2, hidden=(8,)).double()
    x = rng.normal(size=(3, 5))
    dist = rng.normal(size=(20, 5))
    a = IntegratedGradients(m, baseline_distribution=dist, n_baseline_samples=5, seed=1).explain(x).values
    b = IntegratedGradients(m, baseline_distribution=dist, n_baseline_samples=5, seed=1).explain(x).values
    c = IntegratedGradients(m, baseline_distribution=dist, n_baseline_samples=5, seed=2).explain(x).values
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_quadrature_weights_sum_to_one_and_integrate_polynomials():
    for method in ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"):
        a, w = quadrature(50, method)
        assert w.sum() == pytest.approx(1.0)
        assert np.all((a >= 0) & (a <= 1))
    a, w = quadrature(5, "gausslegendre")
    assert (w * a**9).sum() == pytest.approx(0.1, rel=1e-12)  # exact up to degree 2n-1


# -- Saliency, Gradient x Input ----------------------------------------------------
def test_gradient_x_input_on_linear_model(rng):
    m = linear_model()
    x = rng.normal(size=(4, 6))
    exp = GradientXInput(m).explain(x, target=[0, 1, 2, 0])
    w = m.weight.detach().numpy()
    np.testing.assert_allclose(exp.values, w[[0, 1, 2, 0]] * x, rtol=1e-12)


def test_saliency_absolute_signed_and_channel_max(rng):
    torch.manual_seed(0)
    m = CNN2d(3, 4, channels=(4, 4)).double()
    x = rng.normal(size=(2, 3, 8, 8))
    signed = Saliency(m, absolute=False).explain(x, target=1).values
    absolute = Saliency(m).explain(x, target=1).values
    np.testing.assert_allclose(absolute, np.abs(signed))
    reduced = Saliency(m, reduce_channels="max").explain(x, target=1).values
    assert reduced.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(reduced[:, 0], np.abs(signed).max(1))


# -- SmoothGrad -----------------------------------------------------------------
def test_smoothgrad_on_linear_model_equals_gradient(rng):
    m = linear_model()
    x = rng.normal(size=(4, 6))
    w = m.weight.detach().numpy()[1]
    mean = SmoothGrad(m, n_samples=30).explain(x, target=1).values
    np.testing.assert_allclose(mean, np.broadcast_to(w, x.shape), rtol=1e-12)
    sq = SmoothGrad(m, n_samples=30, variant="squared").explain(x, target=1).values
    np.testing.assert_allclose(sq, np.broadcast_to(w**2, x.shape), rtol=1e-12)
    var = SmoothGrad(m, n_samples=30, variant="vargrad").explain(x, target=1).values
    np.testing.assert_allclose(var, 0, atol=1e-12)


def test_smoothgrad_seeded_and_batch_size_invariant(rng):
    torch.manual_seed(0)
    m = MLP(6, 3, hidden=(16,)).double()
    x = rng.normal(size=(5, 6))
    a = SmoothGrad(m, n_samples=12, seed=3).explain(x).values
    b = SmoothGrad(m, n_samples=12, seed=3, batch_size=7).explain(x).values
    c = SmoothGrad(m, n_samples=12, seed=4).explain(x).values
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(a, c)


def test_smoothgrad_with_explicit_noise_matches_manual_average(rng):
    torch.manual_seed(0)
    m = MLP(4, 2, hidden=(8,), activation=nn.Tanh).double()
    x = rng.normal(size=(3, 4))
    noise = rng.normal(size=(5, 3, 4))
    exp = SmoothGrad(m, base="gradient_x_input", n_samples=5).explain(x, target=0, noise=noise)
    manual = np.mean([GradientXInput(m).explain(x + e, target=0).values for e in noise], axis=0)
    np.testing.assert_allclose(exp.values, manual, rtol=1e-10)


def test_smoothgrad_wraps_integrated_gradients(rng):
    m = linear_model()
    x = rng.normal(size=(2, 6))
    exp = SmoothGrad(m, base="integrated_gradients", n_samples=4, base_options={"n_steps": 5}).explain(x, target=0)
    # IG of a linear model is w * (x + eps - 0); its mean over noise is w * (x + mean eps)
    assert exp.values.shape == x.shape


# -- every layout, every model ------------------------------------------------------
MODELS = {
    "mlp": (lambda: MLP(12, 3, hidden=(16,)), (4, 12)),
    "cnn1d": (lambda: CNN1d(2, 3, channels=(4, 8)), (4, 2, 24)),
    "cnn2d": (lambda: CNN2d(1, 3, channels=(4, 8)), (4, 1, 12, 12)),
    "gru": (lambda: RecurrentClassifier(2, 3, hidden=8), (4, 2, 16)),
}


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("method", ["saliency", "gradient_x_input", "smoothgrad", "integrated_gradients"])
def test_every_method_on_every_layout(model_name, method, rng):
    torch.manual_seed(0)
    make, shape = MODELS[model_name]
    model = make().double()
    x = rng.normal(size=shape)
    options = {"smoothgrad": {"n_samples": 8}, "integrated_gradients": {"n_steps": 200}}.get(method, {})
    exp = lumos.explain(model, x, method=method, **options)
    assert exp.values.shape == x.shape
    assert np.isfinite(exp.values).all()
    assert exp.prediction.shape == (4, 3)
    np.testing.assert_array_equal(exp.target, exp.prediction.argmax(1))
    if method == "integrated_gradients":
        gap = np.abs(exp.target_score() - exp.base_value).sum()
        assert np.abs(exp.delta).sum() < 1e-2 * gap


def test_real_ecg200_integrated_gradients():
    from conftest import shared_data

    from lumos.data import load_ecg200
    from lumos.models.train import accuracy, fit

    shared_data("ecg200.npz")
    ds = load_ecg200()
    model = fit(CNN1d(1, 2, channels=(8, 8)), ds.X_train, ds.y_train, epochs=40, lr=1e-2, batch_size=16, seed=0)
    assert accuracy(model, ds.X_test, ds.y_test) > 0.75
    exp = IntegratedGradients(model, n_steps=128).explain(ds.X_test[:16])
    assert exp.values.shape == (16, 1, 96)
    gap = np.abs(exp.target_score() - exp.base_value)
    assert np.abs(exp.delta).sum() < 1e-2 * gap.sum()
