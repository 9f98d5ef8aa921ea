"""CAM family against pytorch-grad-cam (installed with --no-deps), guided methods against captum.

pytorch-grad-cam imports torchvision at module level (for box IoU and image transforms it
does not use here); torchvision is not installed, so a stub module is put in
``sys.modules`` by :mod:`benchmarks.stubs` before importing it (benchmarks only).

Setting: a CNN2d (GAP head) trained briefly on the MNIST subset, Grad-CAM and Grad-CAM++
on its last conv block for 256 test images, predicted class. pytorch-grad-cam returns
``min-max(resize(ReLU(cam)))`` per image; lumos' values are min-max normalised the same
way before comparison (``agreement``).

Floors (benchmarks/floors.py): Grad-CAM and Grad-CAM++ one forward pass keeping the
layer's output and one backward pass to it; guided backprop and Deconvnet one forward +
backward pass to the input (their ReLU rules are the methods' own arithmetic); Guided
Grad-CAM both (two forward and two backward passes, as in both libraries).

Torch runs with one thread here (as in every run of this family); the thread count is
restored at the end, so families run after this one are unaffected.
"""
from __future__ import annotations


import numpy as np
import torch

from benchmarks import floors
from benchmarks.harness import one_thread
from benchmarks.stubs import stub_torchvision

FLOOR_TARGET = 1.15  # issue #15 item 6, for Grad-CAM


def _minmax(v: np.ndarray) -> np.ndarray:
    v = v.reshape(v.shape[0], -1)
    v = v - v.min(1, keepdims=True)
    return v / (1e-7 + v.max(1, keepdims=True))


def _agreement(ours, peer):
    a = _minmax(ours.values.astype(np.float64))
    b = np.asarray(peer, dtype=np.float64).reshape(a.shape)
    diff = float(np.abs(a - b).max())
    return diff, diff / max(float(np.abs(b).max()), 1e-30)


def setup(h):
    """The MNIST CNN (CNN2d (16, 32, 32), GAP head, 2 epochs on 2,000 images), 256 test
    images (numpy and on the harness's device) and their predicted classes."""
    from lumos.data import load_mnist
    from lumos.models import CNN2d
    from lumos.models.train import fit

    d = load_mnist()
    X_train = d.X_train[:2000].astype(np.float32)
    X = d.X_test[:256].astype(np.float32)
    torch.manual_seed(0)
    model = fit(CNN2d(1, 10, channels=(16, 32, 32)), X_train, d.y_train[:2000], epochs=2, lr=3e-3, seed=0)
    model = h.to(model.eval())
    xt = h.to(torch.as_tensor(X))
    with torch.no_grad():
        target = model(xt).argmax(1).cpu().numpy()
    return model, X, xt, target


def _run(h):
    stub_torchvision()
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from lumos.methods.cam import GradCAM, GradCAMPlusPlus

    model, X, xt, target = setup(h)
    dev = h.device
    tt = torch.as_tensor(target, device=xt.device)
    layer = model.features  # output of the last conv block (after its ReLU), 7 x 7
    cam_floor = floors.layer_floor(model, "features", xt, tt)
    grad_floor = floors.gradient_floor(model, xt, tt)
    ggc_floor = floors.guided_grad_cam_floor(model, "features", xt, tt)

    for name, ours_cls, peer_cls, max_ratio in [("grad_cam", GradCAM, pgc.GradCAM, 1.0),
                                                 ("grad_cam_plus_plus", GradCAMPlusPlus, pgc.GradCAMPlusPlus, None)]:
        ours = ours_cls(model, "features", batch_size=256, device=dev)

        def lumos_fn():
            return ours.explain(X, target=target)

        def peer_fn():
            cam = peer_cls(model=model, target_layers=[layer])
            try:
                return cam(input_tensor=xt, targets=[ClassifierOutputTarget(int(t)) for t in target])
            finally:
                cam.activations_and_grads.release()

        note = "values min-max normalised per image as pytorch-grad-cam does"
        if name == "grad_cam_plus_plus":
            note += "; peer adds eps=1e-6 to the alpha denominator, lumos uses the exact formula"
        h.compare("cam", name, lumos_fn, peer_fn, "pytorch-grad-cam", setting="CNN2d MNIST 256x1x28x28, layer features",
                  max_ratio=max_ratio, agreement=_agreement, note=note, floor_fn=cam_floor,
                  floor_target=FLOOR_TARGET if name == "grad_cam" else None)

    # guided methods against captum (same model, same targets; captum's GuidedGradCam with
    # bilinear upsampling, lumos's default)
    from captum.attr import Deconvolution, GuidedBackprop as CaptumGuidedBackprop, GuidedGradCam

    from lumos.methods.cam import Deconvnet, GuidedBackprop, GuidedGradCAM

    for name, ours, peer, floor in [
        ("guided_backprop", GuidedBackprop(model, batch_size=256, device=dev),
         lambda: CaptumGuidedBackprop(model).attribute(xt, target=tt), grad_floor),
        ("deconvnet", Deconvnet(model, batch_size=256, device=dev), lambda: Deconvolution(model).attribute(xt, target=tt),
         grad_floor),
        ("guided_grad_cam", GuidedGradCAM(model, "features", batch_size=256, device=dev),
         lambda: GuidedGradCam(model, layer).attribute(xt, target=tt, interpolate_mode="bilinear"), ggc_floor),
    ]:
        note = "two forward and two backward passes in both libraries" if name == "guided_grad_cam" else ""
        h.compare("cam", name, lambda ours=ours: ours.explain(X, target=target), peer, "captum",
                  setting="CNN2d MNIST 256x1x28x28", max_ratio=1.2 if name != "guided_grad_cam" else None, note=note,
                  floor_fn=floor)


run = one_thread(_run)
