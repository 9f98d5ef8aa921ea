"""Occlusion and LIME: exact linear-model identities, layouts, seeds, errors."""
import numpy as np
import pytest
import torch

import lumos
from lumos.methods.agnostic import Lime, Occlusion, superpixel_groups, window_groups
from lumos.methods.agnostic.masking import compose, sliding_windows
from tests.conftest import assert_same_state, model_state


def linear(w, b=0.3):
    return lambda z: (z.reshape(len(z), -1) @ w.ravel() + b)[:, None]


# -- occlusion ---------------------------------------------------------------------
def test_occlusion_linear_window_scores():
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(2, 12)), rng.normal(size=(3, 2, 12))
    base = rng.normal(size=(2, 12))
    exp = Occlusion(linear(w), window=(1, 4)).explain(x, baseline=base)
    per_window = (w * (x - base)).reshape(3, 2, 3, 4).sum(-1)
    np.testing.assert_allclose(exp.values, np.repeat(per_window, 4, axis=-1), atol=1e-12)


def test_occlusion_overlapping_windows_averaged():
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=10), rng.normal(size=(2, 10))
    exp = Occlusion(linear(w), window=4, stride=2).explain(x, baseline=0.0)
    wins = sliding_windows((10,), 4, 2)
    assert [s[0].start for s in wins] == [0, 2, 4, 6]
    expected = np.zeros((2, 10))
    count = np.zeros(10)
    for (s,) in wins:
        expected[:, s] += (w[s] * x[:, s]).sum(1, keepdims=True)
        count[s] += 1
    np.testing.assert_allclose(exp.values, expected / count, atol=1e-12)


def test_occlusion_image_torch_and_groups():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).train()
    before = model_state(model)
    x = torch.rand(2, 3, 8, 8)
    exp = Occlusion(model, window=(3, 4, 4), batch_size=5).explain(x)
    assert_same_state(before, model_state(model))
    assert exp.values.shape == (2, 3, 8, 8) and int(exp.extras["n_occlusions"]) == 4
    groups, g = window_groups((3, 8, 8), (None, 4, 4))
    by_group = Occlusion(model, batch_size=5).explain(x, groups=groups)
    np.testing.assert_allclose(by_group.values, exp.values, atol=1e-6)


def test_occlusion_errors():
    f = linear(np.ones(4))
    with pytest.raises(ValueError, match="stride"):
        Occlusion(f, window=1, stride=2).explain(np.ones((1, 4)))
    with pytest.raises(ValueError, match="window"):
        Occlusion(f, window=(1, 2)).explain(np.ones((1, 4)))
    with pytest.raises(ValueError, match="baseline"):
        Occlusion(f).explain(np.ones((1, 4)), baseline=np.ones(3))
    with pytest.raises(ValueError, match="scores of shape"):
        Occlusion(lambda z: np.ones((len(z), 2, 2))).explain(np.ones((1, 4)))


# -- LIME ----------------------------------------------------------------------------
@pytest.mark.parametrize("width", [None, 0.3, 5.0])
def test_lime_binary_linear_recovers_contributions(width):
    rng = np.random.default_rng(2)
    w, x, base = rng.normal(size=8), rng.normal(size=(3, 8)), rng.normal(size=8)
    exp = Lime(linear(w), alpha=0.0, n_samples=300, kernel_width=width, sampling="mask").explain(x, baseline=base)
    np.testing.assert_allclose(exp.values, w * (x - base), atol=1e-9)
    np.testing.assert_allclose(exp.extras["intercept"], base @ w + 0.3, atol=1e-9)
    np.testing.assert_allclose(exp.extras["r2"], 1.0, atol=1e-12)


def test_lime_time_series_segments_and_ridge_shrinks():
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=(2, 20)), rng.normal(size=(2, 2, 20))
    exact = Lime(linear(w), alpha=0.0, n_samples=200, n_segments=5).explain(x)
    seg = (w * x).reshape(2, 2, 5, 4).sum((1, 3))  # segments span both channels
    np.testing.assert_allclose(exact.extras["coefficients"], seg, atol=1e-9)
    np.testing.assert_allclose(exact.values.reshape(2, -1).sum(1), seg.sum(1), atol=1e-9)
    ridge = Lime(linear(w), alpha=10.0, n_samples=200, n_segments=5).explain(x)
    assert np.abs(ridge.extras["coefficients"]).sum() < np.abs(seg).sum()


