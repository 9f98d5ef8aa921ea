"""Owen values over a hierarchy (Owen 1977; shap's PartitionExplainer): exact, efficient,
different from Shapley values when players interact across unions, equal to them for an
additive model or a flat hierarchy, equal to shap's PartitionExplainer on a binary one."""
import numpy as np
import pytest

import lumos
from lumos.methods.agnostic import ExactShapley
from lumos.methods.agnostic.owen import OwenValues, hierarchy_from_linkage, segment_hierarchy


def glove(z):  # v = x_2 · max(x_0, x_1)
    return (z[:, 2] * np.maximum(z[:, 0], z[:, 1]))[:, None]


def test_owen_differs_from_shapley_on_the_glove_game():
    x, base = np.ones((1, 3)), np.zeros((1, 3))
    owen = OwenValues(glove, hierarchy=[[0, 1], [2]]).explain(x, background=base)
    np.testing.assert_allclose(owen.values, [[0.25, 0.25, 0.5]], atol=1e-12)
    np.testing.assert_allclose(ExactShapley(glove).explain(x, background=base).values, [[1 / 6, 1 / 6, 2 / 3]])
    np.testing.assert_allclose(owen.delta, 0, atol=1e-12)


def test_owen_equals_the_two_level_formula():
    """φ_i = Σ_R Σ_T w_R w_T [v(Q_R ∪ T ∪ i) − v(Q_R ∪ T)] written out for unions {0,1,2},{3,4}."""
    import math
    from itertools import chain, combinations

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 5))
    f = lambda z: (np.tanh(z @ w).prod(1) + z[:, 0] * z[:, 4])[:, None]  # noqa: E731
    x, base = rng.normal(size=(1, 5)), rng.normal(size=(1, 5))
    unions = [[0, 1, 2], [3, 4]]

    def v(players):
        z = base.copy()
        z[0, list(players)] = x[0, list(players)]
        return f(z)[0, 0]

    def subsets(items):
        return chain.from_iterable(combinations(items, r) for r in range(len(items) + 1))

    def sh(k, n):
        return math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)

    expect = np.zeros(5)
    for k, union in enumerate(unions):
        others = [u for j, u in enumerate(unions) if j != k]
        for i in union:
            for r in subsets(range(len(others))):
                q = [p for j in r for p in others[j]]
                for t in subsets([p for p in union if p != i]):
                    weight = sh(len(r), len(unions)) * sh(len(t), len(union))
                    expect[i] += weight * (v(q + list(t) + [i]) - v(q + list(t)))
    got = lumos.explain(f, x, method="owen", background=base, hierarchy=unions).values[0]
    np.testing.assert_allclose(got, expect, atol=1e-12)


def test_additive_model_and_flat_hierarchy_give_shapley_values():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 1))
    x, bg = rng.normal(size=(2, 6)), rng.normal(size=(4, 6))
    additive = lambda z: z @ w + np.sin(z[:, [2]])  # noqa: E731
    owen = OwenValues(additive, hierarchy=[[0, 5], [[1, 2], 3], 4]).explain(x, background=bg)
    np.testing.assert_allclose(owen.values, ExactShapley(additive).explain(x, background=bg).values, atol=1e-12)
    w2 = rng.normal(size=(6, 1))
    f = lambda z: np.tanh(z @ w2 * z[:, [0]])  # noqa: E731
    g = lambda z: np.tanh(z[:, [0]] * z[:, [1]] + z[:, [2]] * z[:, [3]] - z[:, [4]] * z[:, [5]])  # noqa: E731
    for model in (f, g):
        flat = OwenValues(model).explain(x, background=bg)  # no hierarchy: one level
        singletons = OwenValues(model, hierarchy=[[k] for k in range(6)]).explain(x, background=bg)
        exact = ExactShapley(model).explain(x, background=bg).values
        np.testing.assert_allclose(flat.values, exact, atol=1e-12)
        np.testing.assert_allclose(singletons.values, exact, atol=1e-12)
    hier = OwenValues(g, hierarchy=[[0, 2], [1, 3], [4, 5]]).explain(x, background=bg)
    assert np.abs(hier.values - ExactShapley(g).explain(x, background=bg).values).max() > 1e-3
    np.testing.assert_allclose(hier.delta, 0, atol=1e-12)


def test_time_windows_inside_segments_are_efficient():
    rng = np.random.default_rng(2)
    x, bg = rng.normal(size=(2, 1, 96)), rng.normal(size=(3, 1, 96))
    k = rng.normal(size=96)
    f = lambda z: np.stack([np.tanh(z[:, 0] @ k) * z[:, 0, :48].mean(1), z[:, 0, 10:70].max(1)], 1)  # noqa: E731
    groups = (np.arange(96) // 8)[None]
    exp = OwenValues(f, hierarchy=segment_hierarchy(12, 4)).explain(x, target=[0, 1], background=bg, groups=groups)
    assert exp.extras["group_values"].shape == (2, 12)
    np.testing.assert_allclose(exp.values.reshape(2, -1).sum(1) + exp.base_value, exp.target_score(), atol=1e-10)


def test_errors():
    f = glove
    x, base = np.ones((1, 3)), np.zeros((1, 3))
    with pytest.raises(ValueError, match="exactly once"):
        OwenValues(f, hierarchy=[[0, 1], [1, 2]]).explain(x, background=base)
    with pytest.raises(ValueError, match="nested lists"):
        OwenValues(f, hierarchy="abc").explain(x, background=base)
    with pytest.raises(ValueError, match="max_evals"):
        OwenValues(lambda z: z[:, :1], max_evals=100).explain(np.ones((1, 12)), background=np.zeros((1, 12)))


def test_equals_shap_partition_explainer():
    """shap.PartitionExplainer with a ``maskers.Partition(background, clustering=linkage)``
    masker and max_evals large enough to expand every node computes the Owen value of the
    binary hierarchy: equal on one baseline row and on a 4-row background."""
    shap = pytest.importorskip("shap")
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(0)
    d = 6
    w = rng.normal(size=(d, d))
    g = lambda z: np.tanh(z @ w).prod(1) + z[:, 0] * z[:, 3] - z[:, 1] * z[:, 5] * z[:, 2]  # noqa: E731
    x = rng.normal(size=(3, d))
    clustering = linkage(rng.normal(size=(d, 4)), "average")
    assert len(hierarchy_from_linkage(clustering)) == 2  # binary
    for bg in (rng.normal(size=(1, d)), rng.normal(size=(4, d))):
        explainer = shap.PartitionExplainer(g, shap.maskers.Partition(bg, clustering=clustering))
        theirs = explainer(x, max_evals=5000, silent=True).values
        ours = OwenValues(lambda z: g(z)[:, None], hierarchy=clustering).explain(x, background=bg)
        np.testing.assert_allclose(ours.values, theirs, atol=1e-10)


def test_too_many_children_refused_before_any_work():
    """A flat hierarchy over 64 pixels (what `lumos demo` asked for) is refused at once, naming the fix,
    instead of walking 2^63 subsets."""
    import time

    from lumos.methods.agnostic.owen import OwenValues

    start = time.perf_counter()
    with pytest.raises(ValueError, match="2\\^63 subsets.*hierarchy=.*groups="):
        OwenValues(lambda a: a.sum(1, keepdims=True), background=np.zeros((1, 64))).explain(np.ones((2, 64)))
    assert time.perf_counter() - start < 5
