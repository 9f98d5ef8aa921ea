"""Samek et al. (2017) region perturbation on MNIST: does the MoRF AOPC order the methods
as asked in issue 6, LRP (EpsilonPlus) > Gradient x Input > Saliency > random, and as in the
paper, LRP > Deconvnet > Saliency (sensitivity) > random?

(The paper, arXiv:1509.06321, compared LRP, sensitivity and deconvolution on SUN397,
ILSVRC2012 and MIT Places and found LRP > deconvolution > sensitivity, the last near a random
ordering; Gradient x Input and MNIST are this project's extension of it. Deconvnet and
sensitivity heatmaps are magnitudes, as in the paper.)

    PYTHONPATH=src:. python -m benchmarks.samek_ordering [--n 1000] [--network lenet|vgg]

Setting: the LeNet-style CNN of ``benchmarks/mnist_cnn.py`` (or its deeper VGG-style CNN); 1,000 MNIST test images,
explained for their true class; 3x3 regions ranked by summed relevance, L = 50 steps;
softmax score of the true class. Two replacements: uniform noise in [0, 1] (Samek et
al.'s choice) and black (0: removing ink, the reference that Gradient x Input and LRP
attribute against). Methods: LRP with the EpsilonPlus composite, Gradient x Input,
saliency, |Deconvnet| and a random ordering.
Writes ``examples/figures/samek_ordering.md`` (tables) and ``samek_curves_<replacement>.png``.

A sensitivity table follows: the MoRF ordering for every combination of region size
(2, 3, 4, 7 pixels), replacement (uniform, black, a Gaussian blur of the image with sigma 2 px,
the image's mean) and scored output (softmax, raw logit), from the same explanations, so that
the verdict does not rest on one choice of settings. An ordering "holds" when the mean AOPCs
are in the published order, and "holds clearly" when every adjacent pair also differs by more
than two standard errors of the paired per-image difference.
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
SETTINGS = {
    "uniform": dict(region=3, n_steps=50, replacement="uniform", noise_range=(0.0, 1.0), output="softmax", seed=0),
    "black": dict(region=3, n_steps=50, replacement="constant", value=0.0, output="softmax", seed=0),
}
#: the sensitivity table adds two replacements that remove information without adding ink
SWEEP = {**SETTINGS, "blur": dict(region=3, n_steps=50, replacement="blur", sigma=2.0, output="softmax", seed=0),
         "mean": dict(region=3, n_steps=50, replacement="mean", output="softmax", seed=0)}


def explainers(model) -> dict:
    from lumos import LRP, Deconvnet

    rng = np.random.default_rng(0)
    deconvnet = Deconvnet(model)
    return {"random": lambda x, target: rng.standard_normal(np.shape(x)),
            "saliency": Saliency(model),
            "gradient_x_input": GradientXInput(model),
            "lrp_epsilon_plus": LRP(model, composite="epsilon_plus"),
            "deconvnet": lambda x, target: np.abs(deconvnet.explain(x, target=target).values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder for the table and figures")
    parser.add_argument("--network", choices=("lenet", "vgg"), default="lenet",
                        help="the LeNet-style CNN (default) or a deeper VGG-style CNN (files get a _vgg suffix)")
    args = parser.parse_args(argv)
    out = args.out
    torch.set_num_threads(2)
    model = trained_cnn(network=args.network)
    suffix = "" if args.network == "lenet" else f"_{args.network}"
    _, _, x, y = load_mnist(args.n)
    methods = explainers(model)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = []
    for label, setting in SETTINGS.items():
        metrics = {
            "AOPC MoRF": ("region_perturbation", {**setting, "order": "morf"}),
            "AOPC LeRF": ("region_perturbation", {**setting, "order": "lerf"}),
        }
        table = evaluate(model, x, y, methods, metrics).to_pandas()
        texts.append(_report(table, methods, label, len(x)))
        print(texts[-1])
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, metric in zip(axes, metrics):
            plot_curves(table.attrs["curves"][metric], ax=ax)
            ax.set_title(f"{metric.split()[1]} ({label} replacement)")
            ax.set_ylabel("mean softmax of the true class")
        fig.tight_layout()
        fig.savefig(out / f"samek_curves_{label}{suffix}.png", dpi=120)
        plt.close(fig)
    texts.append(sweep(model, x, y, methods))
    print(texts[-1])
    (out / f"samek_ordering{suffix}.md").write_text(f"# {args.network} network\n\n" + "\n".join(texts))
    print(f"wrote {out / f'samek_ordering{suffix}.md'} and samek_curves_*{suffix}.png")
    return 0


ORDERINGS = {"asked": ("lrp_epsilon_plus", "gradient_x_input", "saliency", "random"),
             "paper": ("lrp_epsilon_plus", "deconvnet", "saliency", "random")}


def _verdict(aopc: dict, names) -> str:
    """Whether the mean AOPCs follow ``names`` ("yes"), and clearly so: every adjacent
    paired per-image difference above two standard errors ("yes, clearly")."""
    pairs = [aopc[a] - aopc[b] for a, b in zip(names, names[1:])]
    if not all(d.mean() > 0 for d in pairs):
        return "no"
    clear = all(d.mean() > 2 * d.std(ddof=1) / np.sqrt(len(d)) for d in pairs)
    return "yes, clearly" if clear else "yes, within 2 s.e."


def sweep(model, x, y, methods) -> str:
    """MoRF AOPC of every method over region size x replacement x output, one explanation each."""
    from lumos.metrics import region_perturbation

    maps = {}
    for name, m in methods.items():
        maps[name] = np.asarray(m(x, y) if callable(m) and not hasattr(m, "explain") else m.explain(x, target=y).values)
    names = list(dict.fromkeys(m for order in ORDERINGS.values() for m in order))
    lines = [f"## Sensitivity of the MoRF ordering: {len(x)} MNIST test images, L = min(50, regions)", "",
             "| region | replacement | output | " + " | ".join(names) + " | "
             + " | ".join(f"{k} ordering" for k in ORDERINGS) + " |",
             "|---|---|---|" + "---|" * (len(names) + len(ORDERINGS))]
    counts = {k: {"yes": 0, "clearly": 0} for k in ORDERINGS}
    for region in (2, 3, 4, 7):
        n_regions = (-(-28 // region)) ** 2
        for label, setting in SWEEP.items():
            for output in ("softmax", "raw"):
                opts = {**setting, "region": region, "n_steps": min(50, n_regions), "output": output}
                aopc = {m: region_perturbation(model, x, maps[m], y, order="morf", **opts).scores for m in names}
                verdicts = {k: _verdict(aopc, order) for k, order in ORDERINGS.items()}
                for k, v in verdicts.items():
                    counts[k]["yes"] += v != "no"
                    counts[k]["clearly"] += v == "yes, clearly"
                lines.append(f"| {region}x{region} | {label} | {output} | "
                             + " | ".join(f"{aopc[m].mean():.3f}" for m in names) + " | "
                             + " | ".join(verdicts.values()) + " |")
    total = len(lines) - 4
    lines.append("")
    for k, order in ORDERINGS.items():
        lines.append(f"- {k} ordering {' > '.join(order)} holds in {counts[k]['yes']} of {total} settings, clearly "
                     f"(every adjacent difference above 2 paired s.e.) in {counts[k]['clearly']}")
    return "\n".join(lines + [""])


def _report(table, methods, label, n) -> str:
    wide = table.pivot(index="method", columns="metric", values=["mean", "sem"])
    order = wide[("mean", "AOPC MoRF")].sort_values(ascending=False)
    lines = ["| method | AOPC MoRF (± s.e.) | AOPC LeRF (± s.e.) | ABPC |", "|---|---|---|---|"]
    for m in order.index:
        mo, le = wide.loc[m, ("mean", "AOPC MoRF")], wide.loc[m, ("mean", "AOPC LeRF")]
        lines.append(f"| {m} | {mo:.4f} ± {wide.loc[m, ('sem', 'AOPC MoRF')]:.4f} | "
                     f"{le:.4f} ± {wide.loc[m, ('sem', 'AOPC LeRF')]:.4f} | {mo - le:.4f} |")
    verdicts = []
    for k, expected in ORDERINGS.items():
        got = [m for m in order.index if m in expected]
        verdicts.append(f"- {k} ordering {' > '.join(expected)}: "
                        f"{'REPRODUCED' if got == list(expected) else 'NOT reproduced'} (measured {' > '.join(got)})")
    return "\n".join([f"## {label} replacement: {n} MNIST test images, 3x3 regions, L = 50, softmax of the "
                      "true class", "", *lines, "", *verdicts, ""])


if __name__ == "__main__":
    raise SystemExit(main())
