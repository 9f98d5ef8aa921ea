"""Axioms, robustness, complexity, localisation, EPC and evaluate: exact values on linear
models and planted masks; metrics leave the model and the explanation untouched."""
import numpy as np
import pytest
import torch

from conftest import assert_same_state, model_state
from lumos import GradientXInput, IntegratedGradients, Saliency
from lumos.core import registry
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
        if "tabular" not in fn.info.data:
            continue  # image-only metrics (road, irof) are checked in their own tests
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
    table = table.to_pandas()
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
    with pytest.raises(ValueError, match="unknown metric 'aopcc'; did you mean 'aopc'"):
        evaluate(lin, x, 0, [Saliency(lin)], ["aopcc"], progress=False)


def test_evaluate_without_pandas_gives_records(linear, monkeypatch):
    import sys

    lin, x = linear
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    table = evaluate(lin, x, 0, [Saliency(lin)], ["entropy", ("region_perturbation", {"n_steps": 4})],
                     progress=False)
    from lumos.metrics.evaluate import EvaluationTable

    assert isinstance(table, EvaluationTable) and [r["metric"] for r in table] == ["entropy", "region_perturbation"]
    assert table[0]["method"] == "saliency" and table[0]["higher_is_better"] is False
    assert table.attrs["curves"]["region_perturbation"]["saliency"][1].shape == (5,)


def test_conservation_error_exact_without_bias():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 2, bias=False).double()
    x = np.random.default_rng(3).normal(size=(5, 6))
    gxi = GradientXInput(lin).explain(x, target=1)  # = LRP-0 on a bias-free linear layer
    assert conservation_error(lin, x, gxi, 1).max() < 1e-12
    assert conservation_error(lin, x, 2 * gxi.values, 1, relative=True).min() > 0.99 - 1e-9


def _series_case():
    from lumos.models import CNN1d

    torch.manual_seed(0)
    model = CNN1d(2, 3, channels=(4, 6), kernel_size=3).double()
    x = np.random.default_rng(4).normal(size=(7, 2, 12))
    a = np.random.default_rng(5).normal(size=x.shape)
    return model, x, a


def test_results_do_not_depend_on_batch_size():
    """batch_size (rows per model call) is the one memory knob: one row per call and
    everything in one call give the same values, also for random perturbations and for a
    stochastic explainer run by max_sensitivity (rows keep their seeds)."""
    from lumos import SmoothGrad
    from lumos.metrics import abpc, deletion, insertion, region_perturbation
    from lumos.metrics.faithfulness import perturbation_scores

    model, x, a = _series_case()
    labels = np.argmax(model(torch.from_numpy(x)).detach().numpy(), 1)
    runs = {
        "region_perturbation": lambda bs: region_perturbation(model, x, a, region=2, seed=3, batch_size=bs).curve,
        "deletion": lambda bs: deletion(model, x, a, n_steps=8, batch_size=bs).curve,
        "insertion": lambda bs: insertion(model, x, a, n_steps=8, batch_size=bs).curve,
        "abpc": lambda bs: abpc(model, x, a, n_steps=6, replacement="constant", batch_size=bs),
        "completeness": lambda bs: completeness_error(model, x, a, batch_size=bs),
        "conservation": lambda bs: conservation_error(model, x, a, batch_size=bs),
        "sensitivity_n": lambda bs: sensitivity_n(model, x, a, n=4, n_subsets=9, region=2, batch_size=bs),
        "infidelity": lambda bs: infidelity(model, x, a, n_samples=11, batch_size=bs),
        "infidelity_gaussian": lambda bs: infidelity(model, x, a, perturbation="gaussian", n_samples=5,
                                                     normalise=True, batch_size=bs),
        "max_sensitivity": lambda bs: max_sensitivity(Saliency(model), model, x, n_samples=4, batch_size=bs),
        "max_sensitivity_smoothgrad": lambda bs: max_sensitivity(SmoothGrad(model, n_samples=3, seed=1), model, x,
                                                                 n_samples=4, batch_size=bs),
        "epc": lambda bs: explainability_performance(model, x, a, labels, batch_size=bs).performance,
        "perturbation_scores": lambda bs: perturbation_scores(
            model, x, np.zeros_like(x), np.argsort(a.reshape(len(x), -1), axis=1), np.arange(0, 25, 4),
            labels, batch_size=bs),
    }
    for name, run in runs.items():
        one, all_ = run(1), run(100_000)
        assert np.isfinite(one).all(), name
        np.testing.assert_allclose(one, all_, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(run(None), all_, rtol=1e-10, atol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="batch_size"):
        infidelity(model, x, a, batch_size=0)


def test_metrics_never_change_the_models_mode_while_they_run(linear):
    """Metrics evaluate a private view: the user's model stays in training mode with its
    requires_grad flags while they run (a training loop in another thread is not affected)."""
    lin, x = linear
    lin.train()
    seen = []

    def hook(module, inputs, output):  # also called on the view: it reads the user's module
        seen.append((lin.training, lin.weight.requires_grad, lin.bias.requires_grad))

    handle = lin.register_forward_hook(hook)
    exp = GradientXInput(lin).explain(x, target=0)
    labels = np.argmax(lin(torch.from_numpy(x)).detach().numpy(), 1)
    seen.clear()
    try:
        for name, fn in METRICS.items():
            needs = fn.info.needs
            if "tabular" not in fn.info.data:  # image-only metrics (ROAD, IROF, focus) take no table
                continue
            if needs == "attributions":
                fn(lin, x, exp, 0) if name != "sensitivity_n" else fn(lin, x, exp, 0, n=2, n_subsets=5)
            elif needs == "explainer":
                fn(GradientXInput(lin), lin, x, 0)
            elif needs == "labels":
                fn(lin, x, exp, labels)
    finally:
        handle.remove()
    assert seen and set(seen) == {(True, True, True)}


EXPLAINING_METHODS = sorted(n for n, c in registry.available().items() if c.scope == "local")


@pytest.mark.parametrize("name", EXPLAINING_METHODS)
def test_metrics_that_explain_work_with_every_method(name, mlp, X):
    """Randomisation and max-sensitivity explain inputs themselves: they work with every
    family (gradient, relevance, CAM, attention, model-agnostic), as explainer objects or,
    for methods that need call options (a background), as callables taking the model."""
    from conftest import setup_for_method
    from lumos.metrics import model_randomisation

    model, x, options = setup_for_method(name, mlp, X)
    x = x[:4]
    cls = registry.get(name)
    config, call = registry.split_options(cls, options)
    try:
        cls(model, **config).explain(x, **call)
    except (NotImplementedError, TypeError) as err:  # a method being ported: its own tests say so
        pytest.skip(f"{name} does not explain this setup by itself ({err})")
    if call:
        def explainer(inputs, target, model):
            return cls(model, **config).explain(inputs, target=target, **call)
    else:
        explainer = cls(model, **config)
    before = model_state(model)
    res = model_randomisation(explainer, model, x, similarities=("spearman",))
    rho = res.scores["spearman"]
    assert rho.shape == (len(res.stages), len(x)) and np.isfinite(rho).all()
    assert rho.mean(axis=1).min() < 0.99, f"{name}: no randomised copy changed the explanation"
    sens = max_sensitivity(explainer, model, x, n_samples=2)
    assert sens.shape == (len(x),) and np.isfinite(sens).all() and (sens >= 0).all()
    assert_same_state(before, model_state(model))
