"""DeepLIFT (Rescale), DeepLiftShap and GradientShap (#16 item 1): the properties of
/work/shared/METHODS.md "Time series" and agreement with captum.

- DeepLIFT: summation-to-delta Σ C = f(x) − f(x') to float rounding (ReLU MLPs, CNNs with
  max pooling, every supported activation, overlapping and adaptive max pooling, softmax
  modules and output transformations); equal to captum's DeepLift with the same reference
  on lumos's MLP, CNN1d and CNN2d. captum 0.9 loses the rule of a module whose output feeds
  another hooked module (ReLU -> MaxPool: captum issue #1104, fixed upstream by PR #1843),
  which lumos's CNNs have; the CNN comparisons therefore give captum the same network with a
  copy between those modules (identical outputs), and check that on the unmodified network
  captum either agrees or violates its own summation-to-delta.
- Functional nonlinearities are refused by name; with strict=False the failure of
  summation-to-delta shows in delta and a warning.
- DeepLiftShap: Σ C = f(x) − mean_b f(b); equal to captum's DeepLiftShap.
- GradientShap: equal to captum's GradientShap given captum's draws; per-row seeds (batch
  size and row_offset do not change results); mean over many samples -> IG averaged over
  the background.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lumos
from lumos.core.validate import broadcast_reference
from lumos.methods.gradient import DeepLift, DeepLiftShap, GradientShap, IntegratedGradients, SmoothGrad
from benchmarks.bench_deeplift import decoupled  # captum 0.9's ReLU/MaxPool workaround, shared with the benchmark
from lumos.models import CNN1d, CNN2d, MLP, RecurrentClassifier

captum_attr = pytest.importorskip("captum.attr")

def captum_deeplift(model, x, baseline, target, shap=False):
    cls = captum_attr.DeepLiftShap if shap else captum_attr.DeepLift
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr, delta = cls(copy.deepcopy(model).eval()).attribute(
            torch.as_tensor(x), baselines=baseline if np.ndim(baseline) == 0 else torch.as_tensor(baseline),
            target=torch.as_tensor(target), return_convergence_delta=True)
    return attr.detach().numpy(), delta.detach().numpy()


def rel_diff(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def seeded(model_fn):
    torch.manual_seed(0)
    return model_fn().eval()


def series(n=6, c=2, t=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c, t)).astype(np.float32)


def images(n=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 1, 16, 16)).astype(np.float32)


def tabular(n=8, d=10, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


SETUPS = {
    "mlp": (lambda: MLP(10, 3, hidden=(32, 16)), tabular),
    "cnn1d": (lambda: CNN1d(2, 3, channels=(8, 8, 8)), series),
    "cnn2d": (lambda: CNN2d(1, 4, channels=(4, 8, 8)), images),
}


def reference(kind, x):
    if kind == "zeros":
        return None
    if kind == "scalar":
        return 0.3
    if kind == "one sample":
        return np.random.default_rng(7).normal(size=x.shape[1:]).astype(np.float32)
    return np.random.default_rng(7).normal(size=x.shape).astype(np.float32)


def assert_summation(exp, tol=1e-5):
    rows = np.arange(len(exp.target))
    change = exp.prediction[rows, exp.target] - exp.base_value
    assert np.all(np.abs(exp.delta) <= tol * np.abs(change) + 1e-6), (exp.delta, change)
    np.testing.assert_allclose(exp.values.reshape(len(rows), -1).sum(1, dtype=np.float64), change,
                               rtol=tol, atol=1e-6)


# -- DeepLIFT: summation-to-delta -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SETUPS))
@pytest.mark.parametrize("ref", ["zeros", "scalar", "one sample", "per input"])
def test_deeplift_sums_to_delta_on_relu_networks_with_max_pooling(name, ref):
    make, data = SETUPS[name]
    model, x = seeded(make), data()
    exp = DeepLift(model).explain(x, baseline=reference(ref, x))
    assert exp.values.shape == x.shape and exp.method == "deeplift"
    assert_summation(exp)
    with torch.no_grad():
        base = model(torch.as_tensor(broadcast_reference(reference(ref, x), x)))
    np.testing.assert_allclose(exp.base_value, base.numpy()[np.arange(len(x)), exp.target], rtol=1e-5, atol=1e-6)


ACTIVATIONS = [nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Tanh, nn.Sigmoid, nn.Mish,
               nn.Hardswish, nn.SELU, nn.ReLU6, nn.PReLU]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.__name__)
def test_deeplift_sums_to_delta_for_every_supported_activation(act):
    model = seeded(lambda: MLP(10, 3, hidden=(16, 16), activation=act))
    x = tabular()
    assert_summation(DeepLift(model).explain(x, baseline=reference("per input", x)))


@pytest.mark.parametrize("pool", [nn.MaxPool1d(3, stride=1, padding=1), nn.MaxPool1d(4, stride=2),
                                  nn.AdaptiveMaxPool1d(5)], ids=["overlapping", "stride<kernel", "adaptive"])
def test_deeplift_sums_to_delta_through_overlapping_and_adaptive_max_pooling(pool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.ReLU(), pool, nn.Conv1d(4, 4, 3), nn.Tanh(),
                          nn.Flatten(), nn.LazyLinear(3))
    x = series(t=20)
    model(torch.as_tensor(x))
    model.eval()
    assert_summation(DeepLift(model).explain(x, baseline=reference("per input", x)))


def test_deeplift_sums_to_delta_through_a_softmax_module_and_output_transformations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 6), nn.Softmax(dim=1), nn.Linear(6, 3)).eval()
    x = tabular()
    assert_summation(DeepLift(model).explain(x, baseline=reference("per input", x)))
    mlp = seeded(lambda: MLP(10, 3, hidden=(16,)))
    for output in ("softmax", "log_softmax", "sigmoid"):
        exp = DeepLift(mlp, output=output).explain(x, baseline=reference("per input", x))
        assert_summation(exp)
        with torch.no_grad():
            probs = torch.softmax(mlp(torch.as_tensor(x)), 1).numpy()
        if output == "softmax":
            np.testing.assert_allclose(exp.prediction, probs, rtol=1e-5)


class PlainReLU(nn.ReLU):
    """An nn.ReLU subclass: its rule takes the general path (the module's own backward
    where Δx = 0) instead of the closed-form ReLU derivative."""


def test_deeplift_where_inputs_equal_the_reference():
    """Zero regions against a zero reference (MNIST backgrounds): Δx = 0 at many units, where
    the rules use the gradient; summation still holds, captum agrees, and the closed-form
    ReLU derivative equals the general path."""
    model = seeded(SETUPS["cnn2d"][0])
    x = images(n=6)
    x[:, :, :9] = 0.0
    x[0] = 0.0  # one input equal to the reference: no contribution at all
    exp = DeepLift(model).explain(x)
    assert_summation(exp)
    np.testing.assert_array_equal(exp.values[0], 0.0)
    attr, _ = captum_deeplift(decoupled(model), x, 0.0, exp.target)
    assert rel_diff(exp.values, attr) < 1e-5
    general = copy.deepcopy(model)
    for name, m in list(general.features.named_children()):
        if type(m) is nn.ReLU:
            general.features._modules[name] = PlainReLU()
    np.testing.assert_allclose(DeepLift(general).explain(x).values, exp.values, rtol=1e-6, atol=1e-8)


def test_deeplift_does_not_depend_on_the_batch_size():
    model, x = seeded(SETUPS["cnn1d"][0]), series(n=7)
    ref = reference("per input", x)
    a = DeepLift(model).explain(x, baseline=ref)
    b = DeepLift(model, batch_size=3).explain(x, baseline=ref)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.base_value, b.base_value, rtol=1e-6, atol=1e-7)


def test_deeplift_baselines_constructor_and_call():
    model, x = seeded(SETUPS["mlp"][0]), tabular()
    zeros = DeepLift(model).explain(x)
    np.testing.assert_array_equal(zeros.values, DeepLift(model).explain(x, baseline=0.0).values)
    np.testing.assert_array_equal(zeros.values, DeepLift(model).explain(x, baseline=np.zeros(x.shape[1:])).values)
    one = reference("one sample", x)
    ctor = DeepLift(model, baseline=one).explain(x)
    np.testing.assert_allclose(ctor.values, DeepLift(model).explain(x, baseline=np.broadcast_to(one, x.shape)).values,
                               rtol=1e-6, atol=1e-7)
    call = DeepLift(model, baseline=one).explain(x, baseline=0.0)  # a call's baseline replaces the constructor's
    np.testing.assert_array_equal(call.values, zeros.values)
    assert ctor.params["baseline"] == "array" and zeros.params["baseline"] is None
    with pytest.raises(ValueError, match="baseline shape"):
        DeepLift(model).explain(x, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="finite|NaN"):
        DeepLift(model).explain(x, baseline=np.full(x.shape[1:], np.nan))
    # the registry and lumos.explain reach it
    np.testing.assert_array_equal(lumos.explain(model, x, "deeplift").values, zeros.values)


def test_deeplift_is_wrapped_by_smoothgrad():
    model, x = seeded(SETUPS["mlp"][0]), tabular()
    ref = reference("one sample", x)
    plain = DeepLift(model, baseline=ref).explain(x)
    smooth = SmoothGrad(model, base=DeepLift(model, baseline=ref), n_samples=3, noise_level=0.0).explain(x)
    np.testing.assert_allclose(smooth.values, plain.values, rtol=1e-5, atol=1e-7)


# -- DeepLIFT: captum ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SETUPS))
@pytest.mark.parametrize("ref", ["zeros", "scalar", "per input"])
def test_deeplift_equals_captum(name, ref):
    make, data = SETUPS[name]
    model, x = seeded(make), data()
    baseline = reference(ref, x)
    exp = DeepLift(model).explain(x, baseline=baseline)
    peer_ref = 0.0 if baseline is None else baseline
    attr, _ = captum_deeplift(decoupled(model), x, peer_ref, exp.target)
    assert rel_diff(exp.values, attr) < 1e-5
    # on the unmodified network captum 0.9 drops the ReLU rule before a max pooling: it agrees
    # with lumos (a captum with the fix of #1104) or its own summation-to-delta fails
    attr, delta = captum_deeplift(model, x, peer_ref, exp.target)
    rows = np.arange(len(x))
    change = exp.prediction[rows, exp.target] - exp.base_value
    assert rel_diff(exp.values, attr) < 1e-5 or np.abs(delta).max() > 1e-4 * np.abs(change).max()


def test_deeplift_multiplies_by_the_difference_as_captum_by_default():
    model, x = seeded(SETUPS["mlp"][0]), tabular()
    ref = reference("per input", x)
    exp = DeepLift(model).explain(x, baseline=ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = captum_attr.DeepLift(copy.deepcopy(model), multiply_by_inputs=False).attribute(
            torch.as_tensor(x), baselines=torch.as_tensor(ref), target=torch.as_tensor(exp.target)).detach().numpy()
    np.testing.assert_allclose(exp.values, local * (x - ref), rtol=1e-5, atol=1e-7)


# -- DeepLIFT: what the rules cannot see -----------------------------------------------------------
class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 16)

    def forward(self, x):
        return torch.tanh(self.fc(x))


def test_functional_nonlinearities_are_refused_by_name():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"relu in the model's own forward \(FunctionalNet\).*strict=False"):
        DeepLift(FunctionalNet()).explain(tabular())
    with pytest.raises(ValueError, match=r"tanh in 'block' \(Block\)"):
        DeepLift(_named(block=Block(), head=nn.Linear(16, 3))).explain(tabular())
    with pytest.raises(ValueError, match=r"gru in 'rnn' \(GRU\)"):
        DeepLift(RecurrentClassifier(2, 3, hidden=4)).explain(series(t=8))
    with pytest.raises(ValueError, match="relu in"):
        DeepLiftShap(FunctionalNet(), background=tabular(3, seed=1)).explain(tabular())


def test_the_found_nonlinearities_are_remembered_per_model_and_still_refused():
    # found in the first forward pass of a call and remembered per model (no second spied pass): a second
    # explainer of the same model refuses it as the first did, a swapped module tree is looked at again
    torch.manual_seed(0)
    model = FunctionalNet()
    for _ in range(2):
        with pytest.raises(ValueError, match=r"relu in the model's own forward \(FunctionalNet\)"):
            DeepLift(model).explain(tabular())
    seq = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    DeepLift(seq).explain(tabular())
    seq[1] = nn.Identity()
    seq.add_module("3", FunctionalNet())
    seq[2] = nn.Linear(16, 10)
    with pytest.raises(ValueError, match=r"relu in '3' \(FunctionalNet\)"):
        DeepLift(seq).explain(tabular())


def _named(**modules):
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(modules))


def test_functional_relu_with_strict_false_reports_the_failure_in_delta():
    torch.manual_seed(0)
    model = FunctionalNet().eval()
    x, ref = tabular(n=16), reference("per input", tabular(n=16))
    with pytest.warns(UserWarning, match=r"do not sum to f\(x\) - f\(reference\).*relu in the model's own forward"):
        exp = DeepLift(model, strict=False).explain(x, baseline=ref)
    rows = np.arange(len(x))
    change = exp.prediction[rows, exp.target] - exp.base_value
    assert np.abs(exp.delta).max() > 1e-2 * np.abs(change).max()  # reported, not silent
    # the same network with nn.ReLU: exact, no warning
    seq = nn.Sequential(model.fc1, nn.ReLU(), model.fc2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_summation(DeepLift(seq).explain(x, baseline=ref))


# -- DeepLiftShap ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_deeplift_shap_sums_to_f_minus_mean_background_and_equals_captum(name):
    make, data = SETUPS[name]
    model, x = seeded(make), data()
    bg = data(n=6, seed=3)
    exp = DeepLiftShap(model, background=bg).explain(x)
    with torch.no_grad():
        mean_bg = model(torch.as_tensor(bg)).mean(0).numpy()
    np.testing.assert_allclose(exp.base_value, mean_bg[exp.target], rtol=1e-5, atol=1e-6)
    assert_summation(exp)
    attr, _ = captum_deeplift(decoupled(model), x, bg, exp.target, shap=True)
    assert rel_diff(exp.values, attr) < 1e-5
    # as the mean of DeepLIFT over the references
    mean = np.mean([DeepLift(model).explain(x, target=exp.target, baseline=b).values for b in bg], axis=0)
    assert rel_diff(exp.values, mean) < 1e-5


def test_deeplift_shap_background_subset_batching_and_options():
    model, x = seeded(SETUPS["cnn1d"][0]), series(n=5)
    bg = series(n=9, seed=4)
    full = DeepLiftShap(model, background=bg).explain(x)
    np.testing.assert_allclose(DeepLiftShap(model, background=bg, batch_size=4).explain(x).values, full.values,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(DeepLiftShap(model).explain(x, background=bg).values, full.values)
    other = DeepLiftShap(model, background=bg[:2]).explain(x, background=bg)  # the call's background wins
    np.testing.assert_array_equal(other.values, full.values)
    sub = DeepLiftShap(model, background=bg, n_background=4, seed=5).explain(x)
    idx = np.random.default_rng(5).choice(len(bg), 4, replace=False)
    np.testing.assert_allclose(sub.values, DeepLiftShap(model, background=bg[idx]).explain(x).values,
                               rtol=1e-6, atol=1e-7)
    assert sub.params["seed"] == 5 and sub.params["n_background"] == 4
    with pytest.raises(ValueError, match="needs background rows"):
        DeepLiftShap(model).explain(x)
    with pytest.raises(ValueError, match="background rows have shape"):
        DeepLiftShap(model, background=series(n=3, t=16)).explain(x)


# -- GradientShap ------------------------------------------------------------------------------------
def captum_draws(x, bg, n, stdevs, seed=0):
    """Run captum's GradientShap with seeded global generators and return its attributions
    with the draws it made, in lumos's ``draws=`` layout."""
    xt = torch.as_tensor(x)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return xt, (lambda model, target: captum_attr.GradientShap(model).attribute(
        xt, baselines=torch.as_tensor(bg), target=torch.as_tensor(target), n_samples=n, stdevs=stdevs))


