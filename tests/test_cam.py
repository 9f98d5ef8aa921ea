"""CAM family: exact properties of CAM / Grad-CAM / Grad-CAM++ / guided methods in 1-D
and 2-D and on recurrent outputs, clear errors, and the model left as found."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lumos
from lumos.methods.cam import CAM, Deconvnet, GradCAM, GradCAMPlusPlus, GuidedBackprop, GuidedGradCAM
from lumos.models import CNN1d, CNN2d, RecurrentClassifier
from conftest import assert_same_state, model_state


def _cnn1d():
    torch.manual_seed(0)
    return CNN1d(2, 3, channels=(8, 16, 16), kernel_size=5)


def _cnn2d():
    torch.manual_seed(0)
    return CNN2d(1, 4, channels=(8, 16), kernel_size=3)


@pytest.fixture
def series(rng):
    return rng.normal(size=(6, 2, 40)).astype(np.float32)


@pytest.fixture
def images(rng):
    return rng.normal(size=(4, 1, 12, 14)).astype(np.float32)


def _logits(model, x, target):
    with torch.no_grad():
        y = model(torch.as_tensor(x)).numpy()
    return y[np.arange(len(x)), target]


@pytest.mark.parametrize("make, data", [(_cnn1d, "series"), (_cnn2d, "images")])
@pytest.mark.parametrize("target", [None, 1])
def test_cam_mean_plus_bias_is_logit(make, data, target, request):
    model, x = make(), request.getfixturevalue(data)
    exp = CAM(model).explain(x, target=target)
    raw = exp.extras["layer_map"]
    assert exp.meta["layer"] == "features"
    assert raw.shape[0] == len(x) and raw.ndim == x.ndim - 1
    mean = raw.reshape(len(x), -1).mean(1)
    np.testing.assert_allclose(mean + exp.extras["bias"], _logits(model, x, exp.target), rtol=1e-5, atol=1e-5)
    assert exp.values.shape == (len(x), 1, *x.shape[2:])  # broadcastable to the input
    assert np.broadcast_shapes(exp.values.shape, x.shape) == x.shape


@pytest.mark.parametrize("make, data", [(_cnn1d, "series"), (_cnn2d, "images")])
def test_gradcam_is_relu_cam_over_positions(make, data, request):
    model, x = make(), request.getfixturevalue(data)
    cam = CAM(model).explain(x, target=2)
    grad = GradCAM(model, "features").explain(x, target=2)
    z = cam.extras["layer_map"][0].size
    np.testing.assert_allclose(grad.extras["layer_map"], np.maximum(cam.extras["layer_map"], 0) / z, atol=1e-7)
    mode = "linear" if x.ndim == 3 else "bilinear"
    up = F.interpolate(torch.as_tensor(np.maximum(cam.extras["layer_map"], 0) / z).unsqueeze(1), size=x.shape[2:],
                       mode=mode, align_corners=False).numpy()
    np.testing.assert_allclose(grad.values, up, atol=1e-7)


def test_upsampling_is_linear_interpolation(series, images):
    for model, x, mode in [(_cnn1d(), series, "linear"), (_cnn2d(), images, "bilinear")]:
        exp = GradCAM(model).explain(x)
        raw = torch.as_tensor(exp.extras["layer_map"]).unsqueeze(1)
        ref = F.interpolate(raw, size=x.shape[2:], mode=mode, align_corners=False).numpy()
        np.testing.assert_allclose(exp.values, ref, atol=1e-7)
    # a layer at the input's resolution is returned unchanged
    exp = GradCAM(_cnn1d(), "features.1").explain(series)
    np.testing.assert_array_equal(exp.values[:, 0], exp.extras["layer_map"])


def _manual_weights(model, layer, x, target, plus=False):
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    xt = torch.as_tensor(x).requires_grad_(True)
    y = model(xt)
    h.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(y[np.arange(len(x)), target].sum(), a)
    a, g = a.detach().numpy().astype(np.float64), g.numpy().astype(np.float64)
    axes = tuple(range(2, a.ndim))
    if not plus:
        return a, g.mean(axes)
    s = a.sum(axes, keepdims=True)
    den = 2 * g**2 + s * g**3
    alpha = np.where(den != 0, g**2 / np.where(den != 0, den, 1), 0)
    return a, (alpha * np.maximum(g, 0)).sum(axes)


@pytest.mark.parametrize("plus", [False, True])
def test_gradcam_matches_definition_on_inner_layer(images, plus):
    model = _cnn2d()
    layer = model.features[3]  # a conv layer with a nonlinear path to the output
    cls = GradCAMPlusPlus if plus else GradCAM
    exp = cls(model, layer).explain(images, target=[0, 1, 2, 3])
    a, w = _manual_weights(model, layer, images, np.array([0, 1, 2, 3]), plus)
    ref = np.maximum(np.einsum("nc...,nc->n...", a, w), 0)
    np.testing.assert_allclose(exp.extras["layer_map"], ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(exp.extras["channel_weights"], w, rtol=1e-4, atol=1e-7)
    assert exp.meta["layer"] == "features.3"


def test_gradcam_on_recurrent_outputs(series):
    torch.manual_seed(0)
    model = RecurrentClassifier(2, 3, hidden=8, cell="lstm", bidirectional=True)
    exp = GradCAM(model, "rnn", relu=False).explain(series, target=1)
    assert exp.extras["layer_map"].shape == (6, 40)  # one value per time step
    store = {}
    h = model.rnn.register_forward_hook(lambda m, i, o: store.__setitem__("a", o[0]))
    y = model(torch.as_tensor(series).requires_grad_(True))
    h.remove()
    (g,) = torch.autograd.grad(y[:, 1].sum(), store["a"])  # (N, T, H)
    ref = (store["a"] * g.mean(1, keepdim=True)).sum(2).detach().numpy()
    np.testing.assert_allclose(exp.extras["layer_map"], ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(exp.values[:, 0], exp.extras["layer_map"])  # already at input resolution


class ChannelsLast(nn.Module):
    """Linear over the channels of (N, T, C) then mean over time."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.proj(x.transpose(1, 2))).mean(1))


