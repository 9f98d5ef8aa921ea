"""Shapley values: definition, axioms, KernelSHAP convergence, reproducibility, errors."""
import numpy as np
import pytest
import torch

import lumos
from lumos.methods.agnostic import ExactShapley, KernelShap, SamplingShapley, kmeans_background
from lumos.models.reference import MLP
from tests.conftest import assert_same_state, model_state

D = 7


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, 3))

    def f(x):  # nonlinear, deterministic per row, ignores feature 6
        return np.tanh(x[:, :6] @ w[:6]) + x[:, [0]] * x[:, [1]]

    return f, rng.normal(size=(4, D)), rng.normal(size=(15, D))


def test_exact_linear_equals_w_times_centred_input():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    x, bg = rng.normal(size=(3, 5)), rng.normal(size=(9, 5))
    bw = rng.random(9)
    exp = ExactShapley(lambda z: z @ w + b).explain(x, target=1, background=bg, background_weights=bw)
    mean = (bw / bw.sum()) @ bg
    np.testing.assert_allclose(exp.values, w[:, 1] * (x - mean), atol=1e-12)
    np.testing.assert_allclose(exp.base_value, mean @ w[:, 1] + b[1], atol=1e-12)


@pytest.mark.parametrize("cls,opts", [(ExactShapley, {}), (KernelShap, {"n_samples": 40}),
                                      (SamplingShapley, {"n_permutations": 6})])
def test_efficiency_every_row(problem, cls, opts):
    f, x, bg = problem
    exp = cls(f, **opts).explain(x, target=[0, 1, 2, 0], background=bg)
    np.testing.assert_allclose(exp.values.sum(1) + exp.base_value, exp.target_score(), atol=1e-10)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-10)
    assert exp.values.shape == x.shape


@pytest.mark.parametrize("cls", [ExactShapley, SamplingShapley])
def test_ignored_feature_gets_exactly_zero(problem, cls):
    f, x, bg = problem
    exp = cls(f).explain(x, background=bg)
    assert np.all(exp.values[:, 6] == 0.0)


def test_kernel_full_budget_equals_exact(problem):
    f, x, bg = problem
    exact = ExactShapley(f).explain(x, background=bg)
    kernel = KernelShap(f, n_samples=2 ** D - 2).explain(x, background=bg)
    assert int(kernel.extras["n_coalitions"]) == 2 ** D - 2
    np.testing.assert_allclose(kernel.values, exact.values, atol=1e-10)


def test_kernel_error_shrinks_with_budget():
    rng = np.random.default_rng(2)
    d = 10
    w = rng.normal(size=(d, 1))
    f = lambda z: np.sin(z @ w) + z[:, [0]] * z[:, [3]] * z[:, [5]]  # noqa: E731
    x, bg = rng.normal(size=(3, d)), rng.normal(size=(8, d))
    exact = ExactShapley(f).explain(x, background=bg).values
    errors = []
    for budget in (24, 120, 600):
        err = [np.sqrt(np.mean((KernelShap(f, n_samples=budget, seed=s).explain(x, background=bg).values - exact) ** 2))
               for s in range(4)]
        errors.append(np.mean(err))
    assert errors[0] > errors[1] > errors[2], errors


def test_symmetry_and_dummy():
    f = lambda z: (z[:, [0]] * z[:, [1]]) + 0 * z[:, [2]]  # noqa: E731  players 0 and 1 symmetric
    x, bg = np.array([[2.0, 2.0, 5.0]]), np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    exp = ExactShapley(f).explain(x, background=bg)
    assert exp.values[0, 0] == pytest.approx(exp.values[0, 1])
    assert exp.values[0, 2] == 0.0


def test_sampling_converges_to_exact(problem):
    f, x, bg = problem
    exact = ExactShapley(f).explain(x, background=bg).values
    approx = SamplingShapley(f, n_permutations=400).explain(x, background=bg)
    assert np.abs(approx.values - exact).max() < 0.05
    assert approx.extras["std_error"].shape == x.shape


