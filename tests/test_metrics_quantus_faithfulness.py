"""Faithfulness metrics of the Quantus family: equal to Quantus 0.6.0 (frozen values in
tests/data/quantus_faithfulness.json from benchmarks/quantus_faithfulness_reference.py, and
live when Quantus is installed), exact values on linear models, batch-size independence."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.quantus_faithfulness_reference import case, inserting
from lumos.metrics import (METRICS, faithfulness_correlation, faithfulness_estimate, irof, monotonicity,
                           monotonicity_correlation, road, selectivity, sufficiency)
from lumos.metrics.faithfulness_quantus import linear_imputation

REFERENCE = Path(__file__).parent / "data" / "quantus_faithfulness.json"


def lumos_values(model, x, y, a, ref) -> dict:
    """lumos with the settings of benchmarks/quantus_faithfulness_reference.py."""
    subsets = np.asarray(ref["faithfulness_correlation_subsets"])
    return {
        "faithfulness_estimate": faithfulness_estimate(model, x, a, y, features_in_step=5, baseline="black"),
        "faithfulness_correlation": faithfulness_correlation(model, x, a, y, subsets=subsets, baseline="black"),
        "monotonicity_correlation": monotonicity_correlation(model, x, a, y, n_samples=3, features_in_step=4,
                                                             baseline="black", absolute=True),
        "monotonicity": monotonicity(model, x, a, y, features_in_step=25, baseline="black").scores,
        "selectivity": selectivity(model, x, a, y, patch_size=3, baseline="black").curve[:, 1:],
        "road": road(model, x, a, y, noise=0.0, percentages=range(5, 100, 10)).mean_curve,
        "irof": irof(model, x, a, y, segments=np.asarray(ref["irof_segments"]), baseline=0.0).scores,
        "sufficiency": sufficiency(model, x, a, y, threshold=0.85),
    }


NAMES = ("faithfulness_estimate", "faithfulness_correlation", "monotonicity_correlation", "monotonicity",
         "selectivity", "road", "irof", "sufficiency")


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())["values"]


@pytest.fixture(scope="module")
def ours(reference):
    return lumos_values(*case(), reference)


@pytest.mark.parametrize("name", NAMES)
def test_equal_to_frozen_quantus(name, ours, reference):
    np.testing.assert_allclose(np.asarray(ours[name], dtype=np.float64),
                               np.asarray(reference[name], dtype=np.float64), rtol=1e-5, atol=1e-5)


def _quantus():
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():  # Quantus imports torchvision, which lumos does not need
        pytest.importorskip("quantus")
        from benchmarks.quantus_faithfulness_reference import import_quantus

        return import_quantus()


def test_equal_to_quantus_live(ours):
    quantus = _quantus()
    from benchmarks.quantus_faithfulness_reference import quantus_values

    torch.set_num_threads(1)
    theirs = quantus_values(quantus, *case())
    live = lumos_values(*case(), theirs)
    live["irof_slic"] = irof(*case()[0:2], case()[3], case()[2], baseline=0.0).scores  # lumos's own SLIC
    theirs["irof_slic"] = theirs["irof"]
    for name in NAMES + ("irof_slic",):
        np.testing.assert_allclose(np.asarray(live[name], dtype=np.float64), np.asarray(theirs[name], dtype=np.float64),
                                   rtol=1e-5, atol=1e-5, err_msg=name)


def test_quantus_monotonicity_default_scores_every_input_true():
    """Why the comparison passes an inserting perturb_func: Quantus 0.6.0's default puts the
    baseline into the baseline, so every step scores one image and every input is True."""
    quantus = _quantus()
    model, x, y, a = case()
    default = quantus.Monotonicity(features_in_step=25, normalise=False, disable_warnings=True)
    assert all(default(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu"))
    assert not monotonicity(model, x, a, y, features_in_step=25).scores.all()
    assert callable(inserting(x))


# -- exact values on linear models ------------------------------------------------------------
@pytest.fixture
def linear():
    lin = torch.nn.Linear(12, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.random.default_rng(0).uniform(0.2, 1.0, (2, 12))))
        lin.bias.fill_(0.1)
    x = np.random.default_rng(1).uniform(0.1, 1.0, (6, 12))
    contrib = lin.weight.detach().numpy()[0] * x  # Gradient x Input for class 0
    return lin, x, contrib


def test_correlations_are_one_for_exact_attributions(linear):
    lin, x, contrib = linear
    opts = dict(baseline=0.0, output="raw")
    np.testing.assert_allclose(faithfulness_estimate(lin, x, contrib, 0, **opts), 1.0, atol=1e-12)
    np.testing.assert_allclose(faithfulness_estimate(lin, x, contrib, 0, features_in_step=5, **opts), 1.0,
                               atol=1e-12)
    np.testing.assert_allclose(faithfulness_correlation(lin, x, contrib, 0, n_runs=15, subset_size=4, **opts), 1.0,
                               atol=1e-12)
    # the variance term is (sum of the group's contributions)^2 / f^2: rank-equal to |Phi| sums
    np.testing.assert_allclose(monotonicity_correlation(lin, x, contrib, 0, **opts), 1.0, atol=1e-12)
    noisy = contrib + np.random.default_rng(2).normal(size=contrib.shape)
    assert faithfulness_estimate(lin, x, noisy, 0, **opts).max() < 0.999


def test_monotonicity_is_the_sign_of_the_added_contributions():
    lin = torch.nn.Linear(12, 1).double()
    w = np.random.default_rng(3).uniform(0.2, 1.0, 12) * np.where(np.arange(12) % 4 == 0, -1, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w[None]))
        lin.bias.zero_()
    x = np.random.default_rng(4).uniform(0.1, 1.0, (3, 12))
    for a in (w * x, np.abs(w * x)):  # exact contributions, then their sizes (wrong signs)
        res = monotonicity(lin, x, a, 0, baseline=0.0, output="raw", absolute=False)
        added = np.take_along_axis(w * x, np.argsort(a, axis=1), axis=1)  # insertion order: increasing attribution
        np.testing.assert_allclose(res.curve, np.concatenate([np.zeros((3, 1)), np.cumsum(added, 1)], 1), atol=1e-12)
        np.testing.assert_array_equal(res.scores, (added[:, 1:] >= 0).all(1))
    positive = monotonicity(lin, x, np.abs(w * x), 0, baseline=0.0, output="raw", absolute=False)
    assert not positive.scores.any()  # the negative features enter among the positive ones


def test_selectivity_and_irof_curves_exact(linear):
    lin, x, contrib = linear
    f0 = contrib.sum(1) + 0.1
    removed = np.cumsum(-np.sort(-contrib, axis=1), axis=1)
    sel = selectivity(lin, x, contrib, 0, patch_size=1, baseline=0.0, output="raw")
    curve = f0[:, None] - removed
    np.testing.assert_allclose(sel.curve[:, 1:], curve, atol=1e-12)
    np.testing.assert_allclose(sel.scores, np.trapezoid(curve, axis=1), atol=1e-12)
    # irof on 1 x 3 x 4 images, each pixel a segment: p_k = f(x^k) / f(x), AOC = S - trapz
    img = x.reshape(6, 1, 3, 4)
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    seg = np.broadcast_to(np.arange(12).reshape(3, 4), (6, 3, 4))
    res = irof(model, img, contrib.reshape(img.shape), 0, segments=seg, baseline=0.0, output="raw")
    p = curve / f0[:, None]
    np.testing.assert_allclose(res.scores, 12 - np.trapezoid(p, axis=1), atol=1e-12)


def test_linear_imputation_recovers_a_plane_and_road_keeps_constant_images():
    h, w = 7, 9
    yy, xx = np.mgrid[0:h, 0:w]
    plane = (0.5 + 0.3 * yy - 0.2 * xx)[None, None].astype(np.float64)
    removed = np.zeros((1, h * w), dtype=bool)
    inner = np.zeros((h, w), dtype=bool)
    inner[2:5, 3:7] = True  # interior pixels: their neighbours' weights are symmetric
    removed[0] = inner.ravel()
    values = linear_imputation(plane, removed)
    np.testing.assert_allclose(values[:, 0], plane[0, 0][inner], atol=1e-12)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(h * w, 3))
    x = np.full((2, 1, h, w), 0.4, dtype=np.float32)
    a = np.random.default_rng(0).normal(size=x.shape)
    res = road(model, x, a, noise=0.0)
    np.testing.assert_array_equal(res.curve, 1.0)  # imputing a constant image returns it
    assert res.curve.shape == (2, 50) and res.fractions[0] == 0.01


def test_sufficiency_on_planted_clusters():
    model = lambda v: np.stack([v[:, 0], -v[:, 0]], axis=1)  # noqa: E731  class 0 iff feature 0 > 0
    x = np.concatenate([np.full((4, 3), 1.0), np.full((4, 3), -1.0)])
    a = np.concatenate([np.tile([1.0, 0.0, 0.0], (4, 1)), np.tile([0.0, 0.0, 1.0], (4, 1))])
    a = a + np.random.default_rng(0).normal(scale=0.01, size=a.shape)
    np.testing.assert_allclose(sufficiency(model, x, a, threshold=0.2, distance="euclidean"), 1.0)
    mixed = np.roll(a, 2, axis=0)  # clusters of explanations now straddle the classes
    # each explanation cluster now holds 2 inputs of each class: 1 of the 3 neighbours agrees
    np.testing.assert_allclose(sufficiency(model, x, mixed, threshold=0.2, distance="euclidean"), 1 / 3)


@pytest.mark.parametrize("distance", ["seuclidean", "euclidean", "cityblock"])
def test_sufficiency_neighbours_are_cdists(distance):
    """The neighbours from the Gram matrix are cdist's, also for distances exactly at the
    threshold (one-hot rows: every distance is sqrt(2), the maximum)."""
    from scipy.spatial.distance import cdist

    from lumos.metrics.faithfulness_quantus import _close_pairs

    rng = np.random.default_rng(0)
    for a, threshold in ((rng.random((40, 30)) ** 3, 0.6), (np.eye(6), 1.0), (np.eye(6), 0.999999)):
        d = cdist(a, a, distance)
        np.testing.assert_array_equal(_close_pairs(a, distance, threshold), d / d.max() <= threshold)


def test_results_do_not_depend_on_batch_size():
    model, x, y, a = case()
    runs = {
        "faithfulness_correlation": lambda bs: faithfulness_correlation(model, x, a, n_runs=7, seed=1, batch_size=bs),
        "faithfulness_estimate": lambda bs: faithfulness_estimate(model, x, a, features_in_step=7, batch_size=bs),
        "monotonicity_correlation": lambda bs: monotonicity_correlation(model, x, a, n_samples=2, features_in_step=9,
                                                                        seed=2, batch_size=bs),
        "monotonicity": lambda bs: monotonicity(model, x, a, features_in_step=10, batch_size=bs).curve,
        "selectivity": lambda bs: selectivity(model, x, a, patch_size=4, batch_size=bs).curve,
        "road": lambda bs: road(model, x, a, percentages=(10, 50, 90), seed=4, batch_size=bs).curve,
        "irof": lambda bs: irof(model, x, a, segments=np.arange(100).reshape(1, 10, 10).repeat(8, 0) // 10,
                                batch_size=bs).curve,
    }
    for name, fn in runs.items():
        np.testing.assert_allclose(fn(3), fn(None), rtol=1e-5, atol=1e-6, err_msg=name)  # float32 model


def test_registered_with_direction_and_needs():
    for name, better in [("road", False), ("irof", True), ("monotonicity", True), ("monotonicity_correlation", True),
                         ("faithfulness_correlation", True), ("faithfulness_estimate", True), ("selectivity", False),
                         ("sufficiency", True)]:
        info = METRICS[name].info
        assert info.higher_is_better is better and info.needs == "attributions" and info.category == "faithfulness"
        assert METRICS[name].__doc__ and "20" in METRICS[name].__doc__  # definition with the paper's year
    assert METRICS["road"].info.data == ("image",)


def test_bad_inputs():
    model, x, y, a = case()
    with pytest.raises(ValueError, match="images"):
        road(torch.nn.Linear(5, 2), np.zeros((3, 5), dtype=np.float32), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="subset_size"):
        faithfulness_correlation(model, x, a, subset_size=101)
    with pytest.raises(ValueError, match="subsets"):
        faithfulness_correlation(model, x, a, subsets=np.zeros((2, 3, 4), dtype=int))
    with pytest.raises(ValueError, match="baseline"):
        faithfulness_estimate(model, x, a, baseline="purple")
    with pytest.raises(ValueError, match="segments"):
        irof(model, x, a, segments=np.zeros((8, 5, 5), dtype=int))
