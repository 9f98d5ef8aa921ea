"""Workshop: MNIST digits — saliency, Integrated Gradients, SmoothGrad, LRP and Grad-CAM
on the same inputs, and the question "is LRP just Gradient x Input?".

Data: ../shared/data/mnist.npz (fixed 10k/2k subset; set LUMOS_DATA), else scikit-learn's
8x8 digits. A small CNN (conv -> GAP -> linear) is trained once and cached.

On "LRP = Gradient x Input": for a ReLU network, LRP-0 (and LRP-ε as ε -> 0) equals
Gradient x Input exactly (Kindermans et al. 2016, arXiv 1611.07270; Ancona et al. 2018,
arXiv 1711.06104). Rules with ε > 0, γ or z+ (the usual composites) do not. The script
measures the correlation of each installed LRP variant with Gradient x Input.

Run:  python examples/workshop_mnist.py     (about 1-2 minutes on 2 cores; cached afterwards)
"""
from __future__ import annotations

import numpy as np

from _workshop import available, explain_all, save, setup

METHODS = ("saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "lrp", "grad_cam", "guided_grad_cam")


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


def lrp_vs_gxi(model, x, quiet=False) -> dict:
    """Pearson correlation between LRP variants and Gradient x Input (1.0 = identical)."""
    import lumos

    if not available("lrp"):
        return {}
    gxi = lumos.explain(model, x, method="gradient_x_input").values.reshape(len(x), -1)
    out = {}
    for label, opts in (("lrp (default composite)", {}), ("lrp-0", {"rule": "zero"}), ("lrp-0", {"composite": "zero"}),
                        ("lrp-epsilon 0.25", {"rule": "epsilon", "epsilon": 0.25})):
        if label in out:
            continue
        try:
            v = lumos.explain(model, x, method="lrp", **opts).values.reshape(len(x), -1)
        except Exception:  # noqa: BLE001 - option names depend on the relevance family's API
            continue
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
    names = available(*METHODS)
    exps = explain_all(model, x, names, quiet=quiet)
    figure(x, ds.y_test[idx], exps, acc, ds.name, quiet)
    from lumos.report import aopc, deletion_curves

    target = exps[names[0]].target if exps else None
    quality = {n: float(aopc(deletion_curves(model, x, e.values, e.target)).mean()) for n, e in exps.items()}
    if target is not None:
        quality["random order"] = float(aopc(deletion_curves(model, x, None, target, seed=seed)).mean())
    corr = lrp_vs_gxi(model, x, quiet)
    if not quiet:
        print(f"{ds.name}: CNN test accuracy {acc:.3f}")
        print("deletion AOPC (higher = removes the evidence faster):")
        for n, q in quality.items():
            print(f"  {n:<24} {q:.3f}")
        if corr:
            for k, c in corr.items():
                print(f"  corr({k}, gradient x input) = {c:.4f}")
        else:
            print("  LRP not installed in this lumos: theory says LRP-0 == gradient x input for ReLU nets")
    return {"accuracy": acc, "aopc": quality, "lrp_vs_gxi": corr}


def figure(x, y, exps, acc, name, quiet):
    import matplotlib.pyplot as plt

    cols = 1 + len(exps)
    fig, axes = plt.subplots(len(x), cols, figsize=(1.7 * cols, 1.7 * len(x) + 0.6), squeeze=False)
    for i in range(len(x)):
        axes[i, 0].imshow(x[i, 0], cmap="gray_r")
        axes[i, 0].set_ylabel(f"digit {y[i]}", fontsize=8)
        for j, (n, e) in enumerate(exps.items(), 1):
            v = np.broadcast_to(e.values[i], x[i].shape).sum(0)
            lim = np.abs(v).max() or 1
            axes[i, j].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, j].set_title(n.replace("_", " "), fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{name}: CNN accuracy {acc:.3f}; predicted class explained (red for, blue against)", fontsize=9)
    save(fig, "mnist_methods.png", quiet)


if __name__ == "__main__":
    main()
