"""Axioms, robustness, complexity, localisation, EPC and evaluate: exact values on linear
models and planted masks; metrics leave the model and the explanation untouched."""
import numpy as np
import pytest
import torch

from conftest import assert_same_state, model_state
from lumos import GradientXInput, IntegratedGradients, Saliency
from lumos.metrics import (METRICS, completeness_error, conservation_error, entropy, evaluate, explainability_performance, infidelity,
                           max_sensitivity, plot_curves, pointing_game, relevance_mass_accuracy,
                           relevance_rank_accuracy, sensitivity_n, sparseness)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    lin = torch.nn.Linear(12, 3).double()
    x = np.random.default_rng(0).normal(size=(10, 12))
    return lin, x


def test_infidelity_zero_for_matching_perturbations(linear):
    lin, x = linear
    gxi = GradientXInput(lin).explain(x, target=1)
    assert np.abs(infidelity(lin, x, gxi, 1, perturbation="removal")).max() < 1e-20
    sal = Saliency(lin, absolute=False).explain(x, target=1)
    assert np.abs(infidelity(lin, x, sal, 1, perturbation="gaussian")).max() < 1e-20
    assert infidelity(lin, x, sal, 1, perturbation="removal").mean() > 1e-3  # mismatched pair is not 0
    noisy = gxi.values + np.random.default_rng(1).normal(size=x.shape)
    assert infidelity(lin, x, noisy, 1).min() > 1e-3


def test_completeness_and_sensitivity_n(linear):
    lin, x = linear
    gxi = GradientXInput(lin).explain(x, target=2)
    assert completeness_error(lin, x, gxi, 2).max() < 1e-12
    ig = IntegratedGradients(lin, n_steps=8).explain(x, target=2)
    assert completeness_error(lin, x, ig, 2).max() < 1e-10
    np.testing.assert_allclose(sensitivity_n(lin, x, gxi, 2, n=3, n_subsets=20), 1.0, atol=1e-10)
    sal = Saliency(lin, absolute=False).explain(x, target=2)
    assert sensitivity_n(lin, x, sal, 2, n=3, n_subsets=20).mean() < 0.99


def test_max_sensitivity(linear):
    lin, x = linear
    assert max_sensitivity(Saliency(lin), lin, x, 0).max() < 1e-12  # constant gradient
    r = 0.05
    s = max_sensitivity(GradientXInput(lin), lin, x, 0, radius=r, n_samples=5)
    w = lin.weight.detach().numpy()[0]
    assert (s > 0).all() and (s <= r * np.linalg.norm(w) + 1e-12).all()


def test_sparseness_and_entropy_exact():
    one = np.zeros((1, 10))
    one[0, 3] = -2.0
    flat = np.ones((1, 10))
    np.testing.assert_allclose(sparseness(one), 0.9)
    np.testing.assert_allclose(sparseness(flat), 0.0, atol=1e-15)
    np.testing.assert_allclose(entropy(one), 0.0)
    np.testing.assert_allclose(entropy(flat), np.log(10))
    np.testing.assert_allclose(entropy(np.zeros((1, 10))), np.log(10))


