"""Activation maximisation: ascent, clipping, objectives, priors, and MNIST fooling images."""
import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from lumos.analysis import activation_maximization, channel, class_log_probability, class_logit, neuron, total_variation
from lumos.models import CNN1d, CNN2d


@pytest.fixture
def small_cnn():
    torch.manual_seed(0)
    return CNN2d(1, 4, channels=(4, 8), kernel_size=3).eval()


def block_means(traj, blocks=5):
    return np.array([b.mean() for b in np.array_split(traj, blocks)])


def test_objective_increases_monotonically_on_average(small_cnn):
    r = activation_maximization(small_cnn, [0, 1, 2, 3], shape=(1, 12, 12), steps=100, lr=0.01, optimizer="sgd")
    assert r.trajectory.shape == (101, 4)
    for i in range(4):
        means = block_means(r.trajectory[:, i])
        assert np.all(np.diff(means) > 0), means
    steps_up = np.mean(np.diff(r.trajectory, axis=0) > 0)
    assert steps_up > 0.9
    assert np.all(r.final_objective > r.trajectory[0])


def test_clipping_is_respected_with_every_regulariser_on(small_cnn):
    r = activation_maximization(small_cnn, 1, shape=(1, 12, 12), n=3, steps=60, lr=0.2, clip=(-0.5, 0.25),
                                l2=0.01, l1=0.01, tv=0.1, blur_every=3, blur_sigma=0.8, jitter=2, init_scale=1.0)
    assert r.inputs.shape == (3, 1, 12, 12)
    assert r.inputs.min() >= -0.5 and r.inputs.max() <= 0.25
    assert block_means(r.trajectory[:, 0])[-1] > block_means(r.trajectory[:, 0])[0]
    # without regularisers ascent on a piecewise-linear network drives pixels onto the bounds
    r = activation_maximization(small_cnn, 1, shape=(1, 12, 12), steps=100, lr=0.05, clip=(-0.5, 0.25))
    assert r.inputs.min() >= -0.5 and r.inputs.max() <= 0.25
    assert np.mean((r.inputs == 0.25) | (r.inputs == -0.5)) > 0.5


def test_final_objective_matches_the_layer_it_names(small_cnn):
    x = None
    r = activation_maximization(small_cnn, channel("features.3", [3, 5]), shape=(1, 10, 10), steps=30)
    with torch.no_grad():
        act = small_cnn.features[:4](torch.as_tensor(r.inputs))
    np.testing.assert_allclose(r.final_objective, [act[0, 3].mean(), act[1, 5].mean()], rtol=1e-5)
    assert r.final_objective[0] > r.trajectory[0, 0]
    r = activation_maximization(small_cnn, neuron("features.0", (2, 4, 4)), shape=(1, 10, 10), steps=30)
    with torch.no_grad():
        x = small_cnn.features[0](torch.as_tensor(r.inputs))
    np.testing.assert_allclose(r.final_objective, [x[0, 2, 4, 4]], rtol=1e-5)
    r = activation_maximization(small_cnn, class_logit(2), shape=(1, 10, 10), steps=5)
    np.testing.assert_allclose(r.final_objective, r.scores[:, 2], rtol=1e-6)


def test_time_series_objective_increases():
    torch.manual_seed(0)
    model = CNN1d(3, 2, channels=(4, 8), kernel_size=5).eval()
    r = activation_maximization(model, [0, 1], shape=(3, 40), steps=80, lr=0.02, tv=0.01, blur_every=5,
                                jitter=3, clip=(-1, 1))
    assert r.inputs.shape == (2, 3, 40)
    assert np.all(np.abs(r.inputs) <= 1)
    assert np.all(r.final_objective > r.trajectory[0])


