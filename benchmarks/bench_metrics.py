"""Metrics benchmark: region perturbation AOPC for 5 methods on 1,000 MNIST test images
with L = 50 steps (target: under 60 s), and agreement with Quantus's RegionPerturbation
under the same settings (3x3 patches, MoRF, 50 regions, black = 0 replacement, softmax
scores, attributions normalised by their max as Quantus does, which keeps the order)."""
from __future__ import annotations

import importlib.util
import time

import numpy as np
import torch

from benchmarks.mnist_cnn import load_mnist, trained_cnn
from lumos import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from lumos.metrics import region_perturbation

FAMILY = "metrics"
PATCH, STEPS = 3, 50


def import_quantus():
    """Quantus imports zennit (which needs torchvision, not installed) when it finds it;
    hide the optional backends from its feature probes while importing."""
    real = importlib.util.find_spec

    def probe(name, *args):
        return None if name.split(".")[0] in ("zennit", "tensorflow", "tf_explain") else real(name, *args)

    importlib.util.find_spec = probe
    try:
        import quantus
    finally:
        importlib.util.find_spec = real
    return quantus


def attributions(model, x, y) -> dict[str, np.ndarray]:
    out = {
        "saliency": Saliency(model).explain(x, target=y).values,
        "gradient_x_input": GradientXInput(model).explain(x, target=y).values,
        "smoothgrad": SmoothGrad(model, n_samples=16, seed=0).explain(x, target=y).values,
        "integrated_gradients": IntegratedGradients(model, n_steps=32).explain(x, target=y).values,
        "random": np.random.default_rng(0).standard_normal(x.shape).astype(np.float32),
    }
    return out


def lumos_aopc(model, x, y, a, replacement="constant"):
    return region_perturbation(model, x, a, y, order="morf", region=PATCH, n_steps=STEPS,
                               replacement=replacement, value=0.0, output="softmax", seed=0).scores


def quantus_aopc(quantus, model, x, y, a):
    metric = quantus.RegionPerturbation(patch_size=PATCH, order="morf", regions_evaluation=STEPS,
                                        perturb_baseline="black", normalise=True, abs=False,
                                        disable_warnings=True, display_progressbar=False)
    curves = np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=True,
                               batch_size=256))
    return curves.sum(axis=1) / (STEPS + 1)  # AOPC: step 0 contributes f(x) - f(x) = 0


def bench_captum_metrics(h, model, x, y):
    """Infidelity and max-sensitivity (Yeh et al. 2019) against captum.metrics on 256
    images: Gaussian perturbations (sigma 0.1, 64 samples) for signed saliency; uniform
    noise of radius 0.02, 10 samples, relative to ||Phi(x)|| (captum's definition) for
    |gradient| saliency. Both are random estimates: agreement = their means and the
    correlation of the per-image values."""
    from captum.attr import Saliency as CaptumSaliency
    from captum.metrics import infidelity as captum_infidelity, sensitivity_max

    from lumos.metrics import infidelity, max_sensitivity

    x, y = x[:256], y[:256]
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    a = Saliency(model, absolute=False).explain(x, target=y).values

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.1
        return noise, inputs - noise

    def agreement(ours, theirs):
        ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        rel = abs(ours.mean() - theirs.mean()) / abs(theirs.mean())
        return float("nan"), float(rel)

    runs = {
        "infidelity (gaussian, saliency)": (
            lambda: infidelity(model, x, a, y, perturbation="gaussian", n_samples=64, noise_std=0.1),
            lambda: captum_infidelity(model, perturb, xt, torch.as_tensor(a), target=yt, n_perturb_samples=64,
                                      max_examples_per_batch=4096)),
        "max_sensitivity (saliency)": (
            lambda: max_sensitivity(Saliency(model), model, x, y, radius=0.02, n_samples=10, relative=True),
            lambda: sensitivity_max(CaptumSaliency(model).attribute, xt, target=yt, perturb_radius=0.02,
                                    n_perturb_samples=10, max_examples_per_batch=2560)),
    }
    for name, (ours, theirs) in runs.items():
        o, t = np.asarray(ours()), np.asarray(theirs())
        h.compare(FAMILY, name, ours, theirs, "captum.metrics", repeats=3, agreement=agreement,
                  setting="LeNet, 256 MNIST images",
                  note=f"means {o.mean():.4f} vs {t.mean():.4f}, per-image r = {np.corrcoef(o, t)[0, 1]:.3f}; "
                       "rel diff = difference of the means (random perturbations)")


def run(h):
    torch.set_num_threads(2)
    model = trained_cnn()
    _, _, x, y = load_mnist(1000)
    t0 = time.perf_counter()
    attrs = attributions(model, x, y)
    h.record(FAMILY, "explanations for the AOPC benchmark", time.perf_counter() - t0,
             setting="5 methods (SmoothGrad 16, IG 32 steps), 1000 MNIST images")

    for replacement in ("constant", "uniform"):
        t0 = time.perf_counter()
        aopc = {m: float(lumos_aopc(model, x, y, a, replacement).mean()) for m, a in attrs.items()}
        dt = time.perf_counter() - t0
        h.record(FAMILY, f"region_perturbation AOPC x5 methods ({replacement})", dt,
                 setting=f"1000 MNIST, {PATCH}x{PATCH}, L={STEPS}", met="yes" if dt < 60 else "NO",
                 note="target < 60 s; AOPC " + ", ".join(f"{m} {v:.4f}" for m, v in aopc.items()))

    bench_captum_metrics(h, model, x, y)

    quantus = import_quantus()
    for name, a in attrs.items():
        h.compare(FAMILY, f"region_perturbation AOPC ({name})",
                  lambda a=a: lumos_aopc(model, x, y, a), lambda a=a: quantus_aopc(quantus, model, x, y, a),
                  peer="quantus", setting=f"1000 MNIST, {PATCH}x{PATCH} black, L={STEPS}", repeats=1,
                  note="agreement: per-image AOPC, target 1e-4")
