"""Sanity checks: randomised layers change gradient explanations while an edge detector of
the input stays unchanged (so the check can fail); the user's model is never touched;
similarity measures are exact on known cases; SSIM equals scikit-image's."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import assert_same_state, model_state, shared_data
from lumos import Saliency, SmoothGrad
from lumos.metrics import label_randomisation, model_randomisation, spearman, ssim, topk_intersection
from lumos.models.reference import CNN2d
from lumos.models.train import fit


@pytest.fixture(scope="module")
def mnist_cnn():
    with np.load(shared_data("mnist.npz")) as d:
        idx = d["subset_train_idx"][:600]
        X = (d["X_train"][idx, None] / 255.0).astype(np.float32)
        y = d["y_train"][idx].astype(np.int64)
    torch.manual_seed(0)
    model = fit(CNN2d(1, 10, channels=(8, 16)), X, y, epochs=2, lr=3e-3, seed=0)
    return model, X, y


def edges(inputs, target, model=None):
    """An 'explainer' that ignores the model: the Sobel edge magnitude of the input."""
    return np.hypot(ndimage.sobel(inputs, axis=-1), ndimage.sobel(inputs, axis=-2))


def test_cascading_randomisation_changes_gradients_not_edges(mnist_cnn):
    model, X, _ = mnist_cnn
    x = X[:12]
    before = model_state(model)
    for explainer in (Saliency(model), SmoothGrad(model, n_samples=8, seed=0)):
        res = model_randomisation(explainer, model, x, mode="cascading")
        assert res.stages == ["classifier", "features.3", "features.0"]
        assert res.mean("spearman")[-1] < 0.5 and res.passed, res.verdict
        assert res.verdict.startswith("pass")
    edge = model_randomisation(edges, model, x, mode="cascading")
    np.testing.assert_allclose(edge.scores["spearman"], 1.0)
    np.testing.assert_allclose(edge.scores["ssim"], 1.0)
    assert not edge.passed and edge.verdict.startswith("FAIL")
    assert_same_state(before, model_state(model))


def test_independent_randomisation_and_label_randomisation(mnist_cnn):
    model, X, y = mnist_cnn
    x = X[:8]
    before = model_state(model)
    ind = model_randomisation(Saliency(model), model, x, mode="independent", similarities=("spearman", "topk"))
    assert ind.stages == ["features.0", "features.3", "classifier"] and ind.scores["topk"].shape == (3, 8)
    assert ind.passed
    calls = []

    def train(m, X_train, y_perm):
        calls.append(np.array_equal(np.sort(y_perm), np.sort(y[:300])))
        return fit(m, X_train, y_perm, epochs=1, lr=3e-3, seed=0)

    lab = label_randomisation(Saliency(model), model, x, train, X[:300], y[:300])
    assert calls == [True] and lab.passed, lab.verdict
    edge = label_randomisation(edges, model, x, train, X[:300], y[:300])
    assert not edge.passed
    assert_same_state(before, model_state(model))


def test_unbindable_explainer_warns(mnist_cnn):
    model, X, _ = mnist_cnn
    with pytest.warns(UserWarning, match="cannot be given the randomised model"):
        res = model_randomisation(lambda x, t: edges(x, t), model, X[:2])
    assert not res.passed


def test_similarity_measures_exact():
    rng = np.random.default_rng(0)
    a = rng.random((3, 1, 8, 8))
    np.testing.assert_allclose(spearman(a, a), 1.0)
    np.testing.assert_allclose(spearman(a, -a), -1.0)
    np.testing.assert_allclose(spearman(a, 2 * a ** 3 + 1), 1.0)  # monotone maps keep ranks
    np.testing.assert_allclose(topk_intersection(a, a, 0.25), 1.0)
    b = a.copy()
    flat = b.reshape(3, -1)
    top = np.argsort(-flat, axis=1)[:, :16]
    np.put_along_axis(flat, top, -1.0, axis=1)  # the top quarter becomes the bottom
    np.testing.assert_allclose(topk_intersection(a, b, 16), 0.0)
    np.testing.assert_allclose(ssim(a, a), 1.0)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 20, 24)), rng.random((4, 20, 24))
    b[:2] = 0.7 * a[:2] + 0.3 * b[:2]
    ours = ssim(a, b)
    unit = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    ref = [metrics.structural_similarity(unit(p), unit(q), data_range=1.0) for p, q in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_bad_arguments(mnist_cnn):
    model, X, _ = mnist_cnn
    with pytest.raises(ValueError, match="mode"):
        model_randomisation(Saliency(model), model, X[:2], mode="random")
    with pytest.raises(ValueError, match="unknown layers"):
        model_randomisation(Saliency(model), model, X[:2], layers=["nope"])
    with pytest.raises(ValueError, match="spearman"):
        model_randomisation(Saliency(model), model, X[:2], similarities=("ssim",))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        model_randomisation(edges, lambda x: x.reshape(len(x), -1)[:, :2], X[:2])


@pytest.fixture
def small_cnn():
    from lumos.models import CNN2d as SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(1, 3, channels=(4, 8))  # features: conv 0, relu 1, pool 2, conv 3, relu 4
    x = np.random.default_rng(0).random((6, 1, 10, 10)).astype(np.float32)
    return model, x


def test_gradcam_with_a_layer_object_in_every_randomisation_metric(small_cnn):
    """The layer is given as a module OBJECT of the user's model; every randomised deep copy
    is explained with explainer.with_model(copy), which finds the copy's own layer."""
    from lumos import GradCAM
    from lumos.metrics import evaluate, randomisation_spearman

    model, x = small_cnn
    conv = model.features[3]
    assert isinstance(conv, torch.nn.Conv2d)
    explainer = GradCAM(model, layer=conv)
    before = model_state(model)
    original = explainer.explain(x).values
    for mode in ("cascading", "independent"):
        res = model_randomisation(explainer, model, x, mode=mode)
        assert res.stages == (["classifier", "features.3", "features.0"] if mode == "cascading"
                              else ["features.0", "features.3", "classifier"])
        assert all(np.isfinite(v).all() and v.shape == (3, len(x)) for v in res.scores.values())
        assert res.mean("spearman").min() < 0.99, res.verdict  # the copies were explained, not the model
    rho = randomisation_spearman(explainer, model, x)
    assert rho.shape == (len(x),) and np.isfinite(rho).all()
    lab = label_randomisation(explainer, model, x, lambda m, X, y: fit(m, X, y, epochs=1, lr=1e-2, seed=0),
                              x, np.arange(len(x)) % 3)
    assert lab.stages == ["label_randomised"] and np.isfinite(lab.scores["spearman"]).all()
    table = evaluate(model, x, None, {"grad_cam": explainer}, ["randomisation_spearman"], progress=False)
    mean = table[0]["mean"]
    np.testing.assert_allclose(mean, rho.mean())
    # the explainer itself is unchanged: it still explains the user's model with its layer
    assert explainer.model is model and explainer.layer == "features.3"
    np.testing.assert_array_equal(explainer.explain(x).values, original)
    assert_same_state(before, model_state(model))


def test_explainers_without_with_model_are_deep_copied_onto_the_copy(small_cnn):
    model, x = small_cnn

    class Wrapped:
        """A user's explainer object holding the model, without with_model."""

        name = "wrapped_saliency"

        def __init__(self, model):
            self.model = model

        def explain(self, inputs, target=None):
            return Saliency(self.model).explain(inputs, target=target)

    wrapped = Wrapped(model)
    ours = model_randomisation(wrapped, model, x, mode="independent", similarities=("spearman",))
    ref = model_randomisation(Saliency(model), model, x, mode="independent", similarities=("spearman",))
    np.testing.assert_allclose(ours.scores["spearman"], ref.scores["spearman"])
    assert wrapped.model is model
    cls = model_randomisation(Saliency, model, x, mode="independent", similarities=("spearman",))
    np.testing.assert_allclose(cls.scores["spearman"], ref.scores["spearman"])