def test_generator_prior_optimises_the_latent_code(small_cnn):
    torch.manual_seed(1)
    generator = nn.Sequential(nn.Linear(6, 144), nn.Sigmoid(), nn.Unflatten(1, (1, 12, 12)))
    state = model_state(generator)
    r = activation_maximization(small_cnn, 0, generator=generator, latent_shape=(6,), n=2, steps=60, lr=0.05)
    assert r.latent.shape == (2, 6) and r.inputs.shape == (2, 1, 12, 12)
    with torch.no_grad():
        np.testing.assert_allclose(generator(torch.as_tensor(r.latent)).numpy(), r.inputs, rtol=1e-6)
    assert np.all(r.final_objective > r.trajectory[0])
    assert_same_state(state, model_state(generator))
    with pytest.raises(ValueError, match="latent_shape"):
        activation_maximization(small_cnn, 0, generator=generator)


def test_seeded_and_model_left_as_found_even_on_error(small_cnn):
    small_cnn.train()
    state = model_state(small_cnn)
    a = activation_maximization(small_cnn, 3, shape=(1, 8, 8), steps=10, jitter=1, seed=7)
    b = activation_maximization(small_cnn, 3, shape=(1, 8, 8), steps=10, jitter=1, seed=7)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert_same_state(state, model_state(small_cnn))
    with pytest.raises(ValueError, match="candidates"):
        activation_maximization(small_cnn, channel("nope", 0), shape=(1, 8, 8))
    with pytest.raises(ValueError, match="4 indices but 2"):
        activation_maximization(small_cnn, [0, 1, 2, 3], n=2, shape=(1, 8, 8))
    with pytest.raises(ValueError, match="out of range"):
        activation_maximization(small_cnn, channel("features.4", 8), shape=(1, 8, 8))
    with pytest.raises(ValueError, match="out of range"):
        activation_maximization(small_cnn, 4, shape=(1, 8, 8))
    with pytest.raises(TypeError, match="objective"):
        activation_maximization(small_cnn, "cat", shape=(1, 8, 8))
    with pytest.raises(ValueError, match="clip"):
        activation_maximization(small_cnn, 0, shape=(1, 8, 8), clip=(1, 0))
    assert_same_state(state, model_state(small_cnn))


def test_total_variation_formula():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 1.0]]]])
    # horizontal differences 1, -2; vertical differences 3, 0
    assert float(total_variation(x)[0]) == pytest.approx(1 + 4 + 9 + 0)


@pytest.fixture(scope="module")
def mnist_cnn():
    from lumos.data import load_mnist
    from lumos.models.train import accuracy, fit

    from conftest import shared_data

    shared_data("mnist.npz")
    ds = load_mnist()
    model = fit(CNN2d(1, 10, channels=(8, 16, 32)), ds.X_train, ds.y_train, epochs=3, lr=3e-3, seed=0)
    assert accuracy(model, ds.X_test, ds.y_test) > 0.85
    return model, ds


def test_unregularised_maximisation_on_mnist_is_confident_noise(mnist_cnn):
    model, ds = mnist_cnn
    r = activation_maximization(model, class_log_probability(list(range(10))), shape=(1, 28, 28), clip=(0, 1),
                                steps=300, lr=0.02, seed=0)
    confidence = r.probabilities()[np.arange(10), np.arange(10)]
    assert np.all(confidence > 0.95), confidence
    assert np.array_equal(r.probabilities().argmax(1), np.arange(10))
    # ... yet it does not look like a digit: its correlation with the class's mean image is far
    # below that of real test digits, and its ink is spread over the frame that real digits leave blank
    means = np.stack([ds.X_train[ds.y_train == k, 0].mean(0).ravel() for k in range(10)])
    corr = [np.corrcoef(r.inputs[k, 0].ravel(), means[k])[0, 1] for k in range(10)]
    real = [np.corrcoef(x.ravel(), means[y])[0, 1] for x, y in zip(ds.X_test[:300, 0], ds.y_test[:300])]
    assert np.mean(corr) < 0.5 * np.mean(real), (corr, np.mean(real))
    assert border_ink(r.inputs).min() > 5 * border_ink(ds.X_test[:300]).mean()


def border_ink(images, width=4):
    """Fraction of each image's total intensity in its outer frame of ``width`` pixels."""
    inner = images[:, 0, width:-width, width:-width].reshape(len(images), -1).sum(1)
    total = images[:, 0].reshape(len(images), -1).sum(1)
    return 1 - inner / total