def test_localisation_on_planted_masks():
    mask = np.zeros((2, 6, 6), dtype=bool)
    mask[:, 1:3, 1:4] = True
    inside = np.where(mask, np.random.default_rng(0).random(mask.shape), 0.0)[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(relevance_mass_accuracy(inside, mask), 1.0)
    np.testing.assert_allclose(relevance_rank_accuracy(inside, mask), 1.0)
    np.testing.assert_allclose(pointing_game(inside, mask), 1.0)
    half = np.zeros((2, 6, 6))
    half[:, 1, 1] = 1.0
    half[:, 5, 5] = 1.0
    np.testing.assert_allclose(relevance_mass_accuracy(half, mask), 0.5)
    outside = np.zeros((2, 6, 6))
    outside[:, 4, 4] = 1.0
    np.testing.assert_allclose(pointing_game(outside, mask), 0.0)
    np.testing.assert_allclose(pointing_game(outside, mask, tolerance=1), 0.0)
    np.testing.assert_allclose(pointing_game(outside, mask, tolerance=2), 1.0)  # (2, 3) -> (3, 4) -> (4, 4)
    with pytest.raises(ValueError, match="mask"):
        relevance_mass_accuracy(inside, mask[:, :3])


def test_epc_definition():
    model = lambda x: np.stack([x[:, 0], -x[:, 0]], axis=1)  # noqa: E731  reads feature 0 only
    x = np.random.default_rng(0).normal(size=(200, 8))
    labels = (x[:, 0] < 0).astype(int)
    good = np.zeros_like(x)
    good[:, 0] = 1.0
    res = explainability_performance(model, x, good, labels)
    assert res.full == 1.0 and res.k95 == 0.05
    np.testing.assert_allclose(res.epc, np.mean(1 - np.arange(1, 21) / 20))
    bad = explainability_performance(model, x, 1.0 - good, labels)
    assert bad.k95 == 0.9 and bad.epc < res.epc  # ceil(0.9 * 8) = 8: the first k keeping feature 0


def test_metrics_leave_model_and_explanation_untouched(linear):
    lin, x = linear
    lin.train()
    lin.weight.requires_grad_(True)
    before = model_state(lin)
    exp = GradientXInput(lin).explain(x, target=0)
    exp.values.flags.writeable = False  # any in-place write raises
    saved = exp.values.copy()
    for name, fn in METRICS.items():
        needs = fn.info.needs
        if needs == "attributions":
            fn(lin, x, exp, 0) if name != "sensitivity_n" else fn(lin, x, exp, 0, n=2, n_subsets=5)
        elif needs == "attributions_only":
            fn(exp)
        elif needs == "explainer":
            fn(GradientXInput(lin), lin, x, 0)
        elif needs == "labels":
            fn(lin, x, exp, np.zeros(len(x), dtype=int) + np.argmax(lin(torch.from_numpy(x)).detach().numpy(), 1))
        elif needs == "mask":
            fn(exp, np.abs(x) > 0.5)
    np.testing.assert_array_equal(exp.values, saved)
    assert_same_state(before, model_state(lin))


def test_evaluate_table_and_curves(linear, tmp_path):
    pd = pytest.importorskip("pandas")
    lin, x = linear
    table = evaluate(lin, x, 0, {"saliency": Saliency(lin), "gxi": GradientXInput, "ig": "integrated_gradients"},
                     ["region_perturbation", ("deletion", {"n_steps": 6}), "sparseness"], progress=False)
    assert isinstance(table, pd.DataFrame) and len(table) == 9
    assert set(table.columns) >= {"method", "metric", "mean", "sem", "n", "higher_is_better"}
    row = table[(table.method == "gxi") & (table.metric == "sparseness")].iloc[0]
    s = sparseness(GradientXInput(lin).explain(x, target=0))
    np.testing.assert_allclose([row["mean"], row["sem"]], [s.mean(), s.std(ddof=1) / np.sqrt(len(s))])
    assert set(table.attrs["curves"]["region_perturbation"]) == {"saliency", "gxi", "ig"}
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_curves(table)
    assert len(ax.lines) == 3
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(lin, x, 0, [Saliency(lin)], ["aopc"], progress=False)


def test_evaluate_without_pandas_gives_records(linear, monkeypatch):
    import sys

    lin, x = linear
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    table = evaluate(lin, x, 0, [Saliency(lin)], ["entropy", ("region_perturbation", {"n_steps": 4})],
                     progress=False)
    assert isinstance(table, list) and [r["metric"] for r in table] == ["entropy", "region_perturbation"]
    assert table[0]["method"] == "saliency" and table[0]["higher_is_better"] is False
    assert table.attrs["curves"]["region_perturbation"]["saliency"][1].shape == (5,)


def test_conservation_error_exact_without_bias():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 2, bias=False).double()
    x = np.random.default_rng(3).normal(size=(5, 6))
    gxi = GradientXInput(lin).explain(x, target=1)  # = LRP-0 on a bias-free linear layer
    assert conservation_error(lin, x, gxi, 1).max() < 1e-12
    assert conservation_error(lin, x, 2 * gxi.values, 1, relative=True).min() > 0.99 - 1e-9
