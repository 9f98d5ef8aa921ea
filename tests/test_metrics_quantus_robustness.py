"""Robustness, complexity, localisation and axiom metrics of the Quantus family (#18 item 2):
equal to Quantus 0.6.0 on the same model, inputs, attributions and noise
(benchmarks/quantus_robustness_reference.py names the settings), live when Quantus is
installed and from the frozen reference otherwise; and the properties that define each."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import quantus_robustness_reference as ref
from lumos import LRP, GradientXInput, IntegratedGradients, Saliency
from lumos.methods.relevance.deep_taylor import DeepTaylor
from lumos.metrics import (METRICS, absorbed_relevance, attribution_localisation, completeness_residual, consistency,
                           continuity, effective_complexity, evaluate, focus, local_lipschitz_estimate, mosaics,
                           non_sensitivity, relative_input_stability, relative_output_stability,
                           relative_representation_stability, relevance_budget, top_k_intersection)

FROZEN = json.loads(Path(ref.REFERENCE).read_text())["values"]
TOL = 1e-5
RRS_TOL = 1e-4
"""RRS divides the relative change of the explanation by the relative change of the layer's
representation, which for small noise is a difference of nearly equal float32 activations: the
frozen values (computed on one CPU) and lumos on another differ by up to 2.4e-5 there."""


@pytest.fixture(scope="module")
def lumos_values():
    torch.set_num_threads(1)
    model, x, y, a, mask, tiles = ref.setup()
    clf, xc, yc, maps = ref.consistency_setup()
    sal = Saliency(model, absolute=False)
    kw = dict(n_samples=ref.SAMPLES, seed=ref.SEED)
    out = {
        "effective_complexity": effective_complexity(a, eps=1e-2),
        "local_lipschitz_estimate": local_lipschitz_estimate(sal, model, x, y, **kw),
        "continuity": continuity(sal, model, x, y, n_steps=12),
        "non_sensitivity": non_sensitivity(model, x, a, y, eps=1e-3),
        "attribution_localisation": attribution_localisation(a, mask),
        "top_k_intersection": top_k_intersection(a, mask, k=20),
        "focus": focus(a, tiles),
    }
    fns = {"input": relative_input_stability, "output": relative_output_stability,
           "representation": relative_representation_stability}
    for kind, fn in fns.items():
        for high, skip in ((0.2, True), (3.0, True), (3.0, False)):
            out[f"relative_{kind}_stability/high={high}/nan={skip}"] = fn(sal, model, x, y, high=high,
                                                                          skip_changed=skip, **kw)
    for how in ("first_n_sign", "sign"):
        out[f"consistency/{how}"] = consistency(clf, xc, maps, discretise_by=how, absolute=False)
    b = relevance_budget(IntegratedGradients(model, n_steps=64), model, x, y)
    out["completeness/f(x)-f(0)"] = b.f_x - b.base
    return out


def _check(ours: np.ndarray, theirs, name: str):
    theirs = np.array([np.nan if v is None else v for v in theirs], dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    kept = np.isfinite(theirs)
    assert kept.any(), name
    if name.startswith("consistency"):
        # lumos: NaN for an input no other input shares its explanation with; Quantus: 0
        np.testing.assert_array_equal(theirs[np.isnan(ours)], 0.0)
        kept &= np.isfinite(ours)
        np.testing.assert_allclose(ours[kept], theirs[kept], rtol=1e-8, err_msg=name)  # Quantus adds 1e-9
        return
    tol = RRS_TOL if name.startswith("relative_representation") else TOL
    np.testing.assert_allclose(ours[kept], theirs[kept], rtol=tol, atol=1e-12, err_msg=name)
    if "nan=True" in name and not kept.all():
        # Quantus drops an input when any copy changes its class; lumos drops only those copies
        assert np.isfinite(ours[~kept]).all(), name


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_equal_to_frozen_quantus(lumos_values, name):
    _check(lumos_values[name], FROZEN[name], name)


def test_frozen_reference_exercises_prediction_changes():
    """The large-noise settings make Quantus NaN somewhere (so skip_changed is compared)
    and differ from the return_nan=False values there."""
    for kind in ("input", "output", "representation"):
        nan = FROZEN[f"relative_{kind}_stability/high=3.0/nan=True"]
        assert any(v is None for v in nan) and not all(v is None for v in nan)


def test_equal_to_live_quantus(lumos_values):
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():
        pytest.importorskip("quantus")
        quantus = ref.import_quantus()
    live = ref.quantus_values(quantus)
    assert set(live) == set(FROZEN)
    for name, values in live.items():
        _check(lumos_values[name], values, name)


# -- properties ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    torch.set_num_threads(1)
    model, x, y, a, mask, tiles = ref.setup()
    return model, x, y


def constant_explainer(inputs, target):
    return np.ones_like(np.asarray(inputs))


def test_constant_explainer_is_perfectly_stable(cnn):
    model, x, y = cnn
    for fn, kw in ((local_lipschitz_estimate, {"n_samples": 4}), (relative_input_stability, {"n_samples": 4}),
                   (relative_output_stability, {"n_samples": 4}),
                   (relative_representation_stability, {"n_samples": 4}), (continuity, {"n_steps": 6})):
        np.testing.assert_array_equal(fn(constant_explainer, model, x, y, **kw), 0.0, err_msg=fn.__name__)


def test_lipschitz_of_a_linear_explainer_is_its_norm():
    """Phi(x) = 3x (Gradient x Input of f = 1.5 x.x) has Lipschitz constant 3 everywhere."""
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    model = torch.nn.Linear(7, 2)
    out = local_lipschitz_estimate(lambda xi, t: 3.0 * np.asarray(xi, np.float64), model, x, 0, n_samples=8,
                                   normalise=False)
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)


def test_stability_metrics_do_not_depend_on_batch_size(cnn):
    model, x, y = cnn
    sal = Saliency(model)
    for fn in (local_lipschitz_estimate, relative_input_stability, relative_representation_stability):
        a = fn(sal, model, x, y, n_samples=5, batch_size=None, seed=3)
        b = fn(sal, model, x, y, n_samples=5, batch_size=12, seed=3)  # 2 inputs x 6 rows per chunk
        np.testing.assert_allclose(a, b, rtol=1e-4, err_msg=fn.__name__)  # float32 model rows in other batches
        assert not np.allclose(a, fn(sal, model, x, y, n_samples=5, seed=4)), fn.__name__


def test_skip_changed_leaves_out_only_the_copies_that_change_the_class():
    """A model whose class flips when the input's mean exceeds 1: noise pushing it over is
    left out (NaN only when every copy flips)."""
    class Threshold(torch.nn.Module):
        def forward(self, x):
            m = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([1 - m, m - 1], dim=1)

    model = Threshold()
    x = np.stack([np.full(4, 0.2), np.full(4, 0.95), np.full(4, 0.99)]).astype(np.float32)
    phi = lambda xi, t: np.asarray(xi, np.float64) ** 2  # noqa: E731
    kept = relative_input_stability(phi, model, x, 0, n_samples=30, low=0.0, high=0.1, seed=0)
    every = relative_input_stability(phi, model, x, 0, n_samples=30, low=0.0, high=0.1, seed=0, skip_changed=False)
    assert np.isfinite(kept[0]) and kept[0] == every[0]  # never flips
    assert np.isfinite(kept[1]) and kept[1] <= every[1]  # some copies flip
    out_all = relative_input_stability(phi, model, x, 0, n_samples=30, low=0.05, high=0.1, seed=0)
    assert np.isnan(out_all[2])  # every copy flips


def test_continuity_translations():
    from lumos.metrics.stability import translate

    x = np.arange(10, dtype=np.float32).reshape(2, 1, 5)
    np.testing.assert_array_equal(translate(x, 2, np.array([-1, -2]))[0, 0], [-1, -1, 0, 1, 2])
    np.testing.assert_array_equal(translate(x, -1, np.array([-1, -2]))[1, 0], [6, 7, 8, 9, -2])
    np.testing.assert_array_equal(translate(x, 9, np.array([0, 0])), 0)


STABILITY = (local_lipschitz_estimate, continuity, relative_input_stability, relative_output_stability,
             relative_representation_stability)


def test_precomputed_attributions_are_the_explained_ones(cnn):
    """``attributions=`` (Phi(x) computed beforehand, Quantus's a_batch): the same values as
    explaining x in the metric, also from an Explanation carrying its inputs and targets
    (to float32 rounding: x explained alone here, in one batch with its copies there)."""
    model, x, y = cnn
    sal = Saliency(model, absolute=False)
    exp = sal.explain(x, target=y)
    for fn in STABILITY:
        kw = {"n_steps": 6} if fn is continuity else {"n_samples": 4, "seed": 1}
        base = fn(sal, model, x, y, **kw)
        given = fn(sal, model, x, y, attributions=exp.values, **kw)
        np.testing.assert_allclose(given, base, rtol=1e-4, err_msg=fn.__name__)
        np.testing.assert_array_equal(fn(sal, model, None, None, attributions=exp, **kw), given, err_msg=fn.__name__)


def test_representations_from_the_explainers_forward_equal_a_separate_pass(cnn):
    """RRS reads the layer outputs from the single-pass explainer's own forward pass; an
    explainer that is not (a callable, IG) gets a separate hooked pass: the same values."""
    model, x, y = cnn
    sal = Saliency(model, absolute=False)
    kw = dict(n_samples=4, seed=2, high=0.5)
    fused = relative_representation_stability(sal, model, x, y, **kw)
    separate = relative_representation_stability(lambda xi, t: sal.explain(xi, target=t), model, x, y, **kw)
    np.testing.assert_allclose(fused, separate, rtol=1e-6)
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(len(o)))  # carried into lumos's views
    try:
        relative_representation_stability(sal, model, x, y, **kw)
        fused_rows = sum(seen)
        seen.clear()
        relative_representation_stability(sal, model, x, y, attributions=sal.explain(x, target=y), **kw)
        given_rows = sum(seen) - len(x)  # less the explanation of x made here
    finally:
        handle.remove()
    assert fused_rows == len(x) * 5  # x and its 4 copies explained, nothing else (the targets given)
    assert given_rows == len(x) * (1 + 4)  # the targets' pass over x (its representations), the copies explained
    seen.clear()
    handle = model.register_forward_hook(lambda m, i, o: seen.append(len(o)))
    try:
        local_lipschitz_estimate(sal, model, x, y, n_samples=4, attributions=sal.explain(x, target=y))
        assert sum(seen) - len(x) == len(x) * 4  # the copies alone: Phi(x) and the targets given
        seen.clear()
        local_lipschitz_estimate(sal, model, x, None, n_samples=4)
        assert sum(seen) == len(x) * (1 + 5)  # the predicted classes need the pass over x
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="out of range"):
        local_lipschitz_estimate(sal, model, x, 7, n_samples=2)  # the explainer checks the range
    layer = relative_representation_stability(sal, model, x, y, layers=["2"], **kw)
    assert not np.allclose(layer, fused)
    ig = IntegratedGradients(model, n_steps=4)
    np.testing.assert_allclose(relative_representation_stability(ig, model, x, y, **kw),
                               relative_representation_stability(lambda xi, t: ig.explain(xi, target=t), model, x, y,
                                                                 **kw), rtol=1e-6)


def test_effective_complexity_counts_features():
    a = np.zeros((3, 10))
    a[0, 4] = -2.0
    a[1] = 1.0
    a[2, :3] = [1.0, 1e-6, 0.5]
    np.testing.assert_array_equal(effective_complexity(a), [1, 10, 2])
    np.testing.assert_array_equal(effective_complexity(a, eps=0.6), [1, 10, 1])


def test_localisation_of_a_one_hot_mask_is_one():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 1, 6, 6))
    best = a.reshape(4, -1).argmax(1)
    mask = np.zeros((4, 36), dtype=bool)
    mask[np.arange(4), best] = True
    mask = mask.reshape(a.shape)
    np.testing.assert_array_equal(top_k_intersection(a, mask, k=1), 1.0)
    np.testing.assert_array_equal(attribution_localisation(np.where(mask, a, 0.0), mask), 1.0)
    np.testing.assert_allclose(top_k_intersection(a, np.ones_like(mask), k=5, concept_influence=True), 1.0)
    uniform = np.ones((2, 1, 4, 4))
    half = np.zeros((2, 1, 4, 4), dtype=bool)
    half[..., :2] = True
    np.testing.assert_allclose(attribution_localisation(uniform, half), 0.5)
    np.testing.assert_allclose(attribution_localisation(uniform, half, weighted=True), 1.0)


def test_top_k_ties_are_broken_by_position():
    a = np.array([[0.0, 1.0, 1.0, 1.0, 0.5]])
    m = np.array([[False, False, True, True, False]])
    np.testing.assert_allclose(top_k_intersection(a, m, k=2), 0.5)  # features 1 and 2


def test_focus_on_mosaics():
    rng = np.random.default_rng(0)
    images = rng.random((12, 1, 4, 4)).astype(np.float32)
    labels = np.arange(12) % 3
    mos, targets, tiles, sources = mosaics(images, labels, n_per_class=2, seed=1)
    assert mos.shape == (6, 1, 8, 8) and tiles.shape == (6, 2, 2) and (tiles.sum((1, 2)) == 2).all()
    for m, t, flags, src in zip(mos, targets, tiles, sources):
        np.testing.assert_array_equal(m[:, :4, 4:], images[src[1]])
        np.testing.assert_array_equal(flags.reshape(-1), labels[src] == t)
    perfect = np.repeat(np.repeat(tiles, 4, axis=1), 4, axis=2)[:, None].astype(float)
    np.testing.assert_array_equal(focus(perfect, tiles), 1.0)
    np.testing.assert_allclose(focus(np.ones_like(perfect), tiles), 0.5)
    np.testing.assert_array_equal(focus(-perfect, tiles), 0.0)  # no positive relevance
    np.testing.assert_allclose(focus(perfect, tiles.reshape(6, 4)), 1.0)  # Quantus's p-batch order


def test_consistency_when_explanations_determine_predictions():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    x = np.random.default_rng(0).standard_normal((30, 6)).astype(np.float32)
    pred = model(torch.as_tensor(x)).argmax(1).numpy()
    a = np.eye(6)[pred] * np.random.default_rng(1).uniform(0.5, 2, (30, 1))  # one-hot on the predicted class
    np.testing.assert_array_equal(consistency(model, x, a, discretise_by="top_n", n=1), 1.0)
    same = consistency(model, x, np.ones((30, 6)), discretise_by="sign")  # one explanation for all inputs
    counts = np.bincount(pred)
    np.testing.assert_allclose(same, (counts[pred] - 1) / 29)


def test_non_sensitivity_of_gradient_x_input_on_a_linear_model_is_zero():
    """f = w.x with w_j = 0 on some features: Gradient x Input is zero exactly where the
    model ignores the feature (w_j = 0 or x_j = the baseline 0)."""
    model = torch.nn.Linear(8, 2, bias=False)
    with torch.no_grad():
        model.weight[:, [1, 4, 5]] = 0.0
    x = np.random.default_rng(0).uniform(0.5, 1.5, (5, 8)).astype(np.float32)
    x[0, 2] = 0.0
    a = GradientXInput(model).explain(x, target=0).values
    np.testing.assert_array_equal(non_sensitivity(model, x, a, 0, output="raw", eps=1e-6), 0.0)
    shuffled = np.roll(a, 1, axis=1)
    assert (non_sensitivity(model, x, shuffled, 0, output="raw", eps=1e-6) > 0).all()


# -- completeness with absorbed relevance ----------------------------------------------------------
@pytest.fixture(scope="module")
def biased_cnn():
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 5 * 5, 16),
                          nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        for m in (model[0], model[4], model[6]):
            m.bias.add_(0.3)
    x = np.random.default_rng(1).random((6, 1, 12, 12)).astype(np.float32)
    return model, x


def test_lrp_gap_is_absorbed_relevance_not_error(biased_cnn):
    model, x = biased_cnn
    b = relevance_budget(LRP(model, "epsilon"), model, x, relative=False)
    np.testing.assert_allclose(b.total + b.absorbed + b.error, b.f_x - b.base, rtol=1e-6)
    gap = np.abs(b.f_x - b.total) / np.abs(b.f_x)
    assert (gap > 0.05).all()  # LRP-eps with biases keeps a visible share of f(x) ...
    assert (np.abs(b.error) / np.abs(b.f_x) < 1e-5).all()  # ... and none of it is error
    np.testing.assert_allclose(absorbed_relevance(LRP(model, "epsilon"), model, x), gap, rtol=1e-4)
    assert set(b.by_layer) >= {"0", "4", "6"}
    # Deep Taylor (z+, biases excluded) absorbs (almost) nothing
    d = relevance_budget(DeepTaylor(model, input_bounds=(0, 1)), model, x)
    assert (np.abs(d.absorbed) / np.abs(d.f_x) < 1e-3).all() and (d.scores < 1e-5).all()


def test_lrp_without_biases_and_epsilon_absorbs_nothing():
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False))
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    b = relevance_budget(LRP(model, "lrp0"), model, x)
    np.testing.assert_allclose(b.absorbed, 0.0, atol=1e-6)
    assert (b.scores < 1e-5).all()


def test_relevance_crossing_an_unruled_operation_is_error_not_absorption():
    """``self.lin(x) * 2`` in forward: the relevance crosses the product as a gradient (x2),
    which the budget reports as error, not as absorbed relevance."""
    class Doubled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 2, bias=False)

        def forward(self, x):
            return self.lin(x) * 2

    torch.manual_seed(0)
    model = Doubled()
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    b = relevance_budget(LRP(model, "lrp0"), model, x, relative=False)
    np.testing.assert_allclose(b.absorbed, 0.0, atol=1e-6)
    np.testing.assert_allclose(b.total, 2 * b.f_x, rtol=1e-5)
    np.testing.assert_allclose(b.error, -b.f_x, rtol=1e-5)


def test_completeness_of_methods_with_a_baseline(biased_cnn):
    model, x = biased_cnn
    ig = IntegratedGradients(model, n_steps=128)
    b = completeness_residual(ig, model, x, relative=False)
    exp = ig.explain(x)
    np.testing.assert_allclose(b.error, -exp.delta, rtol=1e-6)
    np.testing.assert_array_equal(b.absorbed, 0.0)
    assert np.isnan(completeness_residual(Saliency(model), model, x).scores).all()  # no completeness defined


def test_evaluate_table_explains_the_lrp_gap(biased_cnn):
    model, x = biased_cnn
    table = evaluate(model, x, None, {"lrp_eps": LRP(model, "epsilon"), "dtd": DeepTaylor(model, input_bounds=(0, 1))},
                     ["conservation_error", "absorbed_relevance", "completeness_residual"], progress=False)
    rows = {(r["method"], r["metric"]): r["mean"] for r in table}
    np.testing.assert_allclose(rows["lrp_eps", "absorbed_relevance"], rows["lrp_eps", "conservation_error"], rtol=1e-3)
    assert rows["lrp_eps", "completeness_residual"] < 1e-5 and rows["dtd", "completeness_residual"] < 1e-5
    assert rows["dtd", "absorbed_relevance"] < 1e-3


def test_registered_with_direction_and_needs():
    expected = {
        "effective_complexity": (False, "attributions_only"), "continuity": (False, "explainer"),
        "local_lipschitz_estimate": (False, "explainer"), "relative_input_stability": (False, "explainer"),
        "relative_output_stability": (False, "explainer"), "relative_representation_stability": (False, "explainer"),
        "consistency": (True, "attributions"), "non_sensitivity": (False, "attributions"),
        "completeness_residual": (False, "explainer"), "absorbed_relevance": (None, "explainer"),
        "focus": (True, "mask"), "top_k_intersection": (True, "mask"), "attribution_localisation": (True, "mask"),
    }
    for name, (direction, needs) in expected.items():
        info = METRICS[name].info
        assert (info.higher_is_better, info.needs) == (direction, needs), name
        assert " 20" in METRICS[name].__doc__, name  # the paper is cited