def test_channel_axis_can_be_given(series):
    torch.manual_seed(0)
    model = ChannelsLast()
    exp = GradCAM(model, "proj", channel_axis=-1, relu=False).explain(series, target=0)
    assert exp.extras["layer_map"].shape == (6, 40)
    assert exp.extras["channel_weights"].shape == (6, 5)


def test_wrong_layer_name_lists_candidates():
    with pytest.raises(ValueError, match=r"'nope' is not a module.*candidates: features"):
        GradCAM(_cnn1d(), "nope")


def test_layer_without_positions_lists_candidates(series):
    with pytest.raises(ValueError, match=r"no spatial or temporal axis.*candidates: .*features"):
        GradCAM(_cnn1d(), "classifier").explain(series)


def test_model_without_spatial_layers_raises(series):
    model = nn.Sequential(nn.Flatten(), nn.Linear(80, 8), nn.ReLU(), nn.Linear(8, 2))
    before = model_state(model)
    with pytest.raises(ValueError, match=r"no layer with a spatial or temporal axis"):
        GradCAM(model).explain(series)
    assert_same_state(before, model_state(model))
    with pytest.raises(ValueError, match=r"inputs shaped \(N, C, positions"):
        GradCAM(model).explain(series.reshape(6, -1))


def test_cam_refuses_models_without_gap_linear_head(series):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="CAM needs conv features -> global average pooling"):
        CAM(RecurrentClassifier(2, 3)).explain(series)
    with pytest.raises(ValueError, match="no nn.Linear"):
        CAM(nn.Sequential(nn.Conv1d(2, 3, 3), nn.AdaptiveMaxPool1d(1), nn.Flatten())).explain(series)
    with pytest.raises(ValueError, match="layer -> global average pooling -> linear"):
        CAM(_cnn1d(), "features.3").explain(series)
    with pytest.raises(ValueError, match="decomposes the logits"):
        CAM(_cnn1d(), output="softmax")


@pytest.mark.parametrize("cls", [CAM, GradCAM, GradCAMPlusPlus, GuidedBackprop, Deconvnet, GuidedGradCAM])
def test_model_left_as_found(cls, images):
    model = _cnn2d()
    model.train()
    model.features[1].inplace = True
    before = model_state(model)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    exp = cls(model).explain(images)
    assert exp.method == cls.name
    assert_same_state(before, model_state(model))
    assert model.features[1].inplace is True
    assert [m for m in model.modules() if isinstance(m, nn.ReLU)] == relus  # the ReLUs are the model's own


