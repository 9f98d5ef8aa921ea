"""Quantus 0.6.0's SmoothMPRT, EfficientMPRT and RandomLogit on a small fixed CNN, the
reference that ``tests/test_metrics_sanity_variants.py`` checks lumos against (live when
Quantus is installed, from the frozen ``tests/data/sanity_variants_reference.json``
otherwise). Regenerate with ``python -m benchmarks.sanity_reference``.

Same model, inputs, explainer and seeds in both libraries:

- the explainer is lumos's :class:`~lumos.Saliency`, handed to Quantus as its
  ``explain_func`` and in place of ``quantus.explain`` (which SmoothMPRT calls directly);
- layers: Quantus re-seeds ``torch.manual_seed(seed + 1)`` before each layer, so Quantus
  ``seed=42`` is lumos ``seed=43, layer_seeds="same"``;
- SmoothMPRT's noise: Quantus draws ``np.random.randn`` per batch and sample; here it is
  replayed from :func:`lumos.metrics.sanity.smooth_mprt_noise` (the draws lumos uses), in
  Quantus's order (batch after batch, samples within a batch), for every model;
- RandomLogit with ``batch_size=1`` (Quantus normalises by its batch's maximum; one input a
  batch is lumos's per-map normalisation) and off classes drawn as Quantus does per batch.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "sanity_variants_reference.json"
N_SAMPLES, NOISE_SEED, BATCH, QUANTUS_SEED = 5, 3, 4, 42


def setup():
    """A seeded (untrained) two-conv CNN, 6 inputs 1 x 12 x 12, predicted classes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3),
                                    torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10)).eval()
    x = np.random.default_rng(0).random((6, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.as_tensor(x)).argmax(1).numpy()
    return model, x, y


def explain(model, inputs, targets, **kwargs):
    from lumos import Saliency

    return Saliency(model).explain(np.asarray(inputs, dtype=np.float32), target=np.asarray(targets)).values


@contextlib.contextmanager
def replayed_noise(z: np.ndarray, n_rows: int, batch: int):
    """``np.random.randn`` returning ``z[sample, batch rows]`` in Quantus's order of draws."""
    per_pass = -(-n_rows // batch) * z.shape[0]
    calls = [0]
    real = np.random.randn

    def randn(*shape):
        b, n = divmod(calls[0] % per_pass, z.shape[0])
        calls[0] += 1
        out = z[n, b * batch:(b + 1) * batch]
        if out.shape != shape:
            raise RuntimeError(f"noise replay out of step: {out.shape} != {shape}")
        return out.copy()

    np.random.randn = randn
    try:
        yield
    finally:
        np.random.randn = real


def quantus_scores() -> dict:
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():
        import quantus

    from lumos.metrics.sanity import off_class_targets, smooth_mprt_noise

    model, x, y = setup()
    real_explain = quantus.explain
    quantus.explain = explain
    try:
        with replayed_noise(smooth_mprt_noise(x, N_SAMPLES, NOISE_SEED), len(x), BATCH):
            smooth = quantus.SmoothMPRT(nr_samples=N_SAMPLES, seed=QUANTUS_SEED, disable_warnings=True)(
                model=model, x_batch=x, y_batch=y, explain_func=explain, batch_size=BATCH)
    finally:
        quantus.explain = real_explain
    efficient = quantus.EfficientMPRT(seed=QUANTUS_SEED, disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, explain_func=explain, batch_size=BATCH)
    logit = quantus.RandomLogit(num_classes=10, seed=QUANTUS_SEED, disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, explain_func=explain, batch_size=1)
    off = [int(off_class_targets(y[i:i + 1], 10, QUANTUS_SEED)[0]) for i in range(len(y))]
    return {"smooth_mprt": {k: np.asarray(v, dtype=float).tolist() for k, v in smooth.items() if k != "original"},
            "efficient_mprt": np.asarray(efficient, dtype=float).tolist(),
            "random_logit": np.asarray(logit, dtype=float).tolist(), "random_logit_off_target": off,
            "quantus": quantus.__version__ if hasattr(quantus, "__version__") else "0.6.0"}


def lumos_scores() -> dict:
    from lumos import Saliency
    from lumos.metrics.sanity import efficient_mprt, random_logit, smooth_mprt

    model, x, y = setup()
    ref = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else quantus_scores()
    smooth = smooth_mprt(Saliency(model), model, x, y, n_samples=N_SAMPLES, noise_seed=NOISE_SEED,
                         seed=QUANTUS_SEED + 1, layer_seeds="same")
    return {"smooth_mprt": {s: smooth.scores["spearman"][i].tolist() for i, s in enumerate(smooth.stages)},
            "efficient_mprt": efficient_mprt(Saliency(model), model, x, y, seed=QUANTUS_SEED + 1,
                                             layer_seeds="same").scores.tolist(),
            "random_logit": random_logit(Saliency(model), model, x, y,
                                         off_target=ref["random_logit_off_target"]).scores.tolist()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(quantus_scores(), indent=1) + "\n")
    print(f"wrote {REFERENCE}")
