"""Temporal family, time-series methods of ../shared/METHODS.md ("Time series"): Temporal IG,
augmented / temporal occlusion, TSR and RISE; exact properties, naive loops, and tint where
it is installed."""
import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.methods.agnostic import Occlusion
from lumos.methods.gradient import IntegratedGradients, Saliency
from lumos.methods.temporal import rise as rise_module
from lumos.methods.temporal.rise import Rise, interpolation_matrix
from lumos.methods.temporal.temporal_ig import TemporalIntegratedGradients
from lumos.methods.temporal.temporal_occlusion import AugmentedOcclusion, TemporalOcclusion
from lumos.methods.temporal.tsr import TemporalSaliencyRescaling
from lumos.models.reference import RecurrentClassifier


@pytest.fixture
def gru():
    torch.manual_seed(0)
    return RecurrentClassifier(3, 2, hidden=8).eval()


@pytest.fixture
def series():
    return np.random.default_rng(0).normal(size=(5, 3, 7)).astype(np.float32)


class TimeFirst(nn.Module):
    """A lumos (N, C, T) model seen in tint's (N, T, C) layout."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.transpose(1, 2))


def tint_layout(x):
    return torch.as_tensor(x).transpose(1, 2).contiguous()


class StepLinear(nn.Module):
    """f(x) = Σ_{c,t} w_c x_{c,t} + bias for series of any length."""

    def __init__(self, w, bias=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64))
        self.bias = bias

    def forward(self, x):
        return (x.to(torch.float64) * self.w.view(1, -1, 1)).sum((1, 2))[:, None] + self.bias


class Flat(nn.Module):
    """f(x) = w · vec(x) + b on (N, *S)."""

    def __init__(self, w, bias=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64).reshape(1, -1))
        self.bias = bias

    def forward(self, x):
        return x.reshape(len(x), -1).to(torch.float64) @ self.w.T + self.bias


def test_registered_with_capabilities():
    for name in ("temporal_ig", "augmented_occlusion", "temporal_occlusion", "tsr", "rise"):
        assert name in lumos.list_methods()
    assert TemporalIntegratedGradients.layouts == ("timeseries",) and TemporalIntegratedGradients.needs_gradients
    assert AugmentedOcclusion.needs_background and AugmentedOcclusion.stochastic
    assert set(Rise.layouts) == {"timeseries", "image"} and Rise.stochastic
    assert lumos.explain(StepLinear([1.0, 2.0, 3.0]), np.ones((2, 3, 4)), "temporal_ig", n_steps=4).method == "temporal_ig"


# -- Temporal IG ----------------------------------------------------------------------------
def test_temporal_ig_completeness_at_every_step(gru, series):
    model = gru.double()
    x = series.astype(np.float64)
    base = np.random.default_rng(3).normal(size=x.shape[1:])
    exp = TemporalIntegratedGradients(model, n_steps=50).explain(x, target=1, baseline=base)
    with torch.no_grad():
        for t in range(x.shape[2]):
            prefix = torch.as_tensor(x[:, :, :t + 1])
            at_base = prefix.clone()
            at_base[:, :, t] = torch.as_tensor(base[:, t])
            gap = (model(prefix)[:, 1] - model(at_base)[:, 1]).numpy()
            np.testing.assert_allclose(exp.values[:, :, t].sum(1), gap, atol=1e-7)
            np.testing.assert_allclose(exp.extras["step_base_value"][:, t], model(at_base)[:, 1].numpy(), atol=1e-12)
    assert np.abs(exp.extras["step_delta"]).max() < 1e-7
    assert exp.extras["step_delta"].shape == (len(x), x.shape[2])


def test_temporal_ig_of_a_stepwise_linear_model_is_w_times_x_minus_b(series):
    w = np.array([0.5, -1.0, 2.0])
    exp = TemporalIntegratedGradients(StepLinear(w), n_steps=3).explain(series, baseline=0.25)
    np.testing.assert_allclose(exp.values, w[None, :, None] * (series - 0.25), rtol=1e-6, atol=1e-7)


def test_temporal_ig_does_not_depend_on_the_batch_size(gru, series):
    ref = TemporalIntegratedGradients(gru, n_steps=9).explain(series, target=0)
    small = TemporalIntegratedGradients(gru, n_steps=9, batch_size=4).explain(series, target=0)  # steps split
    np.testing.assert_allclose(small.values, ref.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(small.target, ref.target)


def test_temporal_ig_equals_tint(gru, series):
    tint = pytest.importorskip("tint.attr")
    base = np.random.default_rng(4).normal(size=series.shape).astype(np.float32)
    # (not riemann_trapezoid: captum's weights 1/n with halved ends sum to (n - 1)/n, lumos's to 1)
    for method, baseline in (("gausslegendre", None), ("riemann_middle", base)):
        ours = TemporalIntegratedGradients(gru, n_steps=20, method=method).explain(series, target=1, baseline=baseline)
        theirs = tint.TemporalIntegratedGradients(TimeFirst(gru)).attribute(
            tint_layout(series), baselines=None if baseline is None else tint_layout(baseline), target=1, n_steps=20,
            method=method)
        np.testing.assert_allclose(ours.values, theirs.transpose(1, 2).detach().numpy(), atol=1e-6)


# -- augmented occlusion ---------------------------------------------------------------------
def test_augmented_occlusion_with_a_constant_background_is_occlusion(gru, series):
    row = np.random.default_rng(5).normal(size=(1, 3, 7)).astype(np.float32)
    for window, stride in (((1, 2), None), ((2, 3), (1, 2))):
        occ = Occlusion(gru, window=window, stride=stride).explain(series, target=1, baseline=row[0])
        aug = AugmentedOcclusion(gru, window=window, stride=stride).explain(series, target=1, background=row)
        np.testing.assert_array_equal(aug.values, occ.values)
        many = AugmentedOcclusion(gru, window=window, stride=stride, n_samples=3).explain(series, target=1,
                                                                                          background=row)
        np.testing.assert_allclose(many.values, occ.values, rtol=1e-6, atol=1e-8)
    groups = np.repeat(np.arange(3)[:, None], 7, axis=1)
    occ = Occlusion(gru).explain(series, target=0, baseline=row[0], groups=groups)
    aug = AugmentedOcclusion(gru).explain(series, target=0, background=row, groups=groups)
    np.testing.assert_array_equal(aug.values, occ.values)


def test_augmented_occlusion_of_a_linear_model_is_w_times_x_minus_mean_background():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(2, 5))
    x = rng.normal(size=(3, 2, 5))
    bg = rng.normal(size=(6, 2, 5))
    n = 4000
    exp = AugmentedOcclusion(Flat(w, 0.7), window=(1, 1), n_samples=n).explain(x, background=bg)
    expected = w * (x - bg.mean(0))
    spread = np.abs(w) * bg.std(0)  # std of one draw's score w_i (x_i - b_i)
    assert np.all(np.abs(exp.values - expected) < 5 * spread / np.sqrt(n) + 1e-12)


def test_augmented_occlusion_draws_follow_the_row(gru, series):
    bg = np.random.default_rng(7).normal(size=(9, 3, 7)).astype(np.float32)
    ref = AugmentedOcclusion(gru, window=(1, 2), n_samples=4).explain(series, target=1, background=bg)
    part = AugmentedOcclusion(gru, window=(1, 2), n_samples=4, batch_size=5).explain(series[2:], target=1, background=bg,
                                                                                      row_offset=2)
    np.testing.assert_allclose(part.values, ref.values[2:], rtol=1e-5, atol=1e-7)
    other = AugmentedOcclusion(gru, window=(1, 2), n_samples=4, seed=1).explain(series, target=1, background=bg)
    assert not np.allclose(other.values, ref.values)


def test_augmented_occlusion_equals_tint_with_one_data_row(gru, series):
    tint = pytest.importorskip("tint.attr")
    row = np.random.default_rng(8).normal(size=(1, 3, 7)).astype(np.float32)
    ours = AugmentedOcclusion(gru, window=(1, 2), stride=(1, 1)).explain(series, target=1, background=row)
    theirs = tint.AugmentedOcclusion(TimeFirst(gru), data=tint_layout(row)).attribute(
        tint_layout(series), sliding_window_shapes=(2, 1), strides=(1, 1), target=1)
    np.testing.assert_allclose(ours.values, theirs.transpose(1, 2).numpy(), atol=1e-6)


# -- temporal occlusion ----------------------------------------------------------------------
def naive_temporal_occlusion(model, x, target, baseline):
    out = np.zeros(x.shape)
    with torch.no_grad():
        for t in range(x.shape[2]):
            prefix = torch.as_tensor(x[:, :, :t + 1])
            full = model(prefix)[:, target]
            for c in range(x.shape[1]):
                occ = prefix.clone()
                occ[:, c, t] = float(baseline)
                out[:, c, t] = (full - model(occ)[:, target]).numpy()
    return out


def test_temporal_occlusion_is_the_loop_over_prefixes(gru, series):
    exp = TemporalOcclusion(gru).explain(series, target=1, baseline=0.3)
    np.testing.assert_allclose(exp.values, naive_temporal_occlusion(gru, series, 1, 0.3), atol=1e-6)
    small = TemporalOcclusion(gru, batch_size=3).explain(series, target=1, baseline=0.3)
    np.testing.assert_allclose(small.values, exp.values, rtol=1e-5, atol=1e-7)
    row = np.full((1, 3, 7), 0.3, dtype=np.float32)  # a one-row background is the baseline
    np.testing.assert_allclose(TemporalOcclusion(gru, n_samples=2).explain(series, target=1, background=row).values,
                               exp.values, rtol=1e-5, atol=1e-7)


def test_temporal_occlusion_equals_tint(gru, series):
    tint = pytest.importorskip("tint.attr")
    for window, stride in ((1, None), (2, 1)):
        ours = TemporalOcclusion(gru, window=window, stride=stride).explain(series, target=1, baseline=0.3)
        explainer = tint.TimeForwardTunnel(tint.TemporalOcclusion(TimeFirst(gru)))
        theirs = explainer.attribute(tint_layout(series), sliding_window_shapes=(window,),
                                     strides=None if stride is None else (stride,), target=1, baselines=0.3)
        np.testing.assert_allclose(ours.values, theirs.transpose(1, 2).numpy(), atol=1e-6)
    row = np.random.default_rng(9).normal(size=(1, 3, 7)).astype(np.float32)
    ours = TemporalOcclusion(gru).explain(series, target=1, background=row)
    explainer = tint.TimeForwardTunnel(tint.TemporalAugmentedOcclusion(TimeFirst(gru), data=tint_layout(row),
                                                                        is_temporal=True))
    theirs = explainer.attribute(tint_layout(series), sliding_window_shapes=(1,), target=1)
    np.testing.assert_allclose(ours.values, theirs.transpose(1, 2).numpy(), atol=1e-6)


# -- TSR ------------------------------------------------------------------------------------
class IgnoresStep(nn.Module):
    def __init__(self, model, step):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, x):
        keep = torch.ones(x.shape[-1], dtype=x.dtype)
        keep[self.step] = 0
        return self.model(x * keep)


def naive_tsr(explainer, x, target, mask=0.0, threshold=None):
    out = np.zeros(x.shape)
    for i in range(len(x)):
        xi = x[i:i + 1]
        ref = explainer.explain(xi, target=target).values
        steps = x.shape[2]
        score = np.zeros(steps)
        for t in range(steps):
            masked = xi.copy()
            masked[:, :, t] = mask
            score[t] = np.abs(ref - explainer.explain(masked, target=target).values).sum()
        alpha = score.mean() if threshold is None else threshold
        for t in np.nonzero(score > alpha)[0]:
            for c in range(x.shape[1]):
                masked = xi.copy()
                masked[:, c, t] = mask
                out[i, c, t] = score[t] * np.abs(ref - explainer.explain(masked, target=target).values).sum()
    return out


def test_tsr_gives_exactly_zero_to_a_step_the_model_ignores(gru, series):
    model = IgnoresStep(gru, 4)
    for base, options in (("integrated_gradients", {"n_steps": 8}), ("saliency", {}), ("occlusion", {"window": (1, 1)})):
        exp = TemporalSaliencyRescaling(model, base=base, base_options=options).explain(series, target=1)
        assert np.all(exp.values[:, :, 4] == 0), base
        # gradients of an ignored step are exactly 0; the time relevance compares maps of copies that may sit in
        # chunks of another size (IG's path and endpoints, occlusion's perturbed rows): 0 up to the float
        # rounding of a GRU evaluated in batches of another composition
        tol = 0 if base == "saliency" else 1e-6 * np.abs(exp.extras["time_relevance"]).max()
        assert np.all(np.abs(exp.extras["time_relevance"][:, 4]) <= tol), base
        assert np.abs(exp.values).max() > 0


def test_tsr_equals_the_naive_loop(gru, series):
    for base, options, threshold in ((IntegratedGradients, {"n_steps": 8}, "mean"), (Saliency, {}, 1e-3)):
        exp = TemporalSaliencyRescaling(gru, base=base, base_options=options, threshold=threshold).explain(
            series, target=1, baseline=0.2)
        ref = naive_tsr(base(gru, **options), series, 1, mask=0.2, threshold=None if threshold == "mean" else threshold)
        np.testing.assert_allclose(exp.values, ref, rtol=1e-5, atol=1e-9)


def test_tsr_passes_base_call_options_and_follows_the_row(gru, series):
    ig = TemporalSaliencyRescaling(gru, base="ig", base_options={"n_steps": 6, "baseline": 0.5}).explain(series, target=0)
    ref = naive_tsr(_WithCall(IntegratedGradients(gru, n_steps=6), baseline=0.5), series, 0)
    np.testing.assert_allclose(ig.values, ref, rtol=1e-5, atol=1e-9)
    sg = dict(base="smoothgrad", base_options={"n_samples": 3})
    whole = TemporalSaliencyRescaling(gru, **sg).explain(series, target=0)
    part = TemporalSaliencyRescaling(gru, batch_size=7, **sg).explain(series[1:], target=0, row_offset=1)
    np.testing.assert_allclose(part.values, whole.values[1:], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="threshold"):
        TemporalSaliencyRescaling(gru, threshold="median")
    with pytest.raises(ValueError, match="explains each"):
        TemporalSaliencyRescaling(gru, base="permutation_importance")


class _WithCall:
    def __init__(self, explainer, **options):
        self.explainer, self.options = explainer, options

    def explain(self, x, target=None):
        return self.explainer.explain(x, target=target, **self.options)


# -- RISE -----------------------------------------------------------------------------------
def test_rise_of_a_linear_model_tends_to_w_times_x_up_to_the_known_affine_map():
    rng = np.random.default_rng(10)
    w = rng.normal(size=(2, 10))
    x = rng.normal(size=(3, 2, 10))
    p, bias = 0.5, 0.3
    errors = []
    for n in (200, 2000, 20000):
        exp = Rise(Flat(w, bias), n_masks=n, grid=10, p=p, per_channel=True).explain(x, target=0)
        f = exp.prediction[:, 0]
        estimate = (exp.values - p * f[:, None, None] - (1 - p) * bias) / (1 - p)
        errors.append(np.sqrt(np.mean((estimate - w * x) ** 2)))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < errors[0] / 4  # 1/sqrt(n): 10x the masks, ~3.2x less error per step


def test_rise_equals_the_naive_loop_over_its_masks():
    torch.manual_seed(1)
    cnn = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 4, 4))
    x = np.random.default_rng(11).normal(size=(3, 2, 8, 6)).astype(np.float32)
    explainer = Rise(cnn, n_masks=300, grid=3, p=0.4)
    exp = explainer.explain(x, target=2)
    state = explainer.prepare(x, lumos.methods.base.Call(None, None, "forward", seed=0))
    masks = explainer.masks(state, x.shape[2:], 0, 300).numpy()
    assert masks.shape == (300, 1, 8, 6) and masks.min() >= 0 and masks.max() <= 1
    total = np.zeros(x.shape)
    with torch.no_grad():
        for m in masks:
            total += cnn(torch.as_tensor(x * m))[:, 2].double().numpy()[:, None, None, None] * m
    np.testing.assert_allclose(exp.values, total / (300 * 0.4), rtol=1e-4, atol=1e-6)


def test_rise_masks_are_the_papers(monkeypatch):
    """The paper's generator: a grid of cells kept with probability p, resized with
    skimage's order-1 'reflect' resize (= scipy.ndimage.zoom, mirror, grid_mode) to
    (s + 1) * cell and cropped at the drawn shift."""
    ndi = pytest.importorskip("scipy.ndimage")
    explainer = Rise(nn.Identity(), n_masks=300, grid=(4, 3), p=0.5)  # two blocks of draws
    x = np.zeros((1, 1, 10, 7), dtype=np.float32)
    state = explainer.prepare(x, lumos.methods.base.Call(None, None, "forward", seed=5))
    masks = explainer.masks(state, (10, 7), 250, 300).numpy()[:, 0]
    rng = np.random.default_rng([5, 0])
    cells = rng.random((256, 1, 4, 3)) < 0.5
    shifts = [rng.integers(0, 3, size=256), rng.integers(0, 3, size=256)]
    up = (5 * 3, 4 * 3)
    for k, i in enumerate(range(250, 256)):
        big = ndi.zoom(cells[i, 0].astype(np.float64), (up[0] / 4, up[1] / 3), order=1, mode="mirror", grid_mode=True)
        paper = big[shifts[0][i]:shifts[0][i] + 10, shifts[1][i]:shifts[1][i] + 7]
        np.testing.assert_allclose(masks[k], paper, atol=1e-6)
    np.testing.assert_allclose(interpolation_matrix(4, 15).sum(1), 1.0)
    many = explainer.masks(state, (10, 7), 0, 300).numpy()
    assert abs(many.mean() - 0.5) < 0.03  # E[M] = p


def test_rise_does_not_depend_on_the_batch_size_or_the_mask_cache(monkeypatch, gru):
    x = np.random.default_rng(12).normal(size=(4, 3, 20)).astype(np.float32)
    ref = Rise(gru, n_masks=600, grid=5).explain(x, target=1)
    small = Rise(gru, n_masks=600, grid=5, batch_size=97).explain(x, target=1)
    np.testing.assert_allclose(small.values, ref.values, rtol=1e-5, atol=1e-8)
    monkeypatch.setattr(rise_module, "CACHE_ELEMENTS", 0)
    uncached = Rise(gru, n_masks=600, grid=5, batch_size=97).explain(x, target=1)
    np.testing.assert_allclose(uncached.values, ref.values, rtol=1e-5, atol=1e-8)
    assert np.all(ref.values[:, 0] == ref.values[:, 1])  # one mask shared by the channels
    own = Rise(gru, n_masks=600, grid=5, per_channel=True).explain(x, target=1)
    assert not np.allclose(own.values[:, 0], own.values[:, 1])
    with pytest.raises(ValueError, match="finer"):
        Rise(gru, grid=30).explain(x)