@pytest.mark.parametrize("cls", [KernelShap, SamplingShapley])
def test_seeds_reproducible(problem, cls):
    f, x, bg = problem
    opts = {"n_samples": 30} if cls is KernelShap else {"n_permutations": 4}
    a = cls(f, seed=3, **opts).explain(x, background=bg).values
    b = cls(f, seed=3, **opts).explain(x, background=bg).values
    c = cls(f, seed=4, **opts).explain(x, background=bg).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_groups_time_series_torch_model_left_as_found():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 12, 3)).train()
    before = model_state(model)
    rng = np.random.default_rng(0)
    x, bg = rng.normal(size=(2, 2, 12)).astype(np.float32), rng.normal(size=(5, 2, 12)).astype(np.float32)
    groups = np.repeat(np.arange(4), 3)[None].repeat(2, 0) + np.array([[0], [4]])  # 8 windows
    exp = ExactShapley(model, batch_size=64).explain(x, background=bg, groups=groups)
    assert_same_state(before, model_state(model))
    assert exp.extras["group_values"].shape == (2, 8)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-5)
    # a linear model's group value is the sum of w_i (x_i - E x_i) over the group
    w = model[1].weight.detach().numpy()[exp.target].reshape(2, 2, 12)
    contrib = (w * (x - bg.mean(0))).reshape(2, 8, 3).sum(-1)
    np.testing.assert_allclose(exp.extras["group_values"], contrib, atol=1e-5)


def test_kmeans_background_and_registry(problem):
    f, x, bg = problem
    centres, weights = kmeans_background(bg, 4, seed=0)
    assert centres.shape == (4, D) and weights.sum() == pytest.approx(1.0)
    assert all(np.isin(centres[:, j], bg[:, j]).all() for j in range(D))  # rounded to data values
    exp = lumos.explain(f, x, method="kernel_shap", background=bg, n_background=4, n_samples=50)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-10)


