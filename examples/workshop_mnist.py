"""Workshop: MNIST digits — saliency, Integrated Gradients, SmoothGrad, LRP and Grad-CAM
on the same inputs, and the question "is LRP just Gradient x Input?".

Data: ../shared/data/mnist.npz (fixed 10k/2k subset; set LUMOS_DATA), else scikit-learn's
8x8 digits. A small CNN (conv -> GAP -> linear) is trained once and cached.

On "LRP = Gradient x Input": for a ReLU network, LRP-0 (and LRP-ε as ε -> 0) equals
Gradient x Input exactly (Kindermans et al. 2016, arXiv 1611.07270; Ancona et al. 2018,
arXiv 1711.06104). Rules with ε > 0, γ or z+ (the usual composites) do not. The script
measures the correlation of LRP-0, LRP-ε and the ε-plus composite with Gradient x Input.
Faithfulness: region perturbation on 100 test digits, 2 x 2 patches set to black, most
relevant first (Samek et al. 2017), its AOPC next to a random ordering (lumos.metrics).

Run:  python examples/workshop_mnist.py     (about 1-2 minutes on 2 cores; cached afterwards)
"""
from __future__ import annotations

import numpy as np

from _workshop import explain_all, save, setup

#: label -> (lumos method, options); every method explains the predicted class.
METHODS = {
    "saliency": ("saliency", {}),
    "gradient x input": ("gradient_x_input", {}),
    "integrated gradients": ("integrated_gradients", {"n_steps": 64}),
    "smoothgrad": ("smoothgrad", {"n_samples": 50, "seed": 0}),
    "LRP ε-plus": ("lrp", {"composite": "epsilon_plus"}),
    "LRP ε-α2β1": ("lrp", {"composite": "epsilon_alpha2_beta1"}),
    "Grad-CAM": ("grad_cam", {"layer": "features"}),
    "guided Grad-CAM": ("guided_grad_cam", {"layer": "features"}),
}
LRP_VARIANTS = {"LRP-0": "zero", "LRP-ε (ε=1e-6)": "epsilon", "LRP ε-plus (z+ in conv)": "epsilon_plus"}


def data():
    from lumos.data import load_digits, load_mnist

    try:
        ds = load_mnist(subset=True)
        ds.X_train, ds.y_train = ds.X_train[:3000], ds.y_train[:3000]
        return ds
    except FileNotFoundError:
        return load_digits()


def train(ds, seed=0, quiet=False):
    import torch

    from lumos.models.cache import cached_fit
    from lumos.models.reference import CNN2d

    torch.manual_seed(seed)
    model = CNN2d(1, 10, channels=(8, 16, 32))
    return cached_fit(model, ds.X_train, ds.y_train, epochs=10 if ds.name == "mnist" else 30, lr=5e-3, seed=seed,
                      name=f"{ds.name}-CNN2d-workshop", progress=not quiet)


def lrp_vs_gxi(model, x) -> dict:
    """Pearson correlation between LRP variants and Gradient x Input (1.0 = identical)."""
    import lumos

    gxi = lumos.GradientXInput(model).explain(x).values.reshape(len(x), -1)
    out = {}
    for label, composite in LRP_VARIANTS.items():
        v = lumos.LRP(model, composite=composite).explain(x).values.reshape(len(x), -1)
        out[label] = float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(v, gxi)]))
    return out


def main(quiet=False, seed=0) -> dict:
    setup(seed=seed)
    ds = data()
    model = train(ds, seed, quiet)
    import torch

    with torch.no_grad():
        acc = float((model(torch.as_tensor(ds.X_test)).argmax(1).numpy() == ds.y_test).mean())
    idx = np.array([np.where(ds.y_test == d)[0][0] for d in range(10)])[[0, 1, 2, 3, 7, 9]]
    x = ds.X_test[idx]
    exps = explain_all(model, x, METHODS, quiet=quiet)
    figure(x, ds.y_test[idx], exps, acc, ds.name, quiet)
    from lumos.metrics import region_perturbation

    # faithfulness on 100 test digits: 2 x 2 patches set to black (the background), most
    # relevant first, 50 steps; uniform noise would draw new strokes and favour no method
    # (see examples/figures/samek_ordering.md)
    xe = ds.X_test[:100]
    evals = explain_all(model, xe, METHODS, quiet=True)
    region = 2 if x.shape[-1] > 8 else 1
    opts = dict(region=region, n_steps=50 if region == 2 else 32, replacement="constant", value=0.0, seed=seed)
    quality = {n: region_perturbation(model, xe, e.values, e.target, **opts).value for n, e in evals.items()}
    target = next(iter(evals.values())).target
    quality["random order"] = region_perturbation(model, xe, np.zeros_like(xe), target, order="random", **opts).value
    corr = lrp_vs_gxi(model, x)
    if not quiet:
        print(f"{ds.name}: CNN test accuracy {acc:.3f}")
        print("region-perturbation AOPC, MoRF (higher = removes the evidence faster):")
        for n, q in quality.items():
            print(f"  {n:<24} {q:.3f}")
        for k, c in corr.items():
            print(f"  corr({k}, gradient x input) = {c:.4f}")
    return {"accuracy": acc, "aopc": quality, "lrp_vs_gxi": corr}


def figure(x, y, exps, acc, name, quiet):
    p = next(iter(exps.values())).target
    import matplotlib.pyplot as plt

    cols = 1 + len(exps)
    fig, axes = plt.subplots(len(x), cols, figsize=(1.7 * cols, 1.7 * len(x) + 0.6), squeeze=False)
    for i in range(len(x)):
        axes[i, 0].imshow(x[i, 0], cmap="gray_r")
        axes[i, 0].set_ylabel(f"digit {y[i]}\n(pred. {p[i]})", fontsize=8)
        for j, (n, e) in enumerate(exps.items(), 1):
            v = np.broadcast_to(e.values[i], x[i].shape).sum(0)
            lim = np.abs(v).max() or 1
            im = axes[i, j].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, j].set_title(n, fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.4, ticks=[]).set_label(
        "blue: against  ·  0  ·  red: for the predicted class", fontsize=8)
    fig.suptitle(f"{name}: CNN test accuracy {acc:.3f}; the predicted class is explained; each panel scaled to its "
                 "largest |value|\n(saliency is |gradient|, Grad-CAM is non-negative)", fontsize=9)
    save(fig, "mnist_methods.png", quiet)


if __name__ == "__main__":
    main()