def replay(x, bg, n, stdevs, seed=0):
    """The draws captum makes for ``attribute(x, n_samples=n, stdevs=stdevs)`` after seeding
    numpy and torch with ``seed``: background indices (np.random.choice), the noise
    (torch.normal), then alphas (np.random.uniform); rows input-major."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    index = np.random.choice(len(bg), len(x) * n)
    noise = torch.normal(0, torch.full((len(x) * n, *x.shape[1:]), float(stdevs))).numpy()
    alpha = np.random.uniform(0.0, 1.0, len(x) * n)
    return (index.reshape(len(x), n), alpha.reshape(len(x), n), noise.reshape(len(x), n, *x.shape[1:]))


@pytest.mark.parametrize("name", ["mlp", "cnn1d"])
@pytest.mark.parametrize("stdevs", [0.0, 0.2])
def test_gradient_shap_equals_captum_with_the_same_draws(name, stdevs):
    make, data = SETUPS[name]
    model, x = seeded(make), data()
    bg = data(n=7, seed=3)
    n = 6
    target = model(torch.as_tensor(x)).argmax(1).numpy()
    draws = replay(x, bg, n, stdevs)
    np.random.seed(0)
    torch.manual_seed(0)
    ref = captum_attr.GradientShap(copy.deepcopy(model)).attribute(
        torch.as_tensor(x), baselines=torch.as_tensor(bg), target=torch.as_tensor(target), n_samples=n,
        stdevs=stdevs).detach().numpy()
    exp = GradientShap(model, background=bg, n_samples=n, stdevs=stdevs).explain(x, target=target, draws=draws)
    assert rel_diff(exp.values, ref) < 1e-5
    # replayed draws are blocked like drawn ones
    small = GradientShap(model, background=bg, n_samples=n, batch_size=4).explain(x, target=target, draws=draws)
    np.testing.assert_allclose(small.values, exp.values, rtol=1e-5, atol=1e-7)


def test_gradient_shap_rows_are_seeded_by_position():
    model, x = seeded(SETUPS["cnn1d"][0]), series(n=7)
    bg = series(n=5, seed=3)
    gs = GradientShap(model, background=bg, n_samples=9, stdevs=0.1, seed=4)
    full = gs.explain(x)
    np.testing.assert_allclose(GradientShap(model, background=bg, n_samples=9, stdevs=0.1, seed=4,
                                            batch_size=5).explain(x).values, full.values, rtol=1e-5, atol=1e-7)
    part = gs.explain(x[3:], row_offset=3)
    np.testing.assert_allclose(part.values, full.values[3:], rtol=1e-5, atol=1e-7)
    assert not np.allclose(gs.explain(x[3:]).values, full.values[3:])  # position 0, other draws
    np.testing.assert_array_equal(gs.explain(x).values, full.values)
    assert not np.allclose(GradientShap(model, background=bg, n_samples=9, seed=5).explain(x).values, full.values)
    assert full.params["seed"] == 4
    rows = np.arange(len(x))
    with torch.no_grad():
        mean_bg = model(torch.as_tensor(bg)).mean(0).numpy()
    np.testing.assert_allclose(full.base_value, mean_bg[full.target], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full.delta, full.values.reshape(len(x), -1).sum(1)
                               - (full.prediction[rows, full.target] - full.base_value), rtol=1e-5, atol=1e-5)


def test_gradient_shap_mean_approaches_ig_averaged_over_the_background():
    torch.manual_seed(0)
    model = MLP(6, 2, hidden=(16,), activation=nn.Tanh).eval()
    x0 = tabular(n=2, d=6)
    bg = tabular(n=4, d=6, seed=3)
    target = np.array([0, 1])
    ig = IntegratedGradients(model, n_steps=64, baseline_distribution=bg).explain(x0, target=target).values
    k, n = 40, 100  # k copies of each input: k independent estimates (the rows' own seeds) of n draws
    x = np.repeat(x0, k, axis=0)
    est = GradientShap(model, background=bg, n_samples=n).explain(x, target=np.repeat(target, k)).values
    est = est.reshape(2, k, 6)
    mean, se = est.mean(1), est.std(1, ddof=1) / np.sqrt(k)
    assert se.max() < 0.1 * np.abs(ig).max()  # the test can fail
    assert np.all(np.abs(mean - ig) <= 5 * se + 1e-6), (mean - ig) / se


def test_gradient_shap_options_are_checked():
    model, x = seeded(SETUPS["mlp"][0]), tabular()
    bg = tabular(n=3, seed=1)
    with pytest.raises(ValueError, match="needs background rows"):
        GradientShap(model).explain(x)
    with pytest.raises(ValueError, match=r"index and alpha must have shape \(N, n_samples\)"):
        GradientShap(model, background=bg, n_samples=4).explain(x, draws=(np.zeros((8, 3), int), np.zeros((8, 3)),
                                                                          None))
    with pytest.raises(ValueError, match="rows of the background"):
        GradientShap(model, background=bg, n_samples=2).explain(x, draws=(np.full((8, 2), 3), np.zeros((8, 2)), None))
    with pytest.raises(ValueError, match="stdevs"):
        GradientShap(model, background=bg, stdevs=-1.0)
    with pytest.raises(TypeError, match="draws must be a tuple"):
        GradientShap(model, background=bg).explain(x, draws=np.zeros(3))
