"""Leverage SHAP, paired sampling without replacement and regression-adjusted Monte Carlo
(issue 19): exact at the full budget, efficient exactly at every budget, unbiased (normal
equations / the estimate itself) where the papers prove it."""
import math
from itertools import combinations

import numpy as np
import pytest

import lumos
from lumos.methods.agnostic import ExactShapley
from lumos.methods.agnostic.leverage_shap import LeverageShap, PairedDesign, unrank_combinations
from lumos.methods.agnostic.shapley import all_coalitions, kernel_weight
from lumos.methods.agnostic.shapley_regression_mc import RegressionMSR, mc_coefficients

D = 10


@pytest.fixture(scope="module")
def game():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(D, 1))

    def f(z):
        return np.sin(z @ w) + z[:, [0]] * z[:, [3]] * z[:, [5]] + 0.5 * z[:, [1]] * z[:, [8]]

    x, bg = rng.normal(size=(3, D)), rng.normal(size=(6, D))
    return f, x, bg, ExactShapley(f).explain(x, background=bg).values


def test_unrank_is_the_colex_order():
    n, k = 8, 3
    colex = sorted(combinations(range(n), k), key=lambda c: sum(math.comb(ci, i + 1) for i, ci in enumerate(c)))
    got = unrank_combinations(np.arange(math.comb(n, k)), n, k)
    assert [tuple(r) for r in got] == colex


@pytest.mark.parametrize("d", [7, 10])
@pytest.mark.parametrize("distribution", ["leverage", "kernel"])
def test_paired_design_without_replacement(d, distribution):
    design = PairedDesign(d, 200, np.random.default_rng(0), distribution)
    masks = np.concatenate([m for m, _ in design.blocks(1000)])
    assert len({m.tobytes() for m in masks}) == masks.shape[0]  # no coalition twice
    assert masks.shape[0] == design.n_coalitions <= 200
    half = masks.shape[0] // 2
    blocks = list(design.blocks(1000))
    for m, _ in blocks:  # every block: the first members, then their complements
        k = m.shape[0] // 2
        np.testing.assert_array_equal(m[k:], ~m[:k])
    assert half > 0
    # the sizes 1 and d-1 hold the fewest coalitions: enumerated first
    sizes = masks.sum(1)
    assert (sizes == 1).sum() == d and (sizes == d - 1).sum() == d
    # the same coalitions whatever the block size
    small = np.concatenate([m for m, _ in PairedDesign(d, 200, np.random.default_rng(0), distribution).blocks(6)])
    assert {m.tobytes() for m in small} == {m.tobytes() for m in masks}


def test_leverage_allocates_an_equal_share_per_size():
    d = 20
    design = PairedDesign(d, 4000, np.random.default_rng(0), "leverage")
    counts = {st["size"]: (st["count"], st["saturated"], st["pairs"]) for st in design.strata}
    assert counts[1][1] and counts[2][1]  # 20 and 190 pairs: enumerated
    free = [c for s, (c, sat, _) in counts.items() if not sat and 2 * s != d]
    assert max(free) - min(free) <= 1  # the unsaturated sizes share the rest equally


def test_normal_equations_are_unbiased():
    """E[Σ π(z)/q(z) z zᵀ] over the sample equals Σ_z π(z) z zᵀ over all coalitions (the
    property the leverage-score guarantee rests on), within a CLT bound."""
    d = 9
    every = all_coalitions(d)[1:-1]
    pi = kernel_weight(d, every.sum(1))
    full = (every.T * pi) @ every
    runs = []
    for seed in range(300):
        design = PairedDesign(d, 60, np.random.default_rng(seed), "leverage")
        a = np.zeros((d, d))
        for m, s in design.blocks(1000):
            a += (m.T * (s * kernel_weight(d, m.sum(1)))) @ m
        runs.append(a)
    runs = np.array(runs)
    se = runs.std(0) / np.sqrt(len(runs)) + 1e-12
    assert np.all(np.abs(runs.mean(0) - full) <= 5 * se)


