"""Samek et al. (2017) region perturbation on MNIST: does the MoRF AOPC order the methods
as published, LRP (EpsilonPlus) > Gradient x Input > Saliency > random?

    PYTHONPATH=src:. python -m benchmarks.samek_ordering [--n 1000]

Setting: the LeNet-style CNN of ``benchmarks/mnist_cnn.py``; 1,000 MNIST test images,
explained for their true class; 3x3 regions ranked by summed relevance, replaced by
uniform noise in [0, 1] (Samek et al.'s choice), L = 50 steps; softmax score of the true
class. LRP is included when ``lumos.methods.relevance`` is importable (registry name
"lrp", composite "epsilon_plus"); otherwise the ordering is reported without it.
Writes ``examples/figures/samek_ordering.md`` (table) and ``samek_morf_curves.png``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.mnist_cnn import load_mnist, trained_cnn
from lumos import GradientXInput, Saliency
from lumos.metrics import evaluate, plot_curves

FIGURES = Path(__file__).resolve().parent.parent / "examples" / "figures"
SETTING = dict(region=3, n_steps=50, replacement="uniform", noise_range=(0.0, 1.0), output="softmax", seed=0)


def explainers(model) -> dict:
    rng = np.random.default_rng(0)
    methods = {"random": lambda x, target: rng.standard_normal(np.shape(x))}
    methods["saliency"] = Saliency(model)
    methods["gradient_x_input"] = GradientXInput(model)
    try:
        import lumos.methods.relevance  # noqa: F401
        from lumos.core import registry

        methods["lrp_epsilon_plus"] = registry.get("lrp")(model, composite="epsilon_plus")
    except ImportError as err:
        print(f"LRP not available ({err}); reporting the ordering without it")
    return methods


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = trained_cnn()
    _, _, x, y = load_mnist(args.n)
    methods = explainers(model)
    metrics = {
        "AOPC MoRF": ("region_perturbation", {**SETTING, "order": "morf"}),
        "AOPC LeRF": ("region_perturbation", {**SETTING, "order": "lerf"}),
    }
    table = evaluate(model, x, y, methods, metrics)
    wide = table.pivot(index="method", columns="metric", values=["mean", "sem"])
    order = wide[("mean", "AOPC MoRF")].sort_values(ascending=False)
    lines = ["| method | AOPC MoRF (± s.e.) | AOPC LeRF (± s.e.) | ABPC |", "|---|---|---|---|"]
    for m in order.index:
        mo, le = wide.loc[m, ("mean", "AOPC MoRF")], wide.loc[m, ("mean", "AOPC LeRF")]
        lines.append(f"| {m} | {mo:.4f} ± {wide.loc[m, ('sem', 'AOPC MoRF')]:.4f} | "
                     f"{le:.4f} ± {wide.loc[m, ('sem', 'AOPC LeRF')]:.4f} | {mo - le:.4f} |")
    published = [m for m in ("lrp_epsilon_plus", "gradient_x_input", "saliency", "random") if m in methods]
    got = [m for m in order.index if m in published]
    holds = got == published
    verdict = f"published ordering {' > '.join(published)}: {'REPRODUCED' if holds else 'NOT reproduced'} " \
              f"(measured {' > '.join(got)})"
    text = "\n".join([f"# Samek et al. region perturbation on MNIST ({len(x)} test images, 3x3 regions, "
                      "uniform noise, L = 50, softmax of the true class)", "", *lines, "", verdict, ""])
    print(text)
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "samek_ordering.md").write_text(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_curves({k: v for k, v in table.attrs["curves"]["AOPC MoRF"].items()}, ax=axes[0])
    axes[0].set_title("MoRF (most relevant first)")
    plot_curves({k: v for k, v in table.attrs["curves"]["AOPC LeRF"].items()}, ax=axes[1])
    axes[1].set_title("LeRF (least relevant first)")
    for ax in axes:
        ax.set_ylabel("mean softmax of the true class")
    fig.tight_layout()
    fig.savefig(FIGURES / "samek_morf_curves.png", dpi=120)
    print(f"wrote {FIGURES / 'samek_ordering.md'} and samek_morf_curves.png")
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
