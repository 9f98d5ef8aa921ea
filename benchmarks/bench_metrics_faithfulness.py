"""The Quantus faithfulness family (issue 18 items 2 and 4): lumos against Quantus 0.6.0 on
the MNIST LeNet, the same images, Saliency attributions and settings, one row per metric.

Settings (each comparison is deterministic, see benchmarks/quantus_faithfulness_reference.py):
FaithfulnessCorrelation 100 runs of 224 pixels, Quantus's subsets recorded and given to lumos;
FaithfulnessEstimate / MonotonicityCorrelation / Monotonicity 28 pixels per step ("black",
MonotonicityCorrelation one sample per step since a deterministic baseline gives identical
samples, Monotonicity with the inserting perturb_func); Selectivity 4x4 patches; ROAD 50
percentages without noise; IROF SLIC superpixels, constant 0 baseline, Quantus one image per
batch (its batches pad and share the baseline); Sufficiency seuclidean, threshold 0.6, on the
saliency plus 1e-6 uniform noise (pixels with zero saliency in every image give Quantus NaN).

Floor (benchmarks/floors.py): the forward passes each metric's definition needs, as one plain
PyTorch loop at its fastest chunk size: the clean inputs plus every perturbed copy (100 runs;
28 single-group copies; 28 + 1 monotonicity steps; 49 patches; 50 ROAD percentages, the
imputation itself not counted; one copy per superpixel; sufficiency the clean inputs only).
Values do not change a forward pass's time, so the loop runs that many rows of the inputs.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.floors import forward_floor, recorded_inputs
from benchmarks.harness import one_thread
from benchmarks.mnist_cnn import load_mnist, trained_cnn
from benchmarks.quantus_faithfulness_reference import import_quantus, inserting
from lumos import Saliency
from lumos.metrics import (faithfulness_correlation, faithfulness_estimate, irof, monotonicity,
                           monotonicity_correlation, road, selectivity, sufficiency)
from lumos.metrics.faithfulness_quantus import slic_segments

FAMILY = "metrics_faithfulness"
OFF = dict(normalise=False, disable_warnings=True, display_progressbar=False)


def rows(quantus, model, x, y, a):
    """name -> (lumos_fn, quantus_fn, note)."""
    kw = dict(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", batch_size=256)
    fc = quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, abs=False, return_aggregate=False, **OFF)
    perturb, seen = fc.perturb_func, []

    def record(arr, indices, **k):
        seen.append(np.asarray(indices).copy())
        return perturb(arr=arr, indices=indices, **k)
    fc.perturb_func = record

    def quantus_fc():
        seen.clear()
        np.random.seed(3)
        return fc(**kw)
    quantus_fc()
    # Quantus passes V=None, so only seuclidean works; pixels whose saliency is 0 in every image
    # have variance 0 and make Quantus's distances NaN: a little noise gives each a variance
    a_var = (a + 1e-6 * np.random.default_rng(0).random(a.shape)).astype(np.float32)
    subsets = np.stack(seen, axis=1)
    return {
        "faithfulness_correlation": (
            lambda: faithfulness_correlation(model, x, a, y, subsets=subsets.copy(), baseline="black"), quantus_fc,
            "100 runs x 224 pixels, Quantus's draws replayed"),
        "faithfulness_estimate": (
            lambda: faithfulness_estimate(model, x, a, y, features_in_step=28, baseline="black"),
            lambda: quantus.FaithfulnessEstimate(features_in_step=28, abs=False, **OFF)(**kw), "28 pixels per step"),
        "monotonicity_correlation": (
            lambda: monotonicity_correlation(model, x, a, y, n_samples=1, features_in_step=28, baseline="black"),
            lambda: quantus.MonotonicityCorrelation(nr_samples=1, features_in_step=28, perturb_baseline="black",
                                                    abs=True, **OFF)(**kw), "28 pixels per step, black"),
        "monotonicity": (
            lambda: monotonicity(model, x, a, y, features_in_step=28, baseline="black").scores,
            lambda: quantus.Monotonicity(features_in_step=28, abs=True, perturb_func=inserting(x), **OFF)(**kw),
            "28 pixels per step, inserting perturb_func"),
        "selectivity": (
            lambda: selectivity(model, x, a, y, patch_size=4, baseline="black").curve[:, 1:],
            lambda: quantus.Selectivity(patch_size=4, abs=False, **OFF)(**kw), "4x4 patches, curves compared"),
        "road": (
            lambda: road(model, x, a, y, noise=0.0).mean_curve,
            lambda: list(quantus.ROAD(noise=0.0, abs=False, **OFF)(**kw).values()),
            "50 percentages, no noise, accuracy per percentage"),
        "irof": (
            lambda: irof(model, x, a, y, baseline=0.0).scores,
            lambda: quantus.IROF(perturb_baseline=0.0, abs=False, return_aggregate=False, **OFF)(
                **{**kw, "batch_size": 1}), "SLIC, baseline 0, Quantus one image per batch"),
        "sufficiency": (
            lambda: sufficiency(model, x, a_var, y),
            lambda: quantus.Sufficiency(abs=True, **OFF)(**{**kw, "a_batch": a_var}),
            "seuclidean, threshold 0.6, Saliency + 1e-6 noise"),
    }


def floor_rows(x) -> dict:
    """Model rows (forward) each metric's definition needs on ``x``: the clean inputs and
    the copies (see the module docstring)."""
    n = len(x)
    segments = sum(len(np.unique(s)) for s in slic_segments(x))
    copies = {"faithfulness_correlation": 100 * n, "faithfulness_estimate": 28 * n,
              "monotonicity_correlation": 28 * n, "monotonicity": 29 * n, "selectivity": 49 * n, "road": 50 * n,
              "irof": segments, "sufficiency": 0}
    return {k: n + v for k, v in copies.items()}


def floor_chunks(n_rows: int) -> tuple[int, ...]:
    """Chunk sizes a floor tries: 64, 167 (lumos's own forward row budget for a 784-pixel
    image, core/batching.py FORWARD_ELEMENTS: a floor that never tries it can be slower than
    lumos) and 256 rows; only 64 and 167 past 8,192 rows (timing each candidate takes minutes)."""
    from lumos.core.batching import FORWARD_ELEMENTS

    own = FORWARD_ELEMENTS // (28 * 28)
    return (64, own, 256) if n_rows <= 8192 else (64, own)


def floor_of(model, x, n_rows):
    """A forward floor over ``n_rows`` rows (the inputs repeated)."""
    return forward_floor(model, torch.as_tensor(x)[torch.arange(n_rows) % len(x)], sizes=floor_chunks(n_rows))


def _run(h):
    quantus = import_quantus()
    model = trained_cnn()
    n = 16 if h.quick else 64
    _, _, x, y = load_mnist(n)
    a = Saliency(model).explain(x, target=y).values
    need = floor_rows(x)
    for name, (ours, theirs, note) in rows(quantus, model, x, y, a).items():
        if not h.wants(name):  # benchmarks.run --only
            continue
        seen = recorded_inputs(ours, model)  # lumos skips rows a step leaves unchanged (black pixels set black)
        if 0 < len(seen) < need[name]:
            floor = forward_floor(model, seen, sizes=floor_chunks(len(seen)))
            note += f"; floor: the {len(seen):,} distinct rows lumos evaluates (of {need[name]:,} steps x inputs)"
        else:
            floor = floor_of(model, x, need[name])
        h.compare(FAMILY, name, ours, theirs, "quantus", setting=f"LeNet, {n} MNIST, Saliency", max_ratio=0.5,
                  repeats=1 if name == "irof" else None, note=note, floor_fn=floor)


# one torch thread for the comparison, the caller's thread count restored afterwards
run = one_thread(_run)
