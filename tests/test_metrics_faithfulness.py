"""Faithfulness metrics: exact curves on a linear model, MoRF > random > LeRF, regions for
every layout, batching independence, and input validation."""
import numpy as np
import pytest
import torch

from lumos.metrics import abpc, deletion, insertion, pixel_flipping, region_map, region_perturbation


@pytest.fixture
def linear():
    torch.manual_seed(0)
    lin = torch.nn.Linear(20, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.rand(1, 20, dtype=torch.float64) + 0.1)
        lin.bias.fill_(0.3)
    x = np.random.default_rng(0).uniform(0.1, 1.0, (16, 20))
    contrib = np.abs(lin.weight.detach().numpy()[0] * x)
    return lin, x, contrib


def test_linear_curve_is_exact(linear):
    lin, x, contrib = linear
    res = pixel_flipping(lin, x, contrib, 0, replacement="constant", value=0.0, output="raw")
    order = np.argsort(-contrib, axis=1)
    removed = np.cumsum(np.take_along_axis(contrib, order, axis=1), axis=1)
    f0 = contrib.sum(1) + 0.3
    expected = np.concatenate([f0[:, None], f0[:, None] - removed], axis=1)
    np.testing.assert_allclose(res.curve, expected, atol=1e-10)
    np.testing.assert_allclose(res.scores, (f0[:, None] - expected).mean(1), atol=1e-10)
    assert res.n_regions == 20 and res.curve.shape == (16, 21)


def test_morf_beats_random_and_lerf_reverses(linear):
    lin, x, contrib = linear
    opts = dict(replacement="constant", output="raw", n_steps=10)
    morf = region_perturbation(lin, x, contrib, 0, order="morf", **opts)
    lerf = region_perturbation(lin, x, contrib, 0, order="lerf", **opts)
    rand = region_perturbation(lin, x, contrib, 0, order="random", seed=1, **opts)
    assert morf.value > rand.value > lerf.value
    assert (morf.scores >= rand.scores - 1e-12).all() and (lerf.scores <= rand.scores + 1e-12).all()
    np.testing.assert_allclose(abpc(lin, x, contrib, 0, **opts), morf.scores - lerf.scores, atol=1e-12)


def test_region_map_layouts():
    tab = region_map((10,), 3)
    assert tab.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]  # centred grid: one padded feature each side
    ts = region_map((2, 8), 4)
    assert ts.shape == (2, 8) and (ts[0] == ts[1]).all() and ts[0].tolist() == [0] * 4 + [1] * 4
    img = region_map((3, 4, 4), 2)
    assert img.shape == (3, 4, 4) and img.max() == 3
    assert (img[:, :2, :2] == 0).all() and (img[:, 2:, 2:] == 3).all()
    with pytest.raises(ValueError, match="region size"):
        region_map((3, 4, 4), 5)


def test_image_regions_and_batching_do_not_change_results():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 36, 3))
    x = np.random.default_rng(1).random((5, 1, 6, 6)).astype(np.float32)
    a = np.random.default_rng(2).normal(size=x.shape)
    big = region_perturbation(model, x, a, region=2, n_steps=9, replacement="mean")
    small = region_perturbation(model, x, a, region=2, n_steps=9, replacement="mean", batch_size=3)
    np.testing.assert_allclose(big.curve, small.curve, rtol=1e-6)
    # after all 9 regions, every pixel holds the replacement (the input's mean)
    full = np.broadcast_to(x.mean(axis=(1, 2, 3), keepdims=True), x.shape)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(full.astype(np.float32))), 1).numpy()
    np.testing.assert_allclose(big.curve[:, -1], p[np.arange(5), big.target], rtol=1e-5)


def test_uniform_noise_is_seeded_and_blur_runs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 12, 2))
    x = np.random.default_rng(1).random((4, 2, 12)).astype(np.float32)
    a = np.random.default_rng(2).normal(size=x.shape)
    r1 = region_perturbation(model, x, a, region=3, seed=5)
    r2 = region_perturbation(model, x, a, region=3, seed=5)
    np.testing.assert_array_equal(r1.curve, r2.curve)
    assert region_perturbation(model, x, a, region=3, replacement="blur").curve.shape == (4, 5)


def test_deletion_insertion_endpoints(linear):
    lin, x, contrib = linear
    dele = deletion(lin, x, contrib, 0, output="raw", n_steps=20)
    f0 = contrib.sum(1) + 0.3
    np.testing.assert_allclose(dele.curve[:, 0], f0)
    np.testing.assert_allclose(dele.curve[:, -1], 0.3)
    ins = insertion(lin, x, contrib, 0, output="raw", n_steps=20, baseline=0.0)
    np.testing.assert_allclose(ins.curve[:, 0], 0.3)
    np.testing.assert_allclose(ins.curve[:, -1], f0)
    # the deletion curve of the true ordering lies below that of the reversed one
    worse = deletion(lin, x, -contrib, 0, output="raw", n_steps=20)
    assert dele.value < worse.value


def test_bad_inputs(linear):
    lin, x, contrib = linear
    with pytest.raises(ValueError, match="do not match"):
        region_perturbation(lin, x, contrib[:, :5], 0)
    with pytest.raises(ValueError, match="order"):
        region_perturbation(lin, x, contrib, 0, order="best")
    with pytest.raises(ValueError, match="n_steps"):
        region_perturbation(lin, x, contrib, 0, n_steps=50)
    with pytest.raises(ValueError, match="replacement"):
        region_perturbation(lin, x, contrib, 0, replacement="zeros")


def test_unchanged_copies_reuse_scores_exactly():
    """Regions already equal to the replacement (black background replaced by black) are
    not scored again; the curve equals scoring every copy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(1).random((4, 1, 6, 6)).astype(np.float32)
    x[:, :, :, 3:] = 0.0  # half of every image is black
    a = np.random.default_rng(2).normal(size=x.shape)
    res = region_perturbation(model, x, a, region=1, n_steps=36, replacement="constant", order="random", seed=3)
    from lumos.metrics.faithfulness import region_order

    order_rank = region_order(a, region_map((1, 6, 6), 1), "random", seed=3)
    expected = np.empty((4, 37))
    with torch.no_grad():
        for k in range(37):
            xk = np.where(order_rank.reshape(x.shape) < k, 0.0, x).astype(np.float32)
            p = torch.softmax(model(torch.from_numpy(xk)), 1).numpy()
            expected[:, k] = p[np.arange(4), res.target]
    np.testing.assert_allclose(res.curve, expected, rtol=1e-6, atol=1e-7)