@pytest.mark.parametrize("cls,opts", [(LeverageShap, {}), (LeverageShap, {"distribution": "kernel"}),
                                      (RegressionMSR, {}), (RegressionMSR, {"surrogate": "linear"}),
                                      (RegressionMSR, {"cross_fit": False})])
def test_full_budget_is_exact_and_every_budget_efficient(game, cls, opts):
    f, x, bg, exact = game
    full = cls(f, n_samples=2 ** D, **opts).explain(x, background=bg)
    np.testing.assert_allclose(full.values, exact, atol=1e-9)
    for budget in (24, 100, 300):
        exp = cls(f, n_samples=budget, seed=1, **opts).explain(x, target=[0, 0, 0], background=bg)
        np.testing.assert_allclose(exp.values.sum(1) + exp.base_value, exp.target_score(), atol=1e-10)
        assert int(exp.extras["n_coalitions"]) <= budget


def test_leverage_error_shrinks_and_beats_kernel_shap_at_a_moderate_budget(game):
    f, x, bg, exact = game

    def err(cls, budget, **opts):
        return np.mean([np.sqrt(np.mean((cls(f, n_samples=budget, seed=s, **opts).explain(
            x, background=bg).values - exact) ** 2)) for s in range(8)])

    errors = [err(LeverageShap, b) for b in (48, 192, 600)]
    assert errors[0] > errors[1] > errors[2], errors
    assert err(LeverageShap, 400) < err(lumos.KernelShap, 400)


def test_mc_coefficients_give_the_shapley_value(game):
    """φ(v) = Σ_z a(z) v(z) over all coalitions: the identity the Monte Carlo part samples."""
    f, x, bg, exact = game
    masks = all_coalitions(D)

    class Adapter:
        batch_size = 1 << 20
        scores = staticmethod(f)

    from lumos.methods.agnostic.base import coalition_values

    vals = coalition_values(Adapter, x, np.zeros(len(x), dtype=int), masks, bg, np.arange(D))
    np.testing.assert_allclose(vals @ mc_coefficients(masks), exact, atol=1e-10)


def test_regression_msr_is_unbiased(game):
    """Witter et al.: with the surrogate fitted on the other fold, φ̃ is unbiased; the mean
    of 400 seeds at 64 coalitions is within 4.5 standard errors of the exact values."""
    f, x, bg, exact = game
    runs = np.array([RegressionMSR(f, n_samples=64, seed=s).explain(x[:1], background=bg).values[0]
                     for s in range(400)])
    se = runs.std(0) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(0) - exact[0]) <= 4.5 * se + 1e-12), (runs.mean(0) - exact[0]) / se


def test_registered_and_reproducible(game):
    f, x, bg, _ = game
    for name in ("leverage_shap", "regression_msr"):
        a = lumos.explain(f, x, method=name, background=bg, n_samples=80, seed=3)
        b = lumos.explain(f, x, method=name, background=bg, n_samples=80, seed=3)
        np.testing.assert_array_equal(a.values, b.values)
        parts = [lumos.explain(f, x[:1], method=name, background=bg, n_samples=80, seed=3),
                 lumos.explain(f, x[1:], method=name, background=bg, n_samples=80, seed=3, row_offset=1)]
        np.testing.assert_allclose(np.concatenate([p.values for p in parts]), a.values, rtol=1e-12, atol=1e-14)