def test_lime_image_superpixels_seeded():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    x = np.random.default_rng(4).random((2, 3, 16, 16)).astype(np.float32)
    a = Lime(model, n_samples=100, n_segments=8, seed=1).explain(x, baseline="mean")
    b = Lime(model, n_samples=100, n_segments=8, seed=1).explain(x, baseline="mean")
    c = Lime(model, n_samples=100, n_segments=8, seed=2).explain(x, baseline="mean")
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.values.shape == x.shape and a.extras["groups"].shape == x.shape
    grid, g = superpixel_groups(x[0], "grid", n_segments=16)
    assert grid.shape == (1, 16, 16) and g == 16


def test_lime_tabular_sampling():
    rng = np.random.default_rng(5)
    train = rng.normal(loc=2.0, scale=3.0, size=(300, 6))
    train[:, 5] = rng.integers(0, 3, size=300)
    w = np.array([1.0, -1.0, 0.0, 0.5, 0.0, 2.0])
    x = train[:4]
    w_cont = np.where(np.arange(6) == 5, 0.0, w)  # linear in the representation: exact recovery
    cont = Lime(linear(w_cont), n_samples=3000, alpha=0.0, categorical_features=[5]).explain(x, training_data=train)
    # standardised representation: coefficient = w_j * std_j for continuous columns
    np.testing.assert_allclose(cont.values[:, :5], np.broadcast_to(w[:5] * train[:, :5].std(0), (4, 5)), atol=1e-8)
    disc = Lime(linear(w), n_samples=3000, discretize=True, seed=3).explain(x, training_data=train)
    again = Lime(linear(w), n_samples=3000, discretize=True, seed=3).explain(x, training_data=train)
    np.testing.assert_array_equal(disc.values, again.values)
    assert np.all(np.abs(disc.values[:, [2, 4]]) < 0.2 * np.abs(disc.values[:, [0, 1]]).max())
    assert np.all((disc.extras["r2"] > 0) & (disc.extras["r2"] <= 1))


