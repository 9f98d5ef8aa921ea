"""Hidden representations and linear probes of an MNIST CNN, against an untrained twin.

Projects the activations of several layers (PCA and t-SNE, coloured by digit) and trains a
logistic-regression probe per layer (3-fold CV). The untrained network with the same
architecture is the control: what a probe reads from random features of the input.

Writes representations_mnist.png and probe_mnist.png to the figures folder (examples/output/,
or $LUMOS_FIGURES; examples/figures/ with --update-figures).

    PYTHONPATH=src python examples/representations_probing_mnist.py
"""
from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumos.analysis import probe, representations  # noqa: E402
from lumos.data import load_mnist  # noqa: E402
from lumos.models import CNN2d  # noqa: E402
from lumos.models.train import accuracy, fit  # noqa: E402

from _workshop import figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)

LAYERS = ["input", "features.2", "features.5", "features.7", "gap", "classifier"]


def main():
    torch.set_num_threads(1)
    ds = load_mnist()
    t0 = time.perf_counter()
    trained = fit(CNN2d(1, 10), ds.X_train, ds.y_train, epochs=4, lr=3e-3, seed=0)
    print(f"trained in {time.perf_counter() - t0:.1f}s, test accuracy {accuracy(trained, ds.X_test, ds.y_test):.3f}")
    torch.manual_seed(0)
    untrained = CNN2d(1, 10).eval()
    x, y = ds.X_test[:1500], ds.y_test[:1500]
    FIGURES = figures_dir()

    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    for ax, (layer, method) in zip(axes.ravel(), [("input", "pca"), ("features.5", "pca"), ("gap", "pca"),
                                                  ("input", "tsne"), ("features.5", "tsne"), ("gap", "tsne")]):
        rep = representations(trained, layer, x[:800], y[:800], method=method, seed=0)
        rep.plot(ax=ax, s=5)
    fig.suptitle("MNIST CNN: test digits in the input space and in hidden layers", fontsize=12)
    fig.tight_layout()
    fig.savefig(FIGURES / "representations_mnist.png", dpi=80)
    plt.close(fig)

    t0 = time.perf_counter()
    result = probe(trained, LAYERS, x, y, cv=3, seed=0)
    control = probe(untrained, LAYERS, x, y, cv=3, seed=0)
    print(f"probes in {time.perf_counter() - t0:.1f}s")
    for layer, a, c in zip(LAYERS, result.accuracy, control.accuracy):
        print(f"  {layer:11s} trained {a:.3f}   untrained {c:.3f}")
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = np.arange(len(LAYERS))
    ax.errorbar(pos, result.accuracy, yerr=result.accuracy_std, marker="o", capsize=3, label="trained CNN")
    ax.errorbar(pos, control.accuracy, yerr=control.accuracy_std, marker="s", capsize=3, label="untrained twin")
    ax.axhline(result.chance, color="gray", ls="--", lw=1, label="chance (majority class)")
    ax.set_xticks(pos)
    ax.set_xticklabels([f"{n}\n({u} units)" for n, u in zip(LAYERS, result.n_units)], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("linear probe accuracy (3-fold CV)")
    ax.set_title("Where is the digit linearly decodable? (1,500 MNIST test images)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(FIGURES / "probe_mnist.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
