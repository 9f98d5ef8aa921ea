"""Layer representations and linear probes."""
import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from lumos.analysis import layer_activations, probe, representations


class LabelInside(nn.Module):
    """Input = [8 noise features | one-hot label]. ``copy`` keeps the one-hot label (so the
    label is linearly decodable there by construction); ``random`` is a fixed random ReLU
    projection of the noise features only (independent of the label)."""

    def __init__(self, n_noise=8, n_classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.n_noise = n_noise
        self.copy = nn.Linear(n_classes, n_classes, bias=False)
        self.random = nn.Sequential(nn.Linear(n_noise, 32), nn.ReLU())
        self.head = nn.Linear(n_classes + 32, n_classes)
        with torch.no_grad():
            self.copy.weight.copy_(torch.eye(n_classes))

    def forward(self, x):
        return self.head(torch.cat([self.copy(x[:, self.n_noise:]), self.random(x[:, : self.n_noise])], 1))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = np.concatenate([rng.normal(size=(400, 8)), np.eye(4)[y]], 1).astype(np.float32)
    return x, y


def test_probe_is_perfect_where_the_label_is_and_at_chance_on_random_features(data):
    x, y = data
    model = LabelInside()
    state = model_state(model)
    result = probe(model, ["copy", "random"], x, y, cv=5, seed=0)
    acc = result.as_dict()
    assert acc["copy"] == 1.0
    assert abs(acc["random"] - 0.25) < 0.08, acc  # four balanced classes: chance is 1/4
    assert result.chance == pytest.approx(np.bincount(y).max() / len(y))
    assert result.fold_scores.shape == (2, 5)
    assert result.n_units == [4, 32]
    assert_same_state(state, model_state(model))


def test_layer_activations_are_batched_and_match_a_direct_pass(data):
    x, _ = data
    model = LabelInside()
    acts = layer_activations(model, ["input", "copy", "random"], x, batch_size=64)
    with torch.no_grad():
        direct = model.random(torch.as_tensor(x[:, :8])).numpy()
    np.testing.assert_allclose(acts["random"], direct, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(acts["input"], x)
    np.testing.assert_array_equal(acts["copy"], x[:, 8:])


def test_pca_projection_equals_sklearn_on_the_layer(data):
    from sklearn.decomposition import PCA

    x, y = data
    model = LabelInside()
    rep = representations(model, "random", x, y, method="pca", seed=0)
    expected = PCA(2, random_state=0).fit_transform(layer_activations(model, ["random"], x)["random"])
    np.testing.assert_allclose(rep.embedding, expected, rtol=1e-6, atol=1e-6)
    assert rep.activations.shape == (400, 32) and rep.embedding.shape == (400, 2)
    assert rep.explained_variance_ratio.shape == (2,)
    rep.plot()


def test_tsne_separates_the_label_layer(data):
    x, y = data
    rep = representations(LabelInside(), "copy", x[:120], y[:120], method="tsne", perplexity=20, seed=0)
    centroids = np.stack([rep.embedding[y[:120] == k].mean(0) for k in range(4)])
    spread = max(rep.embedding[y[:120] == k].std(0).max() for k in range(4))
    gaps = [np.linalg.norm(centroids[i] - centroids[j]) for i in range(4) for j in range(i)]
    assert min(gaps) > 3 * spread


def test_clear_errors(data):
    x, y = data
    model = LabelInside()
    with pytest.raises(ValueError, match="candidates"):
        probe(model, ["nope"], x, y)
    with pytest.raises(ValueError, match="one entry per input"):
        probe(model, ["copy"], x, y[:10])
    with pytest.raises(ValueError, match="method"):
        representations(model, "copy", x, method="umap")
    with pytest.raises(ValueError, match="rarest label"):
        probe(model, ["copy"], x[:5], np.array([0, 0, 0, 1, 1]), cv=3)
    with pytest.raises(TypeError, match="torch model"):
        representations(lambda z: z, "copy", x)