def test_lime_registry_and_errors():
    f = linear(np.ones(4))
    exp = lumos.explain(f, np.ones((2, 4)), method="lime", n_samples=50)
    assert exp.method == "lime" and exp.extras["r2"].shape == (2,)
    with pytest.raises(ValueError, match="training_data"):
        Lime(f, sampling="tabular").explain(np.ones((2, 4)))
    with pytest.raises(ValueError, match="kernel_width"):
        Lime(f, kernel_width=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        Lime(lambda z: np.where(z[:, :1] > 0.5, np.nan, 0.0), n_samples=20).explain(np.ones((1, 4)))
    with pytest.raises(ValueError, match="scores of shape"):
        Lime(lambda z: np.ones((len(z) - 1, 2)), n_samples=20).explain(np.ones((1, 4)))


def test_compose_background():
    x, bg = np.array([1.0, 2.0, 3.0]), np.zeros((2, 3))
    out = compose(x, bg, np.array([[True, False]]), np.array([0, 0, 1]))
    np.testing.assert_array_equal(out, [[[1, 2, 0], [1, 2, 0]]])


def test_shared_design_ridge_equals_the_stacked_problem():
    from lumos.methods.agnostic.lime import shared_design_ridge, weighted_ridge

    rng = np.random.default_rng(0)
    n, m, g, width = 5, 400, 6, 1.7
    z, y = rng.normal(size=(m, g)), rng.normal(size=(n, m))
    z_self, y_self = rng.normal(size=(n, g)), rng.normal(size=n)
    rep = np.concatenate([z_self[:, None], np.broadcast_to(z, (n, m, g))], 1)
    w = np.exp(-((rep - rep[:, :1]) ** 2).sum(2) / width ** 2)
    stacked = weighted_ridge(rep, np.concatenate([y_self[:, None], y], 1), w, 0.5)
    for a, b in zip(shared_design_ridge(z, y, z_self, y_self, width, 0.5), stacked):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("options", [{}, {"discretize": True}, {"categorical_features": [3]}])
def test_lime_tabular_shares_one_sample_set_per_call(options):
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 4))
    train[:, 3] = rng.integers(0, 2, size=200)
    calls = []

    def f(z):
        calls.append(len(z))
        return np.tanh(z @ np.array([1.0, -2.0, 0.5, 1.0]))[:, None]

    x = train[:6]
    batch = Lime(f, n_samples=500, seed=4, **options).explain(x, training_data=train)
    assert calls == [6, 499]  # f(x), then one shared set: not 6 x 500 rows
    one = Lime(f, n_samples=500, seed=4, **options).explain(x[2:3], training_data=train)
    np.testing.assert_allclose(one.values[0], batch.values[2], rtol=1e-9, atol=1e-12)  # independent of the batch
    np.testing.assert_allclose(one.extras["r2"][0], batch.extras["r2"][2], rtol=1e-9)

    calls.clear()
    own = Lime(f, n_samples=500, seed=4, share_samples=False, **options).explain(x, training_data=train)
    assert calls == [6, 6 * 499]  # an independent set per row
    assert not np.allclose(own.values[1:], batch.values[1:])  # other draws (row 0 uses the shared seed)
    np.testing.assert_allclose(own.values[0], batch.values[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_compose_equals_numpy_where_for_every_dtype_and_layout(dtype):
    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(2, 6)).astype(dtype), rng.normal(size=(3, 2, 6)).astype(dtype)
    groups, masks = np.arange(12).reshape(2, 6) // 4, rng.random((5, 3)) < 0.5
    expected = np.where(masks[:, groups][:, None], x, ref[None])
    got = compose(x, ref, masks, groups)
    assert got.dtype == dtype and np.array_equal(got, expected)
    out = np.empty((5, 3, 2, 6), dtype)[::-1]  # a buffer with negative strides
    compose(x, ref, masks, groups, out=out)
    assert np.array_equal(out, expected)
    one = compose(x[:, ::-1], ref[0], masks, groups)  # a single reference, a strided sample
    assert np.array_equal(one, np.where(masks[:, groups], x[:, ::-1], ref[0]))


def test_lime_mask_blocks_equal_one_block():
    rng = np.random.default_rng(6)
    w = rng.normal(size=10)
    f = lambda z: np.tanh(z @ w)[:, None]  # noqa: E731
    x = rng.normal(size=(3, 10))
    one = Lime(f, n_samples=400, sampling="mask", seed=1).explain(x)
    blocked = Lime(f, n_samples=400, sampling="mask", seed=1)
    blocked.design_elements = 10 * 30  # blocks of 30 samples per input
    many = blocked.explain(x)
    for key in ("coefficients", "intercept", "r2", "local_prediction"):
        np.testing.assert_allclose(many.extras[key], one.extras[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(many.values, one.values, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("options,call", [({"sampling": "mask"}, {}), ({"share_samples": False}, {"training": True}),
                                          ({}, {"training": True})])
def test_lime_rows_seeded_by_their_dataset_position(options, call):
    """Row i draws from (seed, row_offset + i): explaining a dataset in parts with their
    offsets (as explain_dataset does) gives the values of one call."""
    rng = np.random.default_rng(7)
    train = rng.normal(size=(100, 5))
    f = lambda z: np.tanh(z @ np.arange(1.0, 6.0) / 5)[:, None]  # noqa: E731
    x = train[:5]
    kw = {"training_data": train} if call else {}
    whole = Lime(f, n_samples=200, seed=3, **options).explain(x, **kw)
    parts = [Lime(f, n_samples=200, seed=3, **options).explain(x[:2], **kw),
             Lime(f, n_samples=200, seed=3, **options).explain(x[2:], row_offset=2, **kw)]
    np.testing.assert_array_equal(np.concatenate([p.values for p in parts]), whole.values)
    shifted = Lime(f, n_samples=200, seed=3, **options).explain(x[2:], **kw)
    if options.get("sampling") == "mask" or options.get("share_samples") is False:
        assert not np.allclose(shifted.values, whole.values[2:])  # other rows, other draws
