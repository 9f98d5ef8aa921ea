"""Is LRP equivalent to Gradient x Input?

Short answer: only for one rule on one kind of network.

1. LRP-0 (ε = 0, ρ = identity) on a ReLU network *is* Gradient x Input: each linear
   layer passes R_j = a_j Σ_k w_jk R_k / z_k, and with R_k = z_k ∂f/∂z_k (true at the
   output, and kept layer by layer because a ReLU is piecewise linear, a = z ∂a/∂z) this
   is a_j ∂f/∂a_j. Biases do not break it (Kindermans et al. 2016, arXiv:1611.07270;
   Ancona et al. 2018, arXiv:1711.06104).
2. Every other rule changes the backward pass and the equality fails: ε > 0 absorbs
   relevance of weak activations, z⁺ keeps only positive contributions, γ favours them,
   z^B gives relevance to pixels at the lower bound (black background) too.
3. With a non-piecewise-linear activation (tanh) even LRP-0 differs: LRP passes relevance
   through the activation unchanged, the gradient multiplies by tanh'(z).

The script trains a small CNN on 3000 MNIST digits (about 10 s on one CPU core), prints the
largest difference between each LRP variant and Gradient x Input, and draws both heatmaps
for a few test digits (a 3, a 9, a 4, a 7) to lrp_vs_gradient_x_input.png in the figures folder
(examples/output/, or $LUMOS_FIGURES; examples/figures/ with --update-figures).

Run: ``python examples/lrp_vs_gradient_x_input.py``
"""
from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lumos.data import load_mnist  # noqa: E402
from lumos.methods.gradient import GradientXInput  # noqa: E402
from lumos.methods.relevance import LRP, Epsilon, EpsilonGammaBox, EpsilonPlus  # noqa: E402
from lumos.methods.relevance.rules import WEIGHTED  # noqa: E402
from lumos.models.train import accuracy, fit  # noqa: E402

from _workshop import figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)


def small_cnn(activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), activation(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), activation(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def pick_digits(data, digits=(3, 9, 4, 7)) -> np.ndarray:
    return np.array([int(np.flatnonzero(data.y_test == d)[0]) for d in digits])


def main() -> None:
    torch.manual_seed(0)
    data = load_mnist()
    X, y = data.X_train[:3000], data.y_train[:3000]
    relu_net = fit(small_cnn(nn.ReLU), X, y, epochs=3, lr=3e-3, seed=0)
    tanh_net = fit(small_cnn(nn.Tanh), X, y, epochs=3, lr=3e-3, seed=0)
    print(f"test accuracy: ReLU CNN {accuracy(relu_net, data.X_test, data.y_test):.3f}, "
          f"tanh CNN {accuracy(tanh_net, data.X_test, data.y_test):.3f}")
    # float64 copies so that "equal" means equal to ~1e-15, not to float32 rounding
    relu64, tanh64 = copy.deepcopy(relu_net).double(), copy.deepcopy(tanh_net).double()
    idx = pick_digits(data)
    x = data.X_test[idx].astype(np.float64)
    target = data.y_test[idx]

    gxi = GradientXInput(relu64).explain(x, target=target).values
    variants = {
        "LRP-0": LRP(relu64, composite="lrp0"),
        "LRP-ε (ε=0.25)": LRP(relu64, composite={WEIGHTED: Epsilon(0.25)}),
        "z⁺ conv, ε dense": LRP(relu64, composite=EpsilonPlus()),
        "γ conv, z^B first": LRP(relu64, composite=EpsilonGammaBox(low=0.0, high=1.0)),
    }
    maps = {"input": x, "Gradient x Input": gxi}
    scale = np.abs(gxi).max()
    diffs = {}
    print(f"\nReLU CNN, max |LRP − Gradient x Input| / max |Gradient x Input| over {len(x)} digits:")
    for name, explainer in variants.items():
        maps[name] = explainer.explain(x, target=target).values
        diffs[name] = np.abs(maps[name] - gxi).max() / scale
        print(f"  {name:22s} {diffs[name]:.2e}")
    tanh_gxi = GradientXInput(tanh64).explain(x, target=target).values
    tanh_lrp = LRP(tanh64, composite="lrp0").explain(x, target=target).values
    diffs["tanh: LRP-0"] = np.abs(tanh_lrp - tanh_gxi).max() / np.abs(tanh_gxi).max()
    print(f"tanh CNN, LRP-0 vs Gradient x Input: {diffs['tanh: LRP-0']:.2e}")
    maps["tanh: Gradient x Input"] = tanh_gxi
    maps["tanh: LRP-0"] = tanh_lrp
    draw(maps, target, diffs)


def draw(maps: dict, target: np.ndarray, diffs: dict) -> None:
    """One row per digit; column titles give max |LRP − GxI| / max |GxI| (same network)."""
    names = list(maps)
    fig, axes = plt.subplots(len(target), len(names), figsize=(1.55 * len(names), 1.7 * len(target) + 0.4))
    for r in range(len(target)):
        for c, name in enumerate(names):
            ax = axes[r, c]
            img = maps[name][r, 0]
            if name == "input":
                ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
                ax.set_ylabel(f"digit {target[r]}", fontsize=9)
            else:
                v = np.abs(img).max() or 1.0
                ax.imshow(img, cmap="bwr", vmin=-v, vmax=v)
            if r == 0:
                extra = f"\nΔ vs GxI {diffs[name]:.1e}" if name in diffs else ""
                ax.set_title(name + extra, fontsize=7.5)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Gradient x Input and LRP on a ReLU CNN (LRP-0 column identical), and on a tanh CNN "
                 "(red > 0, blue < 0)", fontsize=9)
    fig.tight_layout()
    FIGURE = figures_dir() / "lrp_vs_gradient_x_input.png"
    fig.savefig(FIGURE, dpi=130)
    print(f"\nwrote {FIGURE}")


if __name__ == "__main__":
    main()
