"""Core: Explanation, model adapter, guard, validation, batching, registry."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lumos
from lumos.core.batching import chunk_slices, expansion_chunks
from lumos.core.explanation import Explanation, stack
from lumos.core.guard import model_guard
from lumos.core.hooks import capture_activations, find_layer
from lumos.core.model import ModelAdapter
from lumos.methods.gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from lumos.models import CNN2d, MLP
from conftest import assert_same_state, model_state


# -- Explanation ------------------------------------------------------------------
def make_explanation(rng, n=4):
    return Explanation(
        values=rng.normal(size=(n, 3, 5)).astype(np.float32), target=np.arange(n) % 2, method="demo",
        params={"n_steps": np.int64(5), "arr": np.arange(3), "fn": len}, prediction=rng.normal(size=(n, 2)),
        base_value=rng.normal(size=n), delta=rng.normal(size=n), feature_names=["a", "b", "c"],
        extras={"raw": rng.normal(size=(n, 2)), "scalar": np.float64(3.0)}, inputs=rng.normal(size=(n, 3, 5)),
    )


def test_explanation_save_load_round_trip_exactly(tmp_path, rng):
    exp = make_explanation(rng)
    path = exp.save(tmp_path / "exp")
    assert path.suffix == ".npz"
    back = Explanation.load(path)
    for name in ("values", "target", "prediction", "base_value", "delta", "inputs"):
        a, b = getattr(exp, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.params == exp.params == {"n_steps": 5, "arr": [0, 1, 2], "fn": repr(len)}
    assert back.feature_names == ["a", "b", "c"] and back.method == "demo"
    assert set(back.extras) == {"raw", "scalar"} and np.array_equal(back.extras["raw"], exp.extras["raw"])
    # no pickle inside
    with np.load(path, allow_pickle=False) as d:
        assert "__meta__" in d.files


def test_explanation_load_refuses_foreign_archives(tmp_path):
    np.savez(tmp_path / "x.npz", values=np.zeros(3))
    with pytest.raises(ValueError, match="not a lumos explanation"):
        Explanation.load(tmp_path / "x.npz")


def test_explanation_indexing_and_stack(rng):
    exp = make_explanation(rng, n=5)
    one = exp[1]
    assert one.values.shape == (1, 3, 5) and one.target.tolist() == [1]
    assert one.extras["raw"].shape == (1, 2) and one.extras["scalar"].shape == ()
    assert exp[-1].values.shape == (1, 3, 5)
    part = exp[1:4]
    assert len(part) == 3
    np.testing.assert_array_equal(stack([exp[:2], exp[2:]]).values, exp.values)
    with pytest.raises(IndexError):
        exp[5]
    np.testing.assert_allclose(exp.total(), exp.values.reshape(5, -1).sum(1))
    np.testing.assert_allclose(exp.target_score(), exp.prediction[np.arange(5), exp.target])


def test_global_explanation_is_not_indexable():
    g = Explanation(values=np.ones(4), method="pfi", scope="global")
    with pytest.raises(TypeError, match="global"):
        g[0]


def test_explanation_plot_all_layouts(rng):
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    for model, x in ((MLP(6, 2), rng.normal(size=(2, 6))), (CNN2d(1, 2, channels=(4,)), rng.normal(size=(2, 1, 8, 8)))):
        ax = Saliency(model.double()).explain(x).plot().axes[0]
        assert ax.get_title().startswith("saliency")


# -- model adapter -------------------------------------------------------------------
def test_adapter_callable_and_chunking(rng):
    w = rng.normal(size=(5, 3))
    fn = lambda a: a @ w  # noqa: E731
    x = rng.normal(size=(23, 5))
    ad = ModelAdapter(fn, batch_size=4)
    np.testing.assert_allclose(ad.scores(x), x @ w)
    sm = ModelAdapter(fn, output="softmax").scores(x)
    np.testing.assert_allclose(sm.sum(1), 1.0)
    assert ModelAdapter(lambda a: a.sum(1)).scores(x).shape == (23, 1)


def test_adapter_targets():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    ad = ModelAdapter(lambda a: a)
    assert ad.targets(None, scores).tolist() == [1, 0, 1]
    assert ad.targets(0, scores).tolist() == [0, 0, 0]
    assert ad.targets([1, 1, 0], scores).tolist() == [1, 1, 0]
    assert ad.targets(torch.tensor([0, 1, 1]), scores).tolist() == [0, 1, 1]


@pytest.mark.parametrize("fn, match", [
    (lambda a: np.full((len(a), 2), np.nan), "NaN"),
    (lambda a: np.zeros((len(a) + 1, 2)), "shape"),
    (lambda a: np.zeros((len(a), 2, 2)), "shape"),
    (lambda a: np.array(["x"] * len(a)), "numeric"),
])
def test_adapter_rejects_bad_model_outputs(fn, match, rng):
    with pytest.raises((ValueError, TypeError), match=match):
        ModelAdapter(fn).scores(rng.normal(size=(3, 4)))


def test_adapter_reads_tuple_outputs():
    class WithAttention(nn.Module):
        def forward(self, x):
            return x * 2, torch.ones(1)

    out = ModelAdapter(WithAttention()).scores(np.ones((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(out, 2 * np.ones((2, 3)))


# -- bad input: clear messages ----------------------------------------------------------
@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return MLP(4, 3, hidden=(8,))


def test_bad_inputs_name_the_problem(mlp, rng):
    x = rng.normal(size=(2, 4)).astype(np.float32)
    ig = IntegratedGradients(mlp)
    with pytest.raises(ValueError, match="batch axis"):
        ig.explain(x[0])
    with pytest.raises(ValueError, match="could not process inputs of shape"):
        ig.explain(rng.normal(size=(2, 5)).astype(np.float32))
    bad = x.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ig.explain(bad)
    bad[0, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        ig.explain(bad)
    with pytest.raises(ValueError, match=r"target 3 out of range.*3 output"):
        ig.explain(x, target=3)
    with pytest.raises(ValueError, match="out of range"):
        ig.explain(x, target=-1)
    with pytest.raises(ValueError, match="2 inputs"):
        ig.explain(x, target=[0, 1, 2])
    with pytest.raises(TypeError, match="target must be"):
        ig.explain(x, target="cat")
    with pytest.raises(TypeError, match="floating-point"):
        ig.explain(np.ones((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="baseline shape"):
        ig.explain(x, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        ig.explain(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(TypeError, match=r"unknown option .n_step. \(did you mean .n_steps.\?\)"):
        ig.explain(x, n_step=3)


def test_bad_configuration_is_refused(mlp):
    with pytest.raises(ValueError, match="n_steps"):
        IntegratedGradients(mlp, n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        IntegratedGradients(mlp, method="simpson")
    with pytest.raises(ValueError, match="variant"):
        SmoothGrad(mlp, variant="median")
    with pytest.raises(ValueError, match="noise_level"):
        SmoothGrad(mlp, noise_level=-1)
    with pytest.raises(ValueError, match="output must be one of"):
        Saliency(mlp, output="probs")
    with pytest.raises(TypeError, match="needs gradients"):
        Saliency(lambda a: a)
    with pytest.raises(ValueError, match="unknown method"):
        lumos.explain(mlp, np.zeros((1, 4), np.float32), method="magic")


def test_non_differentiable_model_gets_clear_error(rng):
    class Rounded(nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x.argmax(1), 3).float()

    with pytest.raises(ValueError, match="no gradient path"):
        Saliency(Rounded()).explain(rng.normal(size=(2, 3)).astype(np.float32))


# -- the model is left as found -------------------------------------------------------------
class Fragile(nn.Module):
    """Raises on the first forward pass that needs a gradient (mid-way through IG)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(inplace=True), nn.Linear(8, 2))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("boom mid-way")
        return self.net(x)


