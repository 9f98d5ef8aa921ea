"""Gradient family against captum: Saliency, Gradient x Input, IG (50 GL steps),
SmoothGrad (50 samples) on an MLP on breast cancer (100 rows) and a small CNN on MNIST
(256 images); plus IG with 300 steps on 1,000 MNIST images in bounded memory.

Floors (benchmarks/floors.py): one forward + backward pass to the input over the batch
(saliency, Gradient x Input), over the N x 50 interpolated or noisy rows (IG, SmoothGrad),
at the fastest of a few chunk sizes (lumos's own chunk among them)."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks import floors
from benchmarks.harness import PeakRSS
from lumos import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from lumos.core.batching import RowBudget
from lumos.data import load_breast_cancer, load_mnist
from lumos.models import CNN2d, MLP
from lumos.models.train import fit

FAMILY = "gradient"
FLOOR_TARGET = 1.15  # issue #15 item 6: lumos / floor


def setups():
    torch.manual_seed(0)
    bc = load_breast_cancer()
    mlp = fit(MLP(30, 2, hidden=(64, 32)), bc.X_train, bc.y_train, epochs=30, seed=0)
    yield "MLP, breast cancer, 100 rows", mlp, bc.X_test[:100]
    try:
        mn = load_mnist()
    except FileNotFoundError:
        print("MNIST not found: skipping the CNN rows")
        return
    cnn = fit(CNN2d(1, 10, channels=(8, 16, 16)), mn.X_train[:3000], mn.y_train[:3000], epochs=1, seed=0)
    yield "CNN, MNIST, 256 images", cnn, mn.X_test[:256]


def run(h):
    from captum.attr import InputXGradient, IntegratedGradients as CIG, NoiseTunnel, Saliency as CSal

    dev = h.device
    best_chunk = {}
    for setting, model, x in setups():
        model = h.to(model.eval())
        xt = h.to(torch.as_tensor(x))
        target = model(xt).argmax(1).detach()
        tn = target.cpu().numpy()
        lumos_rows = RowBudget().rows(x[0].size, "backward")  # rows per pass lumos plans
        fast = x[0].size < 100  # the MLP: calls of a few ms, more repeats
        grad_floor = floors.gradient_floor(model, xt, target, [lumos_rows])
        ig_floor = floors.expansion_floor(model, xt, target, 50, "ig", extra_chunks=[lumos_rows])
        sg_floor = floors.expansion_floor(model, xt, target, 50, "noise", extra_chunks=[lumos_rows])
        best_chunk[x[0].size] = ig_floor.chunk

        h.compare(FAMILY, "Saliency", lambda: Saliency(model, device=dev).explain(x, target=tn),
                  lambda: CSal(model).attribute(xt, target=target, abs=True), "captum", setting, max_ratio=1.2,
                  repeats=31 if fast else None, floor_fn=grad_floor, floor_target=FLOOR_TARGET)
        h.compare(FAMILY, "Gradient x Input", lambda: GradientXInput(model, device=dev).explain(x, target=tn),
                  lambda: InputXGradient(model).attribute(xt, target=target), "captum", setting, max_ratio=1.2,
                  repeats=31 if fast else None, floor_fn=grad_floor, floor_target=FLOOR_TARGET)
        h.compare(FAMILY, "Integrated Gradients (50 GL steps)",
                  lambda: IntegratedGradients(model, n_steps=50, device=dev).explain(x, target=tn),
                  lambda: CIG(model).attribute(xt, target=target, n_steps=50, method="gausslegendre"),
                  "captum", setting, max_ratio=1.0, repeats=15 if fast else None, floor_fn=ig_floor,
                  floor_target=FLOOR_TARGET)

        # SmoothGrad: timing with each library's own noise; agreement with the same noise
        # (captum's draw, replayed into lumos through `noise=`).
        sigma = 0.15 * float(x.max() - x.min())
        n = 50

        def captum_sg():
            torch.manual_seed(0)
            return NoiseTunnel(CSal(model)).attribute(xt, target=target, nt_type="smoothgrad", nt_samples=n,
                                                     stdevs=sigma, abs=False)

        def same_noise(lumos_out, captum_out):
            torch.manual_seed(0)
            noise = torch.normal(0, torch.full((len(x) * n, *x.shape[1:]), sigma, device=xt.device)).cpu()
            noise = noise.view(len(x), n, *x.shape[1:]).transpose(0, 1).numpy()
            ours = SmoothGrad(model, n_samples=n, device=dev).explain(x, target=tn, noise=noise).values
            ref = captum_out.detach().cpu().numpy()
            diff = float(np.abs(ours - ref).max())
            return diff, diff / float(np.abs(ref).max())

        h.compare(FAMILY, "SmoothGrad (50 samples)",
                  lambda: SmoothGrad(model, n_samples=n, noise_level=0.15, device=dev).explain(x, target=tn), captum_sg,
                  "captum", setting, max_ratio=1.0, agreement=same_noise, repeats=15 if fast else None,
                  note="agreement with captum's noise replayed", floor_fn=sg_floor, floor_target=FLOOR_TARGET)

    bounded_memory(h, best_chunk.get(784))


def bounded_memory(h, chunk=None):
    """IG with 50 and 300 steps on 1,000 MNIST images: peak RSS must not grow with steps.
    One timing each (as before); the floor is the same loop as IG's above, at the chunk
    found fastest there (same architecture), timed once right after."""
    try:
        mn = load_mnist()
    except FileNotFoundError:
        return
    torch.manual_seed(0)
    cnn = h.to(CNN2d(1, 10, channels=(8, 16, 16)).eval())
    x = mn.X_test[:1000]
    import time

    xt = h.to(torch.as_tensor(x))
    with torch.no_grad():
        target = cnn(xt).argmax(1)
    chunk = chunk or RowBudget().rows(x[0].size, "backward")
    for steps in (50, 300):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            IntegratedGradients(cnn, n_steps=steps, device=h.device).explain(x)
            floors.sync(h.device)
            dt = time.perf_counter() - t0
        floor = floors.expansion_floor(cnn, xt, target, steps, "ig", sizes=[chunk])
        floor_s = h.time_once(floor)
        ok = "yes" if mem.peak < 2 * 2**30 else "NO"
        h.record(FAMILY, f"IG {steps} steps, 1,000 MNIST images", dt, "CNN, MNIST",
                 note=f"peak RSS {mem.peak / 2**20:.0f} MB (target < 2048 MB); one timing each", mem_mb=mem.delta_mb,
                 met=ok, floor_s=floor_s, floor_label=floor.label)
