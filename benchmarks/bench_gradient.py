"""Gradient family against captum: Saliency, Gradient x Input, IG (50 GL steps),
SmoothGrad (50 samples) on an MLP on breast cancer (100 rows) and a small CNN on MNIST
(256 images); plus IG with 300 steps on 1,000 MNIST images in bounded memory."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import PeakRSS
from lumos import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from lumos.data import load_breast_cancer, load_mnist
from lumos.models import CNN2d, MLP
from lumos.models.train import fit

FAMILY = "gradient"


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

    for setting, model, x in setups():
        model.eval()
        xt = torch.as_tensor(x)
        target = model(xt).argmax(1).detach()
        tn = target.numpy()

        h.compare(FAMILY, "Saliency", lambda: Saliency(model).explain(x, target=tn),
                  lambda: CSal(model).attribute(xt, target=target, abs=True), "captum", setting, max_ratio=1.2)
        h.compare(FAMILY, "Gradient x Input", lambda: GradientXInput(model).explain(x, target=tn),
                  lambda: InputXGradient(model).attribute(xt, target=target), "captum", setting, max_ratio=1.2)
        h.compare(FAMILY, "Integrated Gradients (50 GL steps)",
                  lambda: IntegratedGradients(model, n_steps=50).explain(x, target=tn),
                  lambda: CIG(model).attribute(xt, target=target, n_steps=50, method="gausslegendre"),
                  "captum", setting, max_ratio=1.0)

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
            noise = torch.normal(0, torch.full((len(x) * n, *x.shape[1:]), sigma))
            noise = noise.view(len(x), n, *x.shape[1:]).transpose(0, 1).numpy()
            ours = SmoothGrad(model, n_samples=n).explain(x, target=tn, noise=noise).values
            ref = captum_out.detach().numpy()
            diff = float(np.abs(ours - ref).max())
            return diff, diff / float(np.abs(ref).max())

        h.compare(FAMILY, "SmoothGrad (50 samples)",
                  lambda: SmoothGrad(model, n_samples=n, noise_level=0.15).explain(x, target=tn), captum_sg,
                  "captum", setting, max_ratio=1.0, agreement=same_noise,
                  note="agreement with captum's noise replayed")

    bounded_memory(h)


def bounded_memory(h):
    """IG with 50 and 300 steps on 1,000 MNIST images: peak RSS must not grow with steps."""
    try:
        mn = load_mnist()
    except FileNotFoundError:
        return
    torch.manual_seed(0)
    cnn = CNN2d(1, 10, channels=(8, 16, 16)).eval()
    x = mn.X_test[:1000]
    import time

    for steps in (50, 300):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            IntegratedGradients(cnn, n_steps=steps).explain(x)
            dt = time.perf_counter() - t0
        ok = "yes" if mem.peak < 2 * 2**30 else "NO"
        h.record(FAMILY, f"IG {steps} steps, 1,000 MNIST images", dt, "CNN, MNIST",
                 note=f"peak RSS {mem.peak / 2**20:.0f} MB (target < 2048 MB)", mem_mb=mem.delta_mb, met=ok)