class _Guided(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, deconv):
        ctx.save_for_backward(x)
        ctx.deconv = deconv
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        out = g.clamp(min=0)
        return (out if ctx.deconv else out * (x > 0)), None


class _GuidedReLU(nn.Module):
    def __init__(self, deconv):
        super().__init__()
        self.deconv = deconv

    def forward(self, x):
        return _Guided.apply(x, self.deconv)


def _reference(model, x, target, deconv):
    ref = copy.deepcopy(model)
    for name, m in list(ref.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(m, child_name, _GuidedReLU(deconv))
    xt = torch.as_tensor(x).requires_grad_(True)
    y = ref(xt)
    (g,) = torch.autograd.grad(y[np.arange(len(x)), target].sum(), xt)
    return g.numpy()


@pytest.mark.parametrize("cls, deconv", [(GuidedBackprop, False), (Deconvnet, True)])
def test_guided_and_deconvnet_match_reference(cls, deconv, images):
    model = _cnn2d()
    exp = cls(model).explain(images, target=1)
    np.testing.assert_allclose(exp.values, _reference(model, images, np.full(4, 1), deconv), rtol=1e-5, atol=1e-7)
    # afterwards the plain gradient is back
    xt = torch.as_tensor(images).requires_grad_(True)
    (g,) = torch.autograd.grad(model(xt)[:, 1].sum(), xt)
    sal = lumos.explain(model, images, method="saliency", target=1, absolute=False).values
    np.testing.assert_allclose(sal, g.numpy(), rtol=1e-6)
    assert not np.allclose(sal, exp.values)


def test_guided_gradcam_is_product(images):
    model = _cnn2d()
    exp = GuidedGradCAM(model).explain(images, target=0)
    cam = GradCAM(model).explain(images, target=0).values
    gb = GuidedBackprop(model).explain(images, target=0).values
    np.testing.assert_allclose(exp.values, cam * gb, rtol=1e-6, atol=1e-9)
    assert exp.values.shape == images.shape


def test_guided_refuses_models_without_relu_modules(images):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.as_tensor(images))
    with pytest.raises(ValueError, match="has none"):
        GuidedBackprop(model).explain(images)


def test_registered_names(series):
    model = _cnn1d()
    for name in ["cam", "grad_cam", "gradcam++", "guided_backprop", "deconvnet", "guided_grad_cam"]:
        exp = lumos.explain(model, series, method=name)
        assert np.broadcast_shapes(exp.values.shape, series.shape) == series.shape


def test_eegnet_cam_over_time(rng):
    from lumos.models import EEGNet

    torch.manual_seed(0)
    model = EEGNet(4, 2, F1=4, D=2, kernel_length=15).eval()
    x = rng.normal(size=(3, 4, 96)).astype(np.float32)
    exp = CAM(model).explain(x)
    assert exp.meta["layer"] == "features" and exp.extras["layer_map"].shape == (3, 3)  # 96 / 32 steps
    np.testing.assert_allclose(exp.extras["layer_map"].mean(1) + exp.extras["bias"], _logits(model.eval(), x, exp.target),
                               rtol=1e-5, atol=1e-6)
    assert exp.values.shape == (3, 1, 96)
    with pytest.raises(ValueError, match="has none"):
        GuidedBackprop(model).explain(x)  # ELU only


def test_a_map_over_channels_and_time_keeps_the_channel_axis():
    """EEGNet-style models read the (C, T) epoch as a 1-channel image: a temporal conv's map
    over (C, T') is brought to the input's (C, T), shaped like the input."""
    class ImageView(nn.Module):
        def __init__(self):
            super().__init__()
            self.temporal = nn.Conv2d(1, 4, (1, 5), padding=(0, 3))
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.temporal(x[:, None]))  # (N, 4, C, T + 2)
            return self.head(h.mean((2, 3)))

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(3, 6, 20)).astype(np.float32)
    exp = GradCAM(ImageView(), layer="temporal").explain(x)
    assert exp.values.shape == (3, 6, 20) and exp.extras["layer_map"].shape == (3, 6, 22)
