"""Sanity suite: 5 methods x cascading model parameter randomisation (Adebayo et al.
2018) on the MNIST LeNet of :mod:`benchmarks.mnist_cnn` (conv 16, conv 32, dense 64,
dense 10: 4 randomised stages), 256 test images (synthetic images with the trained-on-
nothing LeNet when the data are missing), against ``quantus.MPRT`` (0.6.0).

Same test in both: layers top-down, cumulative, every layer re-initialised with its
``reset_parameters`` under Quantus's seeding (``torch.manual_seed(42 + 1)`` before each
layer = lumos ``seed=43, layer_seeds="same"``), Spearman correlation of ``|Phi|`` per
image (Quantus also normalises by the batch maximum, which leaves ranks unchanged), the
explained class the predicted one. Each library runs its own explainers, as its users do:
lumos's Saliency, IntegratedGradients (16 Gauss-Legendre steps, zero baseline),
GuidedBackprop, GuidedGradCAM (layer ``3``, the last conv) and LRP (its default
epsilon-plus composite); Quantus's explain_func runs captum's (Saliency, IG with 16
steps, GuidedBackprop, GuidedGradCam on ``model[3]``; captum's LRP and its epsilon
rules fail on this LeNet's Flatten, so Quantus runs lumos's LRP there). Agreement: per-image,
per-stage Spearman (lumos vs Quantus). Quantus explains the original model
twice (once for ``a_batch``, once as the first stage's reference); lumos once.

The verdicts (lumos's per-stage rule, threshold 0.5, top layers = the first 2 of the 4
cascade stages) are recorded in each row's note beside the per-stage mean Spearman.
Torch runs with one thread here, restored at the end.
"""
from __future__ import annotations

import numpy as np
import torch

FAMILY = "sanity"
N_IMAGES, IG_STEPS, SEED = 256, 16, 42


def data(n: int = N_IMAGES):
    """The trained LeNet and ``n`` MNIST test images, or an untrained LeNet and synthetic
    blobs when the MNIST file is missing (timings only, the verdicts then mean nothing)."""
    from benchmarks.mnist_cnn import lenet, load_mnist, trained_cnn

    try:
        x = load_mnist(n)[2]
        model = trained_cnn(verbose=False).eval()
        source = f"{n} MNIST test images"
    except (FileNotFoundError, OSError, KeyError):
        torch.manual_seed(0)
        model = lenet().eval()
        rng = np.random.default_rng(0)
        x = np.clip(rng.normal(0.1, 0.3, (n, 1, 28, 28)), 0, 1).astype(np.float32)
        source = f"{n} synthetic 28x28 images (MNIST not found)"
    with torch.no_grad():
        y = model(torch.as_tensor(x)).argmax(1).numpy()
    return model, x, y, source


def lumos_explainers(model) -> dict:
    from lumos import LRP, IntegratedGradients, Saliency
    from lumos.methods.cam import GuidedBackprop, GuidedGradCAM

    return {"saliency": Saliency(model), "integrated_gradients": IntegratedGradients(model, n_steps=IG_STEPS),
            "guided_backprop": GuidedBackprop(model), "guided_grad_cam": GuidedGradCAM(model, "3"),
            "lrp": LRP(model)}


def captum_explain(name: str):
    """A Quantus ``explain_func`` running captum's ``name`` on the model it is given."""
    from captum import attr

    def explain(model, inputs, targets, **kwargs):
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).requires_grad_(True)
        t = torch.as_tensor(np.asarray(targets)).long()
        if name == "saliency":
            a = attr.Saliency(model).attribute(x, target=t, abs=True)
        elif name == "integrated_gradients":
            a = attr.IntegratedGradients(model).attribute(x, target=t, n_steps=IG_STEPS)
        elif name == "guided_backprop":
            a = attr.GuidedBackprop(model).attribute(x, target=t)
        elif name == "guided_grad_cam":
            a = attr.GuidedGradCam(model, model[3]).attribute(x, target=t, interpolate_mode="bilinear")  # the paper's
        else:  # captum's LRP fails on this LeNet (no rule for Flatten; with IdentityRule its hook resizes
            from lumos import LRP  # a gradient): the peer runs lumos's LRP, so the row times the test itself

            return LRP(model).explain(np.asarray(inputs, dtype=np.float32), target=np.asarray(targets)).values
        return a.detach().numpy()

    return explain


def lumos_mprt(explainer, model, x, y):
    from lumos.metrics import model_randomisation

    return model_randomisation(explainer, model, x, y, similarities=("spearman",), seed=SEED + 1,
                               layer_seeds="same")


def quantus_mprt(quantus, name, model, x, y):
    metric = quantus.MPRT(layer_order="top_down", seed=SEED, disable_warnings=True, display_progressbar=False)
    return metric(model=model, x_batch=x, y_batch=y, explain_func=captum_explain(name), batch_size=N_IMAGES,
                  device="cpu")


def _agreement(ours, theirs):
    q = np.array([theirs[s] for s in ours.stages], dtype=np.float64)
    diff = float(np.nanmax(np.abs(q - ours.scores["spearman"])))
    return diff, diff


def _verdict_note(res) -> str:
    per = ", ".join(f"{s} {r:.2f}" for s, r in res.similarity.items())
    return f"{'pass' if res.passed else 'FAIL'} (Spearman per stage, top first: {per})"


def run(h):
    threads = torch.get_num_threads()
    try:
        _run(h)
    finally:
        torch.set_num_threads(threads)


def _run(h):
    from benchmarks.stubs import stub_torchvision

    stub_torchvision()
    import quantus

    torch.set_num_threads(1)
    n = 32 if h.quick else N_IMAGES
    model, x, y, source = data(n)
    for name, explainer in lumos_explainers(model).items():
        verdict = _verdict_note(lumos_mprt(explainer, model, x, y))
        h.compare("sanity", f"mprt_{name}", lambda e=explainer: lumos_mprt(e, model, x, y),
                  lambda name=name: quantus_mprt(quantus, name, model, x, y), "quantus",
                  setting=f"LeNet, {source}, cascading top-down, 4 stages", max_ratio=0.5,
                  agreement=_agreement,
                  note=f"lumos verdict {verdict}; peer runs captum's {name}"
                       .replace("captum's lrp", "lumos's LRP (captum's fails on this LeNet)"))


if __name__ == "__main__":
    from benchmarks.harness import Harness

    run(Harness(repeats=3))
