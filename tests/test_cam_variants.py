"""CAM variants (lumos.methods.cam.variants): equal to pytorch-grad-cam on 2-D images after
its normalisation (min-max scaled, resized), and their defining properties on 1-D series
and 2-D images (pytorch-grad-cam has no 1-D support)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.methods.cam import (CAM, AblationCAM, EigenCAM, EigenGradCAM, FullGrad, GradCAM, HiResCAM, LayerCAM,
                               ScoreCAM, XGradCAM)
from lumos.methods.cam.variants import principal_projection
from lumos.models import CNN1d, CNN2d

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"hires_cam": HiResCAM, "layer_cam": LayerCAM, "xgrad_cam": XGradCAM, "eigen_cam": EigenCAM,
            "eigen_grad_cam": EigenGradCAM, "score_cam": ScoreCAM, "ablation_cam": AblationCAM, "full_grad": FullGrad}


def _pgc():
    """pytorch-grad-cam, with the benchmarks' torchvision stub (it imports torchvision for
    parts it does not use here); None when it is not installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.stubs import torchvision_stub

    try:
        with torchvision_stub():  # for this import only: other tests' imports (transformers) must not see it
            import pytorch_grad_cam
    except Exception:  # noqa: BLE001 - any import failure means the peer is absent
        return None
    return pytorch_grad_cam


def minmax(v) -> np.ndarray:
    """Each map scaled to [0, 1] (exactly: pytorch-grad-cam's ``1e-7`` in the denominator would
    leave lumos's unscaled maps, whose maxima are small, short of 1 by more than 1e-5)."""
    v = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    v = v - v.min(1, keepdims=True)
    top = v.max(1, keepdims=True)
    return v / np.where(top > 0, top, 1.0)


@pytest.fixture(scope="module")
def cnn2d():
    torch.manual_seed(0)
    model = CNN2d(1, 4, channels=(6, 8, 8)).eval()
    x = torch.randn(5, 1, 16, 16).numpy()
    return model, x


@pytest.fixture(scope="module")
def cnn1d():
    torch.manual_seed(1)
    model = CNN1d(2, 3, channels=(6, 8)).eval()
    x = torch.randn(4, 2, 32).numpy()
    return model, x


def test_registered():
    from lumos.core.registry import get

    for name, cls in VARIANTS.items():
        assert get(name) is cls


# -- equality with pytorch-grad-cam -------------------------------------------------------
PEERS = {"hires_cam": "HiResCAM", "layer_cam": "LayerCAM", "xgrad_cam": "XGradCAM", "eigen_cam": "EigenCAM",
         "eigen_grad_cam": "EigenGradCAM", "score_cam": "ScoreCAM", "ablation_cam": "AblationCAM",
         "full_grad": "FullGrad"}


@pytest.mark.parametrize("name", list(PEERS))
def test_equals_pytorch_grad_cam(name, cnn2d):
    pgc = _pgc()
    if pgc is None:
        pytest.skip("pytorch-grad-cam is not installed")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = cnn2d
    target = np.array([0, 1, 2, 3, 1])
    ours = FullGrad(model, batch_size=7) if name == "full_grad" else VARIANTS[name](model, "features", batch_size=7)
    e = ours.explain(x, target=target)
    layers = [] if name == "full_grad" else [model.features]
    cam = getattr(pgc, PEERS[name])(model=model, target_layers=layers)
    try:
        peer = cam(input_tensor=torch.as_tensor(x), targets=[ClassifierOutputTarget(int(t)) for t in target])
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(minmax(e.values), minmax(peer), atol=1e-5)


def test_eigen_cam_sign_follows_svd_like_numpy(cnn2d):
    """``sign="svd"`` is the decomposition's sign (the peer's numpy SVD on the same float32 rows)."""
    model, x = cnn2d
    a = torch.randn(6, 8, 5, 5)
    ours = principal_projection(a).numpy()
    for row, p in zip(a.numpy(), ours):
        m = row.reshape(8, -1).T
        m = m - m.mean(0)
        ref = (m @ np.linalg.svd(m, full_matrices=True)[2][0]).reshape(5, 5)
        np.testing.assert_allclose(p, ref, atol=1e-4)