def test_errors(problem):
    f, x, bg = problem
    with pytest.raises(ValueError, match="max_features"):
        ExactShapley(f, max_features=5).explain(x, background=bg)
    with pytest.raises(ValueError, match="background is required"):
        KernelShap(f).explain(x)
    with pytest.raises(ValueError, match="shape"):
        KernelShap(f).explain(x, background=bg[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        ExactShapley(lambda z: np.full((len(z), 1), np.nan)).explain(x, background=bg)
    with pytest.raises(ValueError, match="scores of shape"):
        ExactShapley(lambda z: np.ones((len(z) + 1, 2))).explain(x, background=bg)
    with pytest.raises(ValueError, match="background_weights"):
        ExactShapley(f).explain(x, background=bg, background_weights=np.ones(3))


def test_torch_mlp_efficiency():
    torch.manual_seed(0)
    model = MLP(6, 2, hidden=(16,))
    rng = np.random.default_rng(0)
    x, bg = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(10, 6)).astype(np.float32)
    exp = KernelShap(model, n_samples=62).explain(x, background=bg)
    ex = ExactShapley(model).explain(x, background=bg)
    np.testing.assert_allclose(exp.values, ex.values, atol=1e-5)
    np.testing.assert_allclose(ex.delta, 0, atol=1e-5)


def test_kernel_blocks_equal_one_block_and_keep_efficiency():
    """A budget generated, evaluated and reduced in many blocks (forced small) gives the
    one-block result: the same coalitions drawn in the same order, the normal equations
    summed over the blocks (duplicates across blocks count twice with their weight each,
    as when merged). Efficiency holds exactly however the design is blocked."""
    rng = np.random.default_rng(3)
    d = 12
    w = rng.normal(size=(d, 2))
    f = lambda z: np.tanh(z @ w) + z[:, [0]] * z[:, [5]]  # noqa: E731
    x, bg = rng.normal(size=(5, d)), rng.normal(size=(4, d))
    one = KernelShap(f, n_samples=1500, seed=2).explain(x, background=bg)
    blocked = KernelShap(f, n_samples=1500, seed=2)
    blocked.design_elements = 40 * d  # blocks of 40 coalitions: enumerated sizes split too
    many = blocked.explain(x, background=bg)
    # duplicates are merged within a block only: as many coalitions or more in 38 blocks
    assert int(one.extras["n_coalitions"]) <= int(many.extras["n_coalitions"]) <= 1500
    np.testing.assert_allclose(many.values, one.values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(many.delta, 0, atol=1e-12)
    np.testing.assert_allclose(many.values.sum(1) + many.base_value, many.target_score(), rtol=0, atol=1e-12)


def test_sampling_shapley_blocks_equal_one_block():
    rng = np.random.default_rng(4)
    d = 6
    w = rng.normal(size=(d, 2))
    f = lambda z: np.tanh(z @ w) * z[:, [1]]  # noqa: E731
    x, bg = rng.normal(size=(3, d)), rng.normal(size=(5, d))
    one = SamplingShapley(f, n_permutations=10, seed=1).explain(x, background=bg)
    blocked = SamplingShapley(f, n_permutations=10, seed=1)
    blocked.design_elements = 1  # one antithetic pair per block
    many = blocked.explain(x, background=bg)
    np.testing.assert_allclose(many.values, one.values, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(many.extras["std_error"], one.extras["std_error"], rtol=1e-9)
    np.testing.assert_allclose(many.delta, 0, atol=1e-12)


@pytest.mark.parametrize("cls,opts", [(KernelShap, {"n_samples": 60}), (SamplingShapley, {"n_permutations": 4})])
def test_rows_do_not_depend_on_the_batch_and_seed_none_is_recorded(problem, cls, opts):
    f, x, bg = problem
    whole = cls(f, seed=8, **opts).explain(x, background=bg)
    parts = [cls(f, seed=8, **opts).explain(x[:1], background=bg),
             cls(f, seed=8, **opts).explain(x[1:], background=bg, row_offset=1)]
    np.testing.assert_allclose(np.concatenate([p.values for p in parts]), whole.values, rtol=1e-12, atol=1e-14)
    fresh = cls(f, seed=None, **opts).explain(x, background=bg)
    again = cls(f, seed=fresh.params["seed"], **opts).explain(x, background=bg)
    np.testing.assert_array_equal(fresh.values, again.values)


def test_progress_totals_are_the_rows_evaluated(problem, monkeypatch):
    import lumos.methods.base as base

    bars = []

    class Recorder:
        def __init__(self, enabled, total, label):
            self.total, self.rows = total, 0
            bars.append(self)

        def update(self, rows):
            self.rows += rows

        def close(self):
            pass

    monkeypatch.setattr(base, "Progress", Recorder)
    f, x, bg = problem
    for explainer in (ExactShapley(f), KernelShap(f, n_samples=90), SamplingShapley(f, n_permutations=6)):
        bars.clear()
        explainer.explain(x, background=bg)
        assert bars[0].total == bars[0].rows > len(x) * len(bg) * 10


def test_background_given_to_the_constructor_or_the_call():
    from lumos import KernelShap
    from lumos.models import MLP

    torch.manual_seed(0)
    model = MLP(6, 2, hidden=(8,))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    bg = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    a = KernelShap(model, background=bg, n_samples=64).explain(x)
    b = KernelShap(model, n_samples=64).explain(x, background=bg)
    np.testing.assert_array_equal(a.values, b.values)
    c = KernelShap(model, background=bg * 0, n_samples=64).explain(x, background=bg)  # the call's wins
    np.testing.assert_array_equal(c.values, b.values)
    with pytest.raises(ValueError, match="background is required"):
        KernelShap(model).explain(x)


def test_a_large_background_is_summarised_with_a_note():
    from lumos import KernelShap
    from lumos.methods.agnostic.shapley import AUTO_BACKGROUND

    w = np.linspace(-1, 1, 5)
    x = np.random.default_rng(0).normal(size=(2, 5))
    big = np.random.default_rng(1).normal(size=(AUTO_BACKGROUND + 50, 5))
    with pytest.warns(UserWarning, match=r"150 rows, so it is summarised by 100 weighted k-means centres"):
        exp = KernelShap(lambda z: z @ w, background=big, n_samples=64).explain(x)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-9)  # efficiency against the summarised background
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = KernelShap(lambda z: z @ w, background=big, n_background=None, n_samples=64).explain(x)
    np.testing.assert_allclose(full.values, w * (x - big.mean(0)), atol=1e-9)  # linear model: exact


def test_scikit_learn_estimators_are_explained_through_predict_proba():
    from sklearn.linear_model import LogisticRegression, Ridge

    import lumos

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    exp = lumos.KernelShap(clf, background=X[:10], n_samples=64).explain(X[:3], target=1)
    assert exp.params["scores"] == "LogisticRegression.predict_proba"
    np.testing.assert_allclose(exp.values.sum(1) + exp.base_value, clf.predict_proba(X[:3])[:, 1], atol=1e-9)
    reg = Ridge().fit(X, X[:, 2])
    occ = lumos.explain(reg, X[:3], "occlusion")
    assert occ.params["scores"] == "Ridge.predict" and occ.values.shape == (3, 4)
