"""CAM variants (lumos.methods.cam.variants) against pytorch-grad-cam.

Setting: the MNIST CNN of :mod:`benchmarks.bench_cam` (CNN2d (16, 32, 32), GAP head, 2
epochs on 2,000 training images, the same recipe), layer ``features`` (the last conv
block after its ReLU, 32 x 7 x 7), predicted class. Gradient and projection variants on
256 test images; ScoreCAM and AblationCAM evaluate 32 masked / ablated copies per image
(one per channel), so they run on 64 images (pytorch-grad-cam: 16 and 32 rows per model
call, its defaults; lumos: the call's row budget). FullGrad has no layer (every conv
bias). Agreement: lumos's map and pytorch-grad-cam's output each min-max scaled to
[0, 1] exactly (pytorch-grad-cam's own scaling divides by max + 1e-7, which would leave
lumos's unscaled maps, whose maxima are small, short of 1 by ~1e-5).

Torch runs with one thread here, restored at the end.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_cam import setup
from benchmarks.harness import one_thread
from benchmarks.stubs import stub_torchvision

VARIANTS = [  # lumos name, lumos class, peer class, images, needs a layer
    ("hires_cam", "HiResCAM", "HiResCAM", 256, True),
    ("layer_cam", "LayerCAM", "LayerCAM", 256, True),
    ("xgrad_cam", "XGradCAM", "XGradCAM", 256, True),
    ("eigen_cam", "EigenCAM", "EigenCAM", 256, True),
    ("eigen_grad_cam", "EigenGradCAM", "EigenGradCAM", 256, True),
    ("score_cam", "ScoreCAM", "ScoreCAM", 64, True),
    ("ablation_cam", "AblationCAM", "AblationCAM", 64, True),
    ("full_grad", "FullGrad", "FullGrad", 256, False),
]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    v = v.reshape(v.shape[0], -1)
    v = v - v.min(1, keepdims=True)
    top = v.max(1, keepdims=True)
    return v / np.where(top > 0, top, 1.0)


def _agreement(ours, peer):
    a = _unit(ours.values)
    b = _unit(peer).reshape(a.shape)
    diff = float(np.abs(a - b).max())
    return diff, diff / max(float(np.abs(b).max()), 1e-30)


def _run(h):
    stub_torchvision()
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import lumos.methods.cam as cam_family

    model, X, xt, target = setup(h)
    dev = h.device
    for name, ours_name, peer_name, n, layered in VARIANTS:
        if not h.wants(name):  # benchmarks.run --only
            continue
        cls = getattr(cam_family, ours_name)
        ours = cls(model, "features", device=dev) if layered else cls(model, device=dev)
        x, xn, tn = X[:n], xt[:n], target[:n]

        def lumos_fn(ours=ours, x=x, tn=tn):
            return ours.explain(x, target=tn)

        def peer_fn(peer_name=peer_name, layered=layered, xn=xn, tn=tn):
            cam = getattr(pgc, peer_name)(model=model, target_layers=[model.features] if layered else [])
            try:
                return cam(input_tensor=xn, targets=[ClassifierOutputTarget(int(t)) for t in tn])
            finally:
                cam.activations_and_grads.release()

        floor = _floor(model, xn, tn, name, layered)
        note = "maps min-max scaled to [0, 1] in both"
        if name in ("score_cam", "ablation_cam"):
            note += f"; {n} x 32 perturbed rows per call set; peer loops {16 if name == 'score_cam' else 32} rows a call"
        h.compare("cam", name, lumos_fn, peer_fn, "pytorch-grad-cam",
                  setting=f"CNN2d MNIST {n}x1x28x28" + (", layer features" if layered else ", every conv bias"),
                  max_ratio=0.5, agreement=_agreement, note=note, floor_fn=floor)


def _floor(model, xn, tn, name, layered):
    """The model passes each variant needs, which pytorch-grad-cam makes too: one forward and
    one backward to the layer (gradient variants, EigenGradCAM), one forward (EigenCAM; its
    per-image SVD is the method's own arithmetic, done by both), one forward (the layer's
    output the masks are made from) and the C masked copies of every image forward (ScoreCAM;
    before 2026-12 its floor left out that first pass, which both libraries make, and ran the
    unmasked images repeated, which go through the CNN 3-6 % faster than the masked ones), one
    forward and the C ablated activations through what follows the layer (AblationCAM: lumos
    and a careful hand loop replace the layer's output; the peer reruns the whole model on
    every ablated copy), forward + backward to the input (FullGrad).
    Chunk sizes include the small ones (64, 256) at which a conv net runs fastest on a CPU.
    peer/floor above 2 is the only room for lumos/peer <= 0.5."""
    from benchmarks import floors

    t = torch.as_tensor(tn)
    if name == "ablation_cam":
        return floors.ablated_layer_floor(model, "features", xn)
    if name == "score_cam":
        return floors.masked_input_floor(model, "features", xn)
    if name == "eigen_cam":
        return floors.forward_floor(model, xn)
    if not layered:
        return floors.gradient_floor(model, xn, t)
    return floors.layer_floor(model, "features", xn, t)


run = one_thread(_run)


if __name__ == "__main__":
    import contextlib
    import io

    from benchmarks.harness import Harness

    harness = Harness(repeats=3)
    with contextlib.redirect_stderr(io.StringIO()):  # pytorch-grad-cam's tqdm bars
        run(harness)