# -- properties on 1-D and 2-D ---------------------------------------------------------------
@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_shapes_and_batch_size_independence(name, which, request):
    model, x = request.getfixturevalue(which)
    kw = {} if name == "full_grad" else {"layer": "features"}
    a = VARIANTS[name](model, batch_size=3, **kw).explain(x)
    b = VARIANTS[name](model, batch_size=64, **kw).explain(x)
    assert a.values.shape == (x.shape[0], 1, *x.shape[2:])
    assert np.isfinite(a.values).all() and (a.values >= 0).all()
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.target, b.target)


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_hirescam_equals_gradcam_on_gap_head(which, request):
    """On features -> GAP -> linear, dy/dA_k(u) = w_k/Z at every position, so the element-wise
    product is the Grad-CAM map; the signed map sums to y_c - b_c (CAM's identity)."""
    model, x = request.getfixturevalue(which)
    h = HiResCAM(model, "features", relu=False).explain(x)
    g = GradCAM(model, "features", relu=False).explain(x)
    c = CAM(model, "features").explain(x)
    np.testing.assert_allclose(h.extras["layer_map"], g.extras["layer_map"], rtol=1e-4, atol=1e-6)
    z = np.prod(h.extras["layer_map"].shape[1:])
    np.testing.assert_allclose(h.extras["layer_map"] * z, c.extras["layer_map"], rtol=1e-4, atol=1e-5)
    logits = h.prediction[np.arange(len(x)), h.target]
    total = h.extras["layer_map"].reshape(len(x), -1).sum(1)
    np.testing.assert_allclose(total + c.extras["bias"], logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_layercam_and_xgradcam_on_gap_head(which, request):
    """GAP head: LayerCAM keeps only channels with w_k > 0; XGradCAM's alpha_k = w_k / Z
    wherever the channel is active (sum_u g A / sum_u A with constant g)."""
    model, x = request.getfixturevalue(which)
    t = np.zeros(len(x), dtype=int)
    w = model.classifier.weight.detach().numpy()[0]
    cam = CAM(model, "features").explain(x, target=t)
    act = cam.extras["layer_map"]
    z = np.prod(act.shape[1:])
    lc = LayerCAM(model, "features", relu=False).explain(x, target=t).extras["layer_map"]
    from lumos.core.hooks import capture_activations

    with capture_activations(model, ["features"]) as store, torch.no_grad():
        model(torch.as_tensor(x))
    a = store["features"].numpy()
    expect = np.einsum("nc...,c->n...", a, np.maximum(w, 0)) / z
    np.testing.assert_allclose(lc, expect, rtol=1e-4, atol=1e-6)
    xg = XGradCAM(model, "features").explain(x, target=t).extras["channel_weights"]
    active = a.reshape(*a.shape[:2], -1).sum(2) > 0
    np.testing.assert_allclose(xg[active], np.broadcast_to(w / z, xg.shape)[active], rtol=1e-4, atol=1e-7)
    assert (xg[~active] == 0).all()


def test_eigen_projection_sign_and_scale():
    """The projection scales with the activations (so the min-max scaled map does not change),
    flips with their sign; ``sign="max"`` makes it invariant to the sign."""
    torch.manual_seed(3)
    a = torch.randn(4, 6, 7, 5)
    p = principal_projection(a)
    for s in (0.5, 3.0):
        np.testing.assert_allclose(minmax(principal_projection(a * s)), minmax(p), atol=1e-4)
    q = principal_projection(-a)
    assert all(np.allclose(qi, pi, atol=1e-4) or np.allclose(qi, -pi, atol=1e-4)
               for qi, pi in zip(q.numpy(), p.numpy()))
    pm = principal_projection(a, sign="max")
    np.testing.assert_allclose(principal_projection(-a, sign="max"), pm, atol=1e-4)
    assert (pm.flatten(1).amax(1).abs() >= pm.flatten(1).amin(1).abs()).all()
    # 1-D positions
    assert principal_projection(torch.randn(3, 4, 11)).shape == (3, 11)


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_eigen_cam_ignores_target(which, request):
    model, x = request.getfixturevalue(which)
    a = EigenCAM(model, "features").explain(x, target=0).values
    b = EigenCAM(model, "features").explain(x, target=1).values
    np.testing.assert_array_equal(a, b)


def _head_ignores_channel(model, k):
    model = __import__("copy").deepcopy(model)
    with torch.no_grad():
        model.classifier.weight[:, k] = 0
    return model


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_ablation_cam_ignored_channel_is_zero(which, request):
    """A channel the head ignores changes no score when it is ablated: its weight is 0; on a
    GAP head, alpha_k = w_k mean_u A_k / y_c exactly."""
    model, x = request.getfixturevalue(which)
    model = _head_ignores_channel(model, 2)
    e = AblationCAM(model, "features", batch_size=5).explain(x)
    w = e.extras["channel_weights"]
    np.testing.assert_allclose(w[:, 2], 0, atol=1e-6)
    from lumos.core.hooks import capture_activations

    with capture_activations(model, ["features"]) as store, torch.no_grad():
        y = model(torch.as_tensor(x))
    a = store["features"].numpy()
    y_c = y.numpy()[np.arange(len(x)), e.target]
    wc = model.classifier.weight.detach().numpy()[e.target]
    expect = wc * a.reshape(*a.shape[:2], -1).mean(2) / y_c[:, None]
    np.testing.assert_allclose(w, expect, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_score_cam_weights_are_a_softmax_over_channels(which, request):
    model, x = request.getfixturevalue(which)
    e = ScoreCAM(model, "features", batch_size=5).explain(x)
    w = e.extras["channel_weights"]
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-5)
    assert (w > 0).all()


@pytest.mark.parametrize("batch_size", [3, 13, None])
def test_score_cam_equals_its_definition_on_colour_images(batch_size):
    """On 3-channel images, with model calls of 3 or 13 rows (blocks of masked rows that cut
    across inputs) or the automatic size: every channel map upsampled (bilinear, aligned
    corners), min-max scaled with + 1e-8, masks all colour channels of the input; the weights
    are the softmax over channels of the masked target scores; the activations are unchanged."""
    import torch.nn.functional as F

    from lumos.core.hooks import capture_activations

    torch.manual_seed(2)
    model = CNN2d(3, 4, channels=(6, 8, 8)).eval()
    x = torch.randn(5, 3, 16, 16)
    target = np.array([0, 1, 2, 3, 1])
    e = ScoreCAM(model, "features", batch_size=batch_size).explain(x.numpy(), target=target)
    with capture_activations(model, ["features"]) as store, torch.no_grad():
        model(x)
        a = store["features"]
        up = F.interpolate(a, size=(16, 16), mode="bilinear", align_corners=True)
        lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
        masks = (up - lo) / (hi - lo + 1e-8)
        masked = (x[:, None] * masks[:, :, None]).reshape(-1, 3, 16, 16)
        s = model(masked).reshape(5, 8, 4)[np.arange(5), :, target]
    w = torch.softmax(s, dim=1)
    np.testing.assert_allclose(e.extras["channel_weights"], w.numpy(), rtol=1e-5, atol=1e-7)
    expect = torch.relu(torch.einsum("nchw,nc->nhw", a, w)).numpy()
    np.testing.assert_allclose(e.extras["layer_map"], expect, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [ScoreCAM, AblationCAM])
def test_perturbations_are_batched(cls, cnn2d):
    """n inputs x C channels go through few model calls, not one per channel."""
    model, x = cnn2d
    calls = []
    handle = model.register_forward_pre_hook(lambda m, inp: calls.append(inp[0].shape[0]))
    try:
        cls(model, "features", batch_size=64).explain(x)
    finally:
        handle.remove()
    c = 8
    assert sum(calls) >= len(x) * c
    assert len(calls) <= 4 + int(np.ceil(len(x) * c / 64)), calls


@pytest.mark.parametrize("which", ["cnn1d", "cnn2d"])
def test_full_grad_one_backward_and_bias_terms(which, request):
    """Without biases, FullGrad is psi(|x * grad|) summed over input channels; each bias layer
    adds a map in [0, 1] per channel, so values lie in [0, C_in + sum_l C_l]."""
    model, x = request.getfixturevalue(which)
    nb = __import__("copy").deepcopy(model)
    e = FullGrad(model).explain(x)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert (e.extras["layers"] == len(convs)).all()
    assert e.values.max() <= x.shape[1] + sum(m.out_channels for m in convs) + 1e-5
    for m in nb.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            m.bias = None
    with pytest.raises(ValueError, match="bias"):
        FullGrad(nb).explain(x)
    g = lumos.explain(model, x, method="input_x_gradient", target=e.target) if hasattr(lumos, "explain") else None
    if g is not None:
        v = np.abs(g.values).reshape(len(x), x.shape[1], -1)
        v = v - v.min(2, keepdims=True)
        v = v / (1e-7 + v.max(2, keepdims=True))
        assert np.all(e.values.reshape(len(x), -1) + 1e-5 >= v.sum(1))


def test_full_grad_batchnorm_effective_bias():
    """Batch norm contributes its effective bias beta - mu gamma / sqrt(var + eps)."""
    pgc = _pgc()
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 1)
    model.eval()
    x = torch.randn(3, 1, 12, 12).numpy()
    e = FullGrad(model).explain(x, target=1)
    assert (e.extras["layers"] == 3).all()
    if pgc is None:
        pytest.skip("pytorch-grad-cam is not installed")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = pgc.FullGrad(model=model, target_layers=[])
    try:
        peer = cam(input_tensor=torch.as_tensor(x), targets=[ClassifierOutputTarget(1)] * 3)
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(minmax(e.values), minmax(peer), atol=1e-5)