def test_model_restored_after_explainer_raises(rng):
    model = Fragile()
    model.train()
    model.net[0].weight.requires_grad_(False)
    handle = model.net[2].register_forward_hook(lambda *a: None)
    before = model_state(model)
    with pytest.warns(UserWarning, match="training mode"):
        with pytest.raises(ValueError, match="boom mid-way"):
            IntegratedGradients(model).explain(rng.normal(size=(3, 4)).astype(np.float32))
    assert_same_state(before, model_state(model))
    assert model.training and model.net[3].inplace
    handle.remove()


def test_guard_removes_hooks_added_inside_even_on_error(mlp):
    before = model_state(mlp)
    with pytest.raises(RuntimeError):
        with model_guard(mlp):
            mlp[0].register_forward_hook(lambda *a: None)
            mlp[0].register_full_backward_hook(lambda *a: None)
            assert not mlp.training and not any(p.requires_grad for p in mlp.parameters())
            raise RuntimeError("x")
    assert_same_state(before, model_state(mlp))


def test_explainers_leave_model_unchanged(mlp, rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    before = model_state(mlp)
    for explainer in (Saliency(mlp), GradientXInput(mlp), SmoothGrad(mlp, n_samples=4), IntegratedGradients(mlp)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            explainer.explain(x)
        assert_same_state(before, model_state(mlp))


# -- hooks, batching, registry --------------------------------------------------------------
def test_find_layer_lists_candidates():
    model = CNN2d(1, 2)
    assert find_layer(model, "classifier")[1] is model.classifier
    assert find_layer(model, model.gap)[0] == "gap"
    with pytest.raises(ValueError, match="candidates: .*features"):
        find_layer(model, "conv9")


def test_capture_activations_keeps_graph(rng):
    torch.manual_seed(0)
    model = CNN2d(1, 2, channels=(4,)).double()
    x = torch.as_tensor(rng.normal(size=(2, 1, 6, 6)))
    with capture_activations(model, ["features"]) as acts:
        y = model(x)[:, 0].sum()
    (g,) = torch.autograd.grad(y, acts["features"])
    assert g.shape == acts["features"].shape
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 40), st.integers(1, 50))
def test_expansion_chunks_cover_each_pair_once(n_inputs, n_copies, max_rows):
    seen = np.zeros((n_inputs, n_copies), dtype=int)
    for rows, copies in expansion_chunks(n_inputs, n_copies, max_rows):
        assert (rows.stop - rows.start) * (copies.stop - copies.start) <= max(max_rows, 1) or copies.stop - copies.start <= max_rows
        seen[rows, copies] += 1
    assert (seen == 1).all()
    assert sum(s.stop - s.start for s in chunk_slices(n_inputs, max_rows)) == n_inputs


def test_registry_and_explain_dispatch(mlp, rng):
    names = lumos.list_methods()
    assert {"saliency", "gradient_x_input", "smoothgrad", "integrated_gradients"} <= set(names)
    x = rng.normal(size=(2, 4)).astype(np.float32)
    exp = lumos.explain(mlp, x, method="IG", n_steps=10, baseline=0.5)
    assert exp.method == "integrated_gradients" and exp.params["n_steps"] == 10
    ref = IntegratedGradients(mlp, n_steps=10).explain(x, baseline=0.5)
    np.testing.assert_array_equal(exp.values, ref.values)
