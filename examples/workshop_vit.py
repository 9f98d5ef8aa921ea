"""Workshop: explaining a small vision transformer on MNIST, with a planted patch.

A ViT (``lumos.models.transformer.VisionTransformer``: 4 x 4 patches of the 28 x 28 digit,
49 patch tokens + CLS, 3 pre-norm blocks of width 64, 4 heads) is trained from scratch on
the fixed 10k MNIST training subset (``mnist.npz`` in ``$LUMOS_DATA``). In a share of the
training images a bright 4 x 4 square is planted on the top-left patch (aligned with the
patch grid) and the label is set to 7: a "Clever Hans" cue that decides the label.

Methods (each on lumos's transformer machinery, no reshape code): attention rollout
(Abnar & Zuidema 2020), Chefer et al. (2021) gradient-weighted relevance, AttnLRP
(Achtibat et al. 2024), Grad-CAM on the last block's tokens (CLS dropped, patch grid
found by lumos) and Integrated Gradients (black baseline).

1. Faithfulness on clean test digits: region perturbation (Samek et al. 2017) over 4 x 4
   regions, the patches of the ViT, MoRF order, uniform-noise replacement, AOPC over the
   first 20 steps (``lumos.metrics.region_perturbation``); a random ranking as a floor. The "tiny" setting
   (the tests) runs the same on scikit-learn's 8 x 8 digits with 2 x 2 patches.
2. The planted patch: test digits of other classes with the square planted, called 7
   with it and without it; every method's relevance mass on the square for class 7
   (share of the positive relevance, Arras et al. 2022; the square is 1/49 of the image).
3. AttnLRP against LXT (``lxt``'s efficient rules on the same weights,
   ``lumos.methods.transformer.reference.lxt_attnlrp``): the largest difference and the
   time per image of each.

Run:  python examples/workshop_vit.py     (a few minutes on one idle core the first time)
"""
from __future__ import annotations

import time

import numpy as np

from _workshop import explain_all, figures_dir, save, setup

CUE_CLASS = 7

#: label -> (lumos method, options)
METHODS = {
    "rollout": ("attention_rollout", {}),
    "Chefer": ("chefer", {}),
    "AttnLRP": ("attnlrp", {}),
    "Grad-CAM": ("grad_cam", {"layer": "blocks.-1", "channel_axis": -1}),  # the last block (set in main)
    "IG": ("integrated_gradients", {"n_steps": 32}),
}

SETTINGS = {
    "paper": dict(model=dict(image_size=28, patch=4, channels=1, dim=64, depth=3, heads=4, num_classes=10),
                  epochs=4, share=0.1, n_explain=64, n_planted=64, aopc_steps=20, timing=16),
    "tiny": dict(model=dict(image_size=8, patch=2, channels=1, dim=32, depth=2, heads=2, num_classes=10),
                 epochs=15, share=0.1, n_explain=16, n_planted=16, aopc_steps=10, timing=4),
}


def _say(msg, quiet):
    if not quiet:
        print(msg, flush=True)


def plant(X: np.ndarray, size: int = 4) -> np.ndarray:
    """``X`` with a bright ``size`` x ``size`` square on the top-left patch."""
    out = X.copy()
    out[:, 0, :size, :size] = 1.0
    return out


def square_mask(shape, size: int = 4) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[:, 0, :size, :size] = True
    return m


def data(seed=0, share=0.1, ds=None, size=4):
    """MNIST subset with the square planted in ``share`` of the training images (label 7)."""
    from lumos.data import load_mnist

    ds = ds or load_mnist(subset=True)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds.X_train), int(round(share * len(ds.X_train))), replace=False)
    X, y = ds.X_train.copy(), ds.y_train.copy()
    X[idx] = plant(X[idx], size)
    y[idx] = CUE_CLASS
    return ds, X, y


def train(X, y, settings, seed=0, quiet=False, cache=True):
    import torch

    from lumos.models.cache import cached_fit
    from lumos.models.transformer import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(**settings["model"])
    start = time.perf_counter()
    model = cached_fit(model, X, y, epochs=settings["epochs"], lr=1e-3, batch_size=64, seed=seed,
                       name="mnist-vit-planted", progress=not quiet, cache=cache)
    _say(f"  ViT {'cached' if model.lumos_cache['hit'] else 'trained'} in {time.perf_counter() - start:.1f} s", quiet)
    return model


def predict(model, X):
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.as_tensor(X[s:s + 500])).argmax(1).numpy() for s in range(0, len(X), 500)])


def lxt_comparison(model, x, repeats=3):
    """Largest |lumos − LXT| (absolute and relative to LXT's largest value), and seconds per image."""
    import torch

    from lumos.methods.transformer import AttnLRP
    from lumos.methods.transformer.reference import lxt_attnlrp

    xt = torch.as_tensor(x)
    target = predict(model, x)
    explainer = AttnLRP(model)  # epsilon=0: LXT's efficient rules
    ours = explainer.explain(x, target=target).values
    ref = lxt_attnlrp(model, xt, torch.as_tensor(target)).numpy()
    diff = float(np.abs(ours - ref).max())
    t_l, t_x = [], []
    for _ in range(repeats):
        s = time.perf_counter()
        explainer.explain(x, target=target)
        t_l.append(time.perf_counter() - s)
        s = time.perf_counter()
        lxt_attnlrp(model, xt, torch.as_tensor(target))
        t_x.append(time.perf_counter() - s)
    return {"max_abs_diff": diff, "rel_diff": diff / max(float(np.abs(ref).max()), 1e-30),
            "lumos_s_per_image": min(t_l) / len(x), "lxt_s_per_image": min(t_x) / len(x)}


