"""Frozen Quantus 0.6.0 values for the faithfulness family (tests/data/quantus_faithfulness.json).

One case (a seeded 1x10x10 CNN, 8 images with black pixels, Gaussian attributions) and, per
metric, the Quantus settings and the lumos call that computes the same quantity. Quantus's
random draws are replayed: FaithfulnessCorrelation's subsets are recorded through a wrapped
``perturb_func`` and given to lumos as ``subsets=``; the other comparisons use deterministic
settings (``"black"`` / constant baselines, ROAD without noise). Run
``python -m benchmarks.quantus_faithfulness_reference`` (needs Quantus) to regenerate; the
test compares lumos with the file without Quantus and with Quantus live when it is installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "quantus_faithfulness.json"


def case():
    """(model, x, y, a): weights from a NumPy generator (the same on every torch version)."""
    rng = np.random.default_rng(2)  # a seed whose model predicts all three classes
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 100, 3)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(scale=0.3, size=tuple(p.shape)).astype(np.float32)))
    x = rng.random((8, 1, 10, 10)).astype(np.float32)
    x[x < 0.3] = 0.0
    a = rng.normal(size=x.shape).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    return model, x, y, a


def import_quantus():
    """Quantus after the torchvision stub, with np.trapz restored (removed in NumPy 2;
    Quantus 0.6.0's IROF and Selectivity AUC call it)."""
    from benchmarks.bench_metrics import import_quantus as _import
    from benchmarks.stubs import torchvision_stub

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid
    with torchvision_stub():
        return _import()


def inserting(x):
    """Monotonicity's perturbation as its docstring describes it: put the input's values at
    ``indices`` (Quantus 0.6.0's default puts the baseline there, into the baseline)."""
    flat = np.asarray(x).reshape(len(x), -1)

    def perturb(arr, indices, **kwargs):
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = flat[rows, indices]
        return out
    return perturb


def quantus_values(quantus, model, x, y, a) -> dict:
    """Quantus's values per metric, with what lumos needs to replay them (subsets, segments)."""
    kw = dict(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", batch_size=64)
    off = dict(normalise=False, disable_warnings=True, display_progressbar=False)
    out = {}
    out["faithfulness_estimate"] = quantus.FaithfulnessEstimate(features_in_step=5, abs=False, **off)(**kw)
    q = quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=10, abs=False, return_aggregate=False, **off)
    perturb, seen = q.perturb_func, []

    def record(arr, indices, **k):
        seen.append(np.asarray(indices).copy())
        return perturb(arr=arr, indices=indices, **k)
    q.perturb_func = record
    np.random.seed(3)
    out["faithfulness_correlation"] = q(**kw)
    out["faithfulness_correlation_subsets"] = np.stack(seen, axis=1).tolist()
    out["monotonicity_correlation"] = quantus.MonotonicityCorrelation(
        nr_samples=3, features_in_step=4, perturb_baseline="black", abs=True, **off)(**kw)
    out["monotonicity"] = quantus.Monotonicity(features_in_step=25, abs=True, perturb_func=inserting(x), **off)(**kw)
    out["selectivity"] = [list(map(float, c)) for c in quantus.Selectivity(patch_size=3, abs=False, **off)(**kw)]
    road = quantus.ROAD(noise=0.0, percentages=list(range(5, 100, 10)), abs=False, **off)(**kw)
    out["road"] = [float(v) for v in road.values()]
    q = quantus.IROF(perturb_baseline=0.0, abs=False, return_aggregate=False, **off)
    out["irof"] = q(**{**kw, "batch_size": 1})  # one image per batch: no padding, no batch-wide baseline
    from quantus.helpers.utils import get_superpixel_segments

    out["irof_segments"] = np.stack([get_superpixel_segments(np.moveaxis(img, 0, -1).astype("double"), "slic")
                                     for img in x]).tolist()
    out["sufficiency"] = quantus.Sufficiency(threshold=0.85, abs=True, **off)(**kw)
    return {k: np.asarray(v).tolist() for k, v in out.items()}


def main():
    torch.set_num_threads(1)
    quantus = import_quantus()
    values = quantus_values(quantus, *case())
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(json.dumps({"quantus": quantus.__version__, "values": values}))
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
