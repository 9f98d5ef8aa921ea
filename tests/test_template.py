"""The explainer template (#15) and the safety fixes that ride on it (#14 items 4-6):
stateless calls on a private view of the model, thread safety, layer references kept by
name, one memory knob, declared capabilities, seeds independent of the chunking, and the
silent wrong answers that are now errors."""
from __future__ import annotations

import copy
import itertools
import threading

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.core import registry
from lumos.core.batching import RowBudget
from lumos.methods.base import Explainer

HOOKED = ["saliency", "lrp", "deep_taylor", "grad_cam", "grad_cam_plus_plus", "guided_backprop", "deconvnet",
          "guided_grad_cam", "cam"]


def bn_cnn(seed: int = 0) -> nn.Module:
    """A 1-D CNN with a batch norm (folded by LRP), in-place ReLUs and a GAP head (CAM)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.BatchNorm1d(6), nn.ReLU(inplace=True),
                          nn.Conv1d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def series():
    return np.random.default_rng(0).normal(size=(10, 2, 16)).astype(np.float32)


def snapshot(model: nn.Module) -> dict:
    return {"modes": [m.training for m in model.modules()],
            "grads": [p.requires_grad for p in model.parameters()],
            "inplace": [getattr(m, "inplace", None) for m in model.modules()],
            "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
            "storage": [p.untyped_storage().data_ptr() for p in model.parameters()],
            "versions": [p._version for p in model.parameters()] + [b._version for b in model.buffers()],
            "values": [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]}


def assert_untouched(before: dict, after: dict) -> None:
    for key in ("modes", "grads", "inplace", "hooks", "storage", "versions"):
        assert before[key] == after[key], f"the user's model changed: {key}"
    for a, b in zip(before["values"], after["values"]):
        assert torch.equal(a, b)


def explainer(name: str, model):
    return registry.get(name)(model)


# -- the template ------------------------------------------------------------------------
def test_explain_is_the_one_entry_point():
    import lumos.methods  # noqa: F401

    for name, cls in registry.available().items():
        assert cls.explain is Explainer.explain, f"{name} overrides explain()"
        assert any("attribute_chunk" in vars(k) for k in cls.__mro__ if k is not Explainer), name


@pytest.mark.parametrize("name", HOOKED)
def test_the_users_model_is_never_written(name, series):
    model = bn_cnn()
    model.train()
    model[3].weight.requires_grad_(False)
    handle = model.register_forward_hook(lambda m, i, o: None)
    before = snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        explainer(name, model).explain(series)
    assert_untouched(before, snapshot(model))
    handle.remove()


def test_lrp_folding_keeps_a_pending_backward_valid(series):
    """Batch-norm folding used to write into the weights: a loss computed before the call
    could not be back-propagated afterwards ("modified by an inplace operation")."""
    model = bn_cnn()
    loss = model(torch.as_tensor(series)).logsumexp(1).mean()
    before = snapshot(model)
    for name in ("lrp", "deep_taylor"):
        exp = explainer(name, model).explain(series)
        assert np.isfinite(exp.values).all()
    assert_untouched(before, snapshot(model))
    loss.backward()  # raises if a parameter saved for backward was modified in place
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("a,b", list(itertools.combinations(HOOKED, 2)))
def test_concurrent_explanations_equal_sequential_ones(a, b, series):
    model = bn_cnn()
    before = snapshot(model)
    ea, eb = explainer(a, model), explainer(b, model)
    want = {a: ea.explain(series).values, b: eb.explain(series).values}
    got, errors = {a: [], b: []}, []
    start = threading.Barrier(2)

    def work(name, exp):
        try:
            start.wait()
            for _ in range(6):
                got[name].append(exp.explain(series).values)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(a, ea)), threading.Thread(target=work, args=(b, eb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name in (a, b):
        for v in got[name]:
            np.testing.assert_array_equal(v, want[name])
    assert_untouched(before, snapshot(model))


def test_training_beside_saliency_stays_in_training_mode(series):
    """A user training in one thread while saliency ran in another had 267 of 300 steps in eval mode."""
    model = bn_cnn()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.as_tensor(series), torch.arange(len(series)) % 3
    modes, stop = [], threading.Event()

    def explain_loop():
        sal = lumos.Saliency(model)
        while not stop.is_set():
            try:
                sal.explain(series)
            except ValueError as err:  # the weights moved between its forward and backward pass: said clearly
                assert "modified while it was being explained" in str(err)

    worker = threading.Thread(target=explain_loop)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model has batch-norm layers in training mode"
        worker.start()
        try:
            for _ in range(60):
                modes.append(all(m.training for m in model.modules()))
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                assert all(p.grad is not None for p in model.parameters())
                opt.step()
        finally:
            stop.set()
            worker.join()
    assert all(modes)
    assert all(p.requires_grad for p in model.parameters())


def test_explainers_keep_no_per_call_state(series):
    model = bn_cnn()
    ig = lumos.IntegratedGradients(model, n_steps=8)
    before = dict(vars(ig))
    ig.explain(series, baseline=0.5)
    assert vars(ig).keys() == before.keys()


# -- layer references ------------------------------------------------------------------
def test_a_layer_object_is_kept_by_name_and_survives_copies(series):
    model = bn_cnn()
    cam = lumos.GradCAM(model, layer=model[3])
    assert cam.layer == "3" and cam.params()["layer"] == "3"
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)
    rebound = cam.with_model(other)
    assert rebound.explain(series).meta["layer"] == "3"
    np.testing.assert_array_equal(cam.explain(series).values, lumos.GradCAM(model, layer="3").explain(series).values)


# -- one memory knob ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["saliency", "integrated_gradients", "smoothgrad", "lrp", "grad_cam"])
def test_batch_size_does_not_change_the_result(name, series):
    model = bn_cnn()
    cls = registry.get(name)
    a = cls(model, batch_size=3).explain(series)
    b = cls(model).explain(series)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
    assert a.params["batch_size"] == 3


def test_row_budget_sizes_calls_from_element_counts():
    budget = RowBudget()
    assert budget.rows(784, "backward") == 2**18 // 784
    assert budget.rows(10**7, "backward") == 16 and budget.rows(1, "forward") == 65536
    assert RowBudget(7).rows(784) == 7
    assert RowBudget(100).inputs_per_chunk(784, expansion=50) == 2
    with pytest.raises(ValueError, match="batch_size"):
        RowBudget(0)


# -- options ---------------------------------------------------------------------------
def test_unknown_options_name_the_public_option():
    model = bn_cnn()
    with pytest.raises(TypeError, match=r"unknown option 'baselin'.*did you mean 'baseline'"):
        lumos.IntegratedGradients(model).explain(np.zeros((2, 2, 16), np.float32), baselin=0)
    with pytest.raises(TypeError, match=r"'n_steps' configures the method: pass it to the constructor"):
        lumos.IntegratedGradients(model).explain(np.zeros((2, 2, 16), np.float32), n_steps=4)


def test_options_of_is_public():
    opts = registry.options_of("integrated_gradients")
    assert opts["n_steps"].where == "config" and opts["n_steps"].default == 50
    assert opts["baseline"].where in ("config", "call")
    assert registry.options_of("lrp")["layer"].where == "call"


# -- seeds -------------------------------------------------------------------------------
def test_smoothgrad_rows_do_not_depend_on_batch_or_chunking(series):
    model = bn_cnn()
    sg = lumos.SmoothGrad(model, n_samples=6, seed=4)
    whole = sg.explain(series).values
    np.testing.assert_allclose(lumos.SmoothGrad(model, n_samples=6, seed=4, batch_size=5).explain(series).values,
                               whole, rtol=1e-5, atol=1e-7)
    tail = sg.explain(series[4:], row_offset=4).values
    np.testing.assert_allclose(tail, whole[4:], rtol=1e-5, atol=1e-7)


def test_seed_none_draws_a_fresh_seed_and_records_it(series):
    model = bn_cnn()
    a = lumos.SmoothGrad(model, n_samples=4, seed=None).explain(series)
    b = lumos.SmoothGrad(model, n_samples=4, seed=None).explain(series)
    assert a.params["seed"] != b.params["seed"]
    assert not np.allclose(a.values, b.values)
    replay = lumos.SmoothGrad(model, n_samples=4, seed=a.params["seed"]).explain(series)
    np.testing.assert_array_equal(replay.values, a.values)


def test_smoothgrad_draws_the_same_noise_in_float64(series):
    model = bn_cnn()
    f32 = lumos.SmoothGrad(model, n_samples=8, seed=1).explain(series).values
    f64 = lumos.SmoothGrad(copy.deepcopy(model).double(), n_samples=8, seed=1).explain(series.astype(np.float64)).values
    np.testing.assert_allclose(f64, f32, rtol=1e-3, atol=1e-5)


# -- silent wrong answers are errors -----------------------------------------------------
class SkipInPlace(nn.Module):
    def __init__(self, functional_relu: bool):
        super().__init__()
        self.functional_relu = functional_relu
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv1d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.conv(x)
        if self.functional_relu:
            h = nn.functional.relu(h, inplace=True)  # modifies conv's output after it was captured
        else:
            h = torch.relu(h)
            g = self.conv2(h)
            g += h  # modifies conv2's output in place
            h = g
        return self.head(h.mean(-1))


@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_plus_plus", "guided_grad_cam"])
@pytest.mark.parametrize("functional_relu,layer", [(True, "conv"), (False, "conv2")])
def test_layer_modified_in_place_is_refused(name, functional_relu, layer, series):
    torch.manual_seed(0)
    model = SkipInPlace(functional_relu)
    with pytest.raises(ValueError, match=r"modified in place.*choose the layer after"):
        registry.get(name)(model, layer=layer).explain(series)


class Rounded(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return torch.round(self.lin(x) * 4)


@pytest.mark.parametrize("name", ["saliency", "gradient_x_input", "integrated_gradients", "smoothgrad"])
def test_a_rounding_model_is_refused_by_gradient_methods(name):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"round.*no gradient path"):
        registry.get(name)(Rounded()).explain(x)


@pytest.mark.parametrize("name", ["occlusion", "lime", "kernel_shap", "exact_shapley"])
def test_complex_inputs_are_refused(name):
    x = (np.ones((3, 4)) + 1j).astype(np.complex64)
    options = {"background": np.zeros((2, 4))} if "shap" in name else {}
    with pytest.raises(TypeError, match="complex"):
        lumos.explain(lambda z: np.stack([z.sum(1), -z.sum(1)], 1), x, name, **options)


# -- capabilities ------------------------------------------------------------------------
def test_every_method_declares_its_capabilities():
    import lumos.methods  # noqa: F401

    for name, cls in registry.available().items():
        caps = cls.capabilities()
        assert set(caps["layouts"]) <= {"tabular", "timeseries", "image"}, name
        assert caps["scope"] in ("local", "global"), name
        if caps["stochastic"]:
            assert "seed" in registry.options_of(cls), name
    assert registry.get("grad_cam").needs_layer and not registry.get("grad_cam").torchscript
    assert registry.get("kernel_shap").needs_background
    assert registry.get("permutation_importance").needs_labels


def test_torchscript_runs_hook_free_methods(series):
    model = torch.jit.script(bn_cnn().eval())
    eager = lumos.Saliency(bn_cnn()).explain(series).values
    np.testing.assert_allclose(lumos.Saliency(model).explain(series).values, eager, rtol=1e-5, atol=1e-6)


# -- devices -----------------------------------------------------------------------------
def test_device_cpu_and_bad_devices(series):
    model = bn_cnn()
    np.testing.assert_array_equal(lumos.Saliency(model, device="cpu").explain(series).values,
                                  lumos.Saliency(model).explain(series).values)
    with pytest.raises(ValueError, match="not a torch device"):
        lumos.Saliency(model, device="gpu0").explain(series)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(set(HOOKED) | {"integrated_gradients", "smoothgrad", "gradient_x_input",
                                                       "occlusion", "kernel_shap", "lime"}))
def test_cuda_equals_cpu(name, series):
    model = bn_cnn()
    options = {"background": series[:2]} if name == "kernel_shap" else {}
    cls = registry.get(name)
    cpu = lumos.explain(model, series, name, **options).values
    gpu = cls(model, device="cuda").explain(series, **{k: v for k, v in options.items()}).values
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)
    assert next(model.parameters()).device.type == "cpu"  # the user's model stays where it was


def test_fx_graph_modules_keep_their_forward_in_the_view(series):
    import torch.fx

    model = bn_cnn().eval()
    traced = torch.fx.symbolic_trace(model)
    np.testing.assert_allclose(lumos.Saliency(traced).explain(series).values,
                               lumos.Saliency(model).explain(series).values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lumos.GradCAM(traced, layer="3").explain(series).values,
                               lumos.GradCAM(model, layer="3").explain(series).values, rtol=1e-5, atol=1e-7)


def test_recurrent_models_get_moderate_calls():
    from lumos.models import RecurrentClassifier

    budget = RowBudget().for_model(RecurrentClassifier(2, 3))  # a GRU: differentiated calls of 512 rows
    assert budget.rows(32, "forward") == 256 and budget.rows(32, "backward") == 512
    budget = RowBudget().for_model(RecurrentClassifier(2, 3, cell="lstm"))  # an LSTM: 128
    assert budget.rows(32, "forward") == 256 and budget.rows(32, "backward") == 128
    budget = RowBudget().for_model(torch.nn.RNN(3, 4))  # a plain RNN: 256 both ways
    assert budget.rows(32, "forward") == 256 and budget.rows(32, "backward") == 256
    assert RowBudget(4000).for_model(RecurrentClassifier(2, 3)).rows(32, "forward") == 4000  # the user's knob wins
    assert RowBudget().for_model(bn_cnn()).rows(32, "forward") == RowBudget().rows(32, "forward") > 256  # not capped


def test_chunks_are_balanced():
    from lumos.core.batching import balanced_slices

    for n, size in [(100, 64), (64, 25), (0, 5), (7, 7), (8, 7), (13, 1), (640, 51)]:
        sizes = [s.stop - s.start for s in balanced_slices(n, size)]
        assert sum(sizes) == n and max(sizes, default=0) <= size and len(sizes) == -(-n // size)
        assert max(sizes, default=0) - min(sizes, default=0) <= 1