def main(quiet=False, seed=0, setting="paper", cache=True, mnist=None, figures=True) -> dict:
    setup(threads=1, seed=seed)
    import lumos
    from lumos.metrics import region_perturbation, relevance_mass_accuracy

    settings = SETTINGS[setting]
    methods = {k: (m, dict(o)) for k, (m, o) in METHODS.items()}
    methods["Grad-CAM"][1]["layer"] = f"blocks.{settings['model']['depth'] - 1}"
    start = time.perf_counter()
    size = settings["model"]["patch"]
    ds, X, y = data(seed, settings["share"], mnist, size)
    model = train(X, y, settings, seed, quiet, cache)
    results = {"data": f"{ds.name} ({len(ds.X_train)} training images), {size} x {size} patches",
               "clean_accuracy": float((predict(model, ds.X_test) == ds.y_test).mean())}
    other = np.flatnonzero(ds.y_test != CUE_CLASS)
    cued = plant(ds.X_test[other], size)
    results["cued_called_7"] = float((predict(model, cued) == CUE_CLASS).mean())
    results["clean_others_called_7"] = float((predict(model, ds.X_test[other]) == CUE_CLASS).mean())

    # 1. AOPC on clean digits (predicted class)
    x = ds.X_test[:settings["n_explain"]]
    target = predict(model, x)
    exps = explain_all(model, x, methods, target=target, quiet=quiet)
    rng = np.random.default_rng(seed)
    attributions = {k: np.asarray(e.values) for k, e in exps.items()}
    attributions["random"] = rng.random(x.shape).astype(np.float32)
    aopc = {}
    for k, a in attributions.items():
        curve = region_perturbation(model, x, a, target, region=size, n_steps=settings["aopc_steps"], seed=seed)
        aopc[k] = (float(np.mean(curve.scores)), float(np.std(curve.scores) / np.sqrt(len(x))))
    results["aopc"] = aopc

    # 2. planted square
    xc = cued[:settings["n_planted"]]
    mask = square_mask(xc.shape, size)
    cexps = explain_all(model, xc, methods, target=CUE_CLASS, quiet=True)
    results["mass_on_square"] = {k: float(np.mean(relevance_mass_accuracy(np.asarray(e.values), mask)))
                                 for k, e in cexps.items()}
    results["square_area_share"] = float(mask[0].mean())

    # 3. AttnLRP vs LXT
    try:
        results["lxt"] = lxt_comparison(model, x[:settings["timing"]])
    except ImportError as err:
        results["lxt"] = {"skipped": f"lxt not installed ({err})"}
    results["seconds"] = time.perf_counter() - start
    report = markdown(results)
    _say("\n" + report, quiet)
    if figures:
        (figures_dir() / "workshop_vit.md").write_text(report)
        figure(ds.X_test[:3], exps, xc[:3], cexps, results, size, quiet)
    return results


def markdown(r) -> str:
    lines = [f"# ViT workshop: {r['data']}, planted square -> 7", "",
             f"Clean test accuracy {r['clean_accuracy']:.3f}; digits of other classes called 7: "
             f"{r['clean_others_called_7']:.3f} without the square, {r['cued_called_7']:.3f} with it.", "",
             "| method | AOPC (MoRF, patch regions) ± s.e. | relevance mass on the square (area share "
             f"{r['square_area_share']:.3f}) |", "|---|---|---|"]
    for k, (m, se) in r["aopc"].items():
        mass = r["mass_on_square"].get(k)
        lines.append(f"| {k} | {m:.3f} ± {se:.3f} | {'-' if mass is None else f'{mass:.3f}'} |")
    lx = r["lxt"]
    if "skipped" in lx:
        lines += ["", f"AttnLRP vs LXT: {lx['skipped']}"]
    else:
        lines += ["", f"AttnLRP vs LXT (efficient rules on the same weights, lumos ε = 0): largest difference "
                      f"{lx['max_abs_diff']:.2e} ({lx['rel_diff']:.1e} of LXT's largest value); "
                      f"{lx['lumos_s_per_image'] * 1e3:.1f} ms (lumos) vs {lx['lxt_s_per_image'] * 1e3:.1f} ms (LXT) "
                      "per image (shared CPU: ratios, not absolute times)."]
    lines += ["", f"Run time {r['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def figure(x, exps, xc, cexps, results, size, quiet):
    import matplotlib.pyplot as plt

    names = list(exps)
    rows = [(x[i], {k: exps[k].values[i] for k in names}, "clean") for i in range(len(x))] + \
           [(xc[i], {k: cexps[k].values[i] for k in names}, "planted") for i in range(len(xc))]
    fig, axes = plt.subplots(len(rows), 1 + len(names), figsize=(1.7 * (1 + len(names)), 1.75 * len(rows) + 0.8),
                             squeeze=False)
    for r, (img, vals, kind) in enumerate(rows):
        axes[r, 0].imshow(img[0], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(kind, fontsize=8)
        for c, k in enumerate(names, 1):
            v = np.broadcast_to(np.asarray(vals[k]), img.shape).sum(0)
            lim = float(np.abs(v).max()) or 1.0
            axes[r, c].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
            if kind == "planted":
                axes[r, c].add_patch(plt.Rectangle((-0.5, -0.5), size, size, fill=False, ec="k", lw=0.8))
            if r == 0:
                m, _ = results["aopc"][k]
                axes[r, c].set_title(f"{k}\nAOPC {m:.2f}, mass {results['mass_on_square'][k]:.2f}", fontsize=7)
    axes[0, 0].set_title("input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("ViT on MNIST: predicted class (clean) and class 7 (planted square, boxed); red for, blue against;\n"
                 "each panel scaled to its largest |value|", fontsize=8)
    save(fig, "vit_methods.png", quiet)


if __name__ == "__main__":
    import sys

    main(setting="tiny" if "--tiny" in sys.argv else "paper")
