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

captum's GuidedGradCam runs with ``interpolate_mode="bilinear"``, Selvaraju et al.'s
upsampling and lumos's (equal to 3.7e-9); its default ``"nearest"`` gave per-image Spearman
scores up to 0.64 apart from lumos's.

The verdicts (lumos's reference rule, :mod:`lumos.metrics.sanity`; top layers = the first 2
of the 4 cascade stages, the two dense layers) are recorded in each row's note beside the
per-stage mean Spearman of ``|Phi|`` and of the signed maps.

What Adebayo et al. 2018 (arXiv:1810.03292v3) report, per method (section numbers of v3):

- Gradient (saliency): sensitive. Section 3.1: "the gradient map is, indeed, sensitive to
  model parameter randomization"; contributions, item 3: "Gradients & GradCAM pass".
- Guided Backprop: insensitive to the top layers. Section 3.1: "Guided Backprop (along with
  Guided GradCAM) is invariant to higher layer weights"; masks stay similar "until lower
  layer weights (those closest to the input) are randomized" (footnote 5: not entirely
  invariant, corrected from an earlier version); section 3.2 (independent randomisation,
  Fig. 3) the same; section 5.3 and 5.4: edge-detector-like behaviour of convolutions.
- Guided Grad-CAM: as Guided Backprop (same sentences); "fail" in the contributions.
- Integrated Gradients and Gradient x Input: not a pass/fail; "the danger of the visual
  assessment" (section 3.1): the masks stay visually similar, SSIM and the Spearman of
  absolute values stay high (Fig. 4 top, Fig. 5), while "re-initialization disrupts the sign
  of the map, so that the spearman rank correlation without absolute values goes to zero
  (Figure 4-Bottom) almost as soon as the top layers are randomized". Section 5.2: the input
  dominates input-times-gradient products, "especially for sparse inputs" (MNIST), shown
  with ``x * u`` against ``x * v`` for random ``u, v`` (Fig. 19).
- LRP: not tested. Section 2.1 cites Ancona et al.: epsilon-LRP equals gradient x input for
  ReLU networks without biases; section 5.2 counts epsilon-LRP among the input-times-gradient
  approximations, so the IG finding is the paper's expectation for it.
- Setting: their MNIST CNN (Appendix B) is conv5x5-32, pool, conv5x5-64, pool, dense 1024,
  softmax, re-initialised from a truncated normal (std 0.01); measures: Spearman with and
  without absolute values, SSIM and HOG (SSIM/HOG on ImageNet only); Appendix B calibrates
  them against random masks (about 0). Figures 4 and 20 show the MNIST CNN's curves.

On this LeNet (256 images, 2 dense + 2 conv stages, reset_parameters re-initialisation), the
maps of two *different* digits already correlate: saliency 0.64 on ``|Phi|``, Guided
Backprop 0.68, IG and LRP 0.35 (the reference of the rule), which is why the earlier fixed
bar (``Spearman < 0.5``) failed saliency at 0.63 with the top layers random. IG's ``|Phi|``
stays at 0.99 at every stage while its signed correlation is at the between-inputs level
(0.00-0.08), and ``x * u`` vs ``x * v`` gives 0.99 on these digits: Fig. 19's effect, exactly.
Guided Grad-CAM is where this setting differs from the paper: with the top layers random its
``|Phi|`` correlation (0.21-0.26) is at the between-inputs level at once, because the Grad-CAM
factor (an 8x8 map at conv2, after ReLU) moves with any change of the dense layers (the paper
says Grad-CAM is sensitive to randomisation downstream of the last conv; two independently
trained LeNets give 0.36); its signed map keeps 0.47 against 0.08 between inputs, i.e. 42% of
its input-specific similarity (Guided Backprop keeps 72%), under the rule's one half. So
lumos says pass, and it is the measure plus the architecture (a coarse CAM that dominates the
ranks of ``|Phi|``), not the definition (lumos = Selvaraju = captum bilinear) nor the
randomisation order (top-down, as the paper).

Torch runs with one thread here, restored at the end.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import one_thread

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


def floor(name: str, model, x, y):
    """The model passes of one library's test (:func:`benchmarks.floors.randomisation_floor`):
    on the original model and the 4 cumulative stages (re-initialised inside the timed loop,
    as both libraries must), the explainer's passes on the rows it differentiates: forward +
    backward to the input over the N images (saliency, guided backprop, LRP), also to layer
    ``3`` (Guided Grad-CAM: two backward passes that differ at every ReLU), or over the
    N x 16 Gauss-Legendre path rows plus the forward passes without gradients of the
    completeness check (f(x) of the N inputs and f of the one zero baseline) for IG; the
    best of a few chunk sizes. The similarity arithmetic is the metric's own."""
    from benchmarks.floors import gradient_passes, guided_grad_cam_passes, path_passes, randomisation_floor
    from lumos.methods.gradient.integrated_gradients import quadrature
    from lumos.metrics.sanity import parametrised_layers

    n = len(x)
    if name == "integrated_gradients":
        passes, rows = path_passes(quadrature(IG_STEPS)[0]), n * IG_STEPS
        label = f"{rows:,} path rows ({n} x {IG_STEPS}) fwd+bwd to the input + {n + 1} endpoint rows forward"
    elif name == "guided_grad_cam":
        passes, rows, label = guided_grad_cam_passes("3"), n, f"{n} rows x 2 (fwd + bwd to layer 3, to the input)"
    else:
        passes, rows, label = gradient_passes, n, f"{n} rows fwd+bwd to the input"
    return randomisation_floor(model, x, y, passes, parametrised_layers(model), SEED + 1, rows, label)


def _agreement(ours, theirs):
    q = np.array([theirs[s] for s in ours.stages], dtype=np.float64)
    diff = float(np.nanmax(np.abs(q - ours.scores["spearman"])))
    return diff, diff


def _verdict_note(res) -> str:
    signed = res.scores.get("spearman_signed")
    per = ", ".join(f"{s} {r:.2f}" + (f"/{signed[i].mean():.2f}" if signed is not None else "")
                    for i, (s, r) in enumerate(res.similarity.items()))
    ref = res.reference or {}
    refs = "/".join(f"{v:.2f}" for v in ref.values())
    why = res.reason.split(" with the top")[0] if not res.passed else "changes with the top layers random"
    return (f"{'pass' if res.passed else 'FAIL'}: {why} (Spearman |Phi|/signed per stage, top first: {per}; "
            f"between inputs {refs})")


def _run(h):
    from benchmarks.stubs import stub_torchvision

    stub_torchvision()
    import quantus

    n = 32 if h.quick else N_IMAGES
    model, x, y, source = data(n)
    for name, explainer in lumos_explainers(model).items():
        if not h.wants(f"mprt_{name}"):  # benchmarks.run --only
            continue
        verdict = _verdict_note(lumos_mprt(explainer, model, x, y))
        h.compare("sanity", f"mprt_{name}", lambda e=explainer: lumos_mprt(e, model, x, y),
                  lambda name=name: quantus_mprt(quantus, name, model, x, y), "quantus",
                  setting=f"LeNet, {source}, cascading top-down, 4 stages", max_ratio=0.5,
                  agreement=_agreement, floor_fn=floor(name, model, x, y), floor_target=1.15,
                  note=f"lumos verdict {verdict}; peer runs captum's {name}"
                       .replace("captum's lrp", "lumos's LRP (captum's fails on this LeNet)"))


run = one_thread(_run)


if __name__ == "__main__":
    from benchmarks.harness import Harness

    run(Harness(repeats=3))