def test_bad_options():
    f = lambda z: z  # noqa: E731
    with pytest.raises(ValueError, match="distribution"):
        LeverageShap(f, distribution="uniform")
    with pytest.raises(ValueError, match="surrogate"):
        RegressionMSR(f, surrogate="tree")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compose_blend_is_bitwise_the_masked_copy(dtype):
    """The arithmetic composition x·k + ref·(1−k) equals np.where bit for bit on finite values;
    non-finite values take the masked copy (0·inf would be NaN)."""
    from lumos.methods.agnostic.masking import compose

    rng = np.random.default_rng(3)
    x, ref = (rng.normal(size=(2, 7)) * 1e3).astype(dtype), rng.normal(size=(4, 2, 7)).astype(dtype)
    groups, masks = np.arange(14).reshape(2, 7) % 5, rng.random((6, 5)) < 0.5
    expected = np.where(masks[:, groups][:, None], x, ref[None])
    bits = lambda a: np.ascontiguousarray(a).view(np.uint8)  # noqa: E731
    assert np.array_equal(bits(compose(x, ref, masks, groups)), bits(expected))
    x[0, 0], ref[1, 1, 2] = np.inf, np.nan
    expected = np.where(masks[:, groups][:, None], x, ref[None])
    assert np.array_equal(compose(x, ref, masks, groups), expected, equal_nan=True)


def test_coalition_values_do_not_depend_on_the_call_size(game, monkeypatch):
    """Per-input target columns (mixed targets included) and any model-call size give the same values."""
    import lumos.methods.agnostic.base as base

    f, x, bg, _ = game
    two = lambda z: np.concatenate([f(z), -2 * f(z)], axis=1)  # noqa: E731
    runs = []
    for elements in (base.CACHE_ELEMENTS, 10 * 6):  # the default, and one coalition per call
        monkeypatch.setattr(base, "CACHE_ELEMENTS", elements)
        runs.append(lumos.methods.agnostic.KernelShap(two, n_samples=200, seed=4).explain(
            x, target=np.array([0, 1, 0]), background=bg).values)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12, atol=1e-14)
    single = lumos.methods.agnostic.KernelShap(two, n_samples=200, seed=4).explain(x[1:2], target=1, background=bg)
    np.testing.assert_allclose(single.values[0], runs[0][1], rtol=1e-9, atol=1e-12)


def test_calls_grow_for_a_cheap_model_and_the_values_stay(game, monkeypatch):
    """On a CPU with an automatic call size the model calls of coalition_values double while they
    are short (CALL_SECONDS), within MAX_CALL_ELEMENTS; a user's batch_size is kept; the values
    are bit-identical whatever the call sizes."""
    import lumos.methods.agnostic.base as base

    f, x, bg, _ = game
    sizes = []
    model = lambda z: (sizes.append(len(z)), f(z))[1]  # noqa: E731
    runs = {}
    for name, seconds, options in (("never", 0.0, {}), ("always", float("inf"), {}),
                                   ("given", float("inf"), {"batch_size": 60})):
        monkeypatch.setattr(base, "CACHE_ELEMENTS", 10 * 6 * 4)  # first calls of 4 coalitions x 6 rows
        monkeypatch.setattr(base, "CALL_SECONDS", seconds)
        monkeypatch.setattr(base, "MAX_CALL_ELEMENTS", 10 * 6 * 64)
        sizes.clear()
        runs[name] = lumos.methods.agnostic.KernelShap(model, n_samples=400, seed=2, **options).explain(
            x, background=bg).values
        runs[name + " sizes"] = list(sizes[2:])  # after f(x) and the background's scores
    assert max(runs["never sizes"]) == 24
    assert runs["always sizes"][0] == 24 and max(runs["always sizes"]) == 6 * 64  # grown to the cap
    assert max(runs["given sizes"]) <= 60
    np.testing.assert_array_equal(runs["always"], runs["never"])
    np.testing.assert_array_equal(runs["given"], runs["never"])


def test_sampling_shapley_independent_orderings_are_unbiased_and_efficient(game):
    """antithetic=False draws every ordering independently (shapiq's PermutationSamplingSV):
    efficient exactly for each draw, unbiased (the mean of 200 seeds at 2 orderings within 4.5
    standard errors of the exact values), and different from the antithetic draws."""
    from lumos.methods.agnostic import SamplingShapley

    f, x, bg, exact = game
    runs = []
    for s in range(200):
        e = SamplingShapley(f, n_permutations=2, antithetic=False, seed=s).explain(x[:1], background=bg)
        np.testing.assert_allclose(e.values.sum(), exact[0].sum(), rtol=1e-9, atol=1e-9)
        runs.append(e.values[0])
    runs = np.array(runs)
    se = runs.std(0) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(0) - exact[0]) <= 4.5 * se + 1e-12), (runs.mean(0) - exact[0]) / se
    anti = SamplingShapley(f, n_permutations=2, seed=0).explain(x[:1], background=bg).values[0]
    assert not np.allclose(anti, runs[0])
    assert SamplingShapley(f, antithetic=False).params()["antithetic"] is False


def test_regression_msr_without_cross_fitting_is_consistent(game):
    """cross_fit=False (the surrogate fitted on the whole sample): exact at the full budget (in
    the parametrised test above), its error shrinks with the budget, and its bias is small
    against its spread (the mean of 200 seeds at 64 coalitions within 0.1 of the exact values'
    RMS, and nearer than one draw's typical error)."""
    f, x, bg, exact = game

    def runs(budget, n):
        return np.array([RegressionMSR(f, n_samples=budget, seed=s, cross_fit=False).explain(
            x[:1], background=bg).values[0] for s in range(n)])

    errors = [np.sqrt(np.mean((runs(b, 8) - exact[0]) ** 2)) for b in (48, 192, 600)]
    assert errors[0] > errors[1] > errors[2], errors
    r = runs(64, 200)
    bias = np.sqrt(np.mean((r.mean(0) - exact[0]) ** 2))
    assert bias < 0.1 * np.sqrt(np.mean(exact[0] ** 2)) and bias < 0.5 * np.sqrt(np.mean((r - exact[0]) ** 2))
    assert RegressionMSR(f, cross_fit=False).params()["cross_fit"] is False


def test_latin_orderings_balance_positions():
    from lumos.methods.agnostic.shapley import latin_orderings

    o = latin_orderings(7, 17, np.random.default_rng(0))
    assert o.shape == (17, 7)
    for block in (o[:7], o[7:14]):  # full blocks: rows and columns are permutations (a Latin square)
        assert (np.sort(block, 1) == np.arange(7)).all() and (np.sort(block, 0) == np.arange(7)[:, None]).all()
    assert (np.sort(o[14:], 1) == np.arange(7)).all()


@pytest.mark.parametrize("antithetic", [False, True])
def test_stratified_sampling_shapley_is_unbiased_efficient_and_exact_on_size_games(game, antithetic):
    """stratified=True (Latin-square orderings): efficient exactly, unbiased (mean of 200 seeds
    within 4.5 standard errors), and exact with one full block on a game whose marginal
    contributions depend only on the player and the coalition's size, where independent
    orderings are not."""
    from lumos.methods.agnostic import SamplingShapley

    f, x, bg, exact = game
    runs = []
    for s in range(200):
        e = SamplingShapley(f, n_permutations=4, antithetic=antithetic, stratified=True, seed=s).explain(
            x[:1], background=bg)
        np.testing.assert_allclose(e.values.sum(), exact[0].sum(), rtol=1e-9, atol=1e-9)
        runs.append(e.values[0])
    runs = np.array(runs)
    se = runs.std(0) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(0) - exact[0]) <= 4.5 * se + 1e-12), (runs.mean(0) - exact[0]) / se

    a = np.linspace(-1, 1, D)
    size_game = lambda z: (z @ a + 0.3 * z.sum(1) ** 2)[:, None]  # noqa: E731  contribution a_i + 0.3(2|S|+1)
    ones, zeros = np.ones((1, D)), np.zeros((1, D))
    truth = ExactShapley(size_game).explain(ones, background=zeros).values
    n = D if not antithetic else 2 * D  # one full square (with its reverses)
    strat = SamplingShapley(size_game, n_permutations=n, antithetic=antithetic, stratified=True, seed=3).explain(
        ones, background=zeros).values
    np.testing.assert_allclose(strat, truth, atol=1e-10)
    iid = SamplingShapley(size_game, n_permutations=n, antithetic=False, seed=3).explain(ones, background=zeros)
    assert not np.allclose(iid.values, truth, atol=1e-3)
