"""captum 0.9's DeepLift on a tiny Ismail-style TCN: the reference that
``tests/test_deeplift_tcn.py`` checks lumos against (live when captum is installed, from the
frozen ``tests/data/deeplift_tcn_captum.json`` otherwise). Regenerate with
``python -m benchmarks.deeplift_tcn_reference``.

The network is :class:`lumos.models.TCN` (two residual blocks of dilated causal convolutions,
one with a 1x1 downsample, dropout in eval mode, max or average pooling over time, linear
head) with weights drawn from numpy's seeded generator (so the reference does not depend on
torch's initialisation), in float64, with random inputs and random references.

captum gets the network in the form it handles correctly:

- ``pool="avg"``: as it is (captum has rules for every nonlinearity in it: the ReLUs);
- ``pool="max"``: captum 0.9 has no rule for ``nn.AdaptiveMaxPool1d`` (its table lists
  ``MaxPool1d/2d/3d`` only: the adaptive pool passes its ordinary gradient), and a
  ``MaxPool1d`` right after the block's final ``ReLU`` loses the ReLU's rule (captum issue
  #1104). The reference therefore replaces the pool by ``Copy -> MaxPool1d(T)`` (the same
  function: a window over the whole series, a copy between the two hooked modules).
  ``captum_as_is`` also records captum on the unmodified network (adaptive pool passing its
  gradient): what tint's ``deep_lift`` computes in the benchmark.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.bench_deeplift import Copy
from lumos.models.temporal import TCN

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deeplift_tcn_captum.json"
N, C, T, K, TARGET = 4, 3, 16, 2, 1


def tcn(pool: str = "max") -> nn.Module:
    """The tiny TCN (C=3 -> channels (4, 4), kernel 3, dropout 0.1, eval mode, float64) with
    weights ~ N(0, 1/fan_in) from ``default_rng(0)``."""
    model = TCN(C, K, channels=(4, 4), kernel_size=3, dropout=0.1, pool=pool).double().eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else p.shape[0]
            p.copy_(torch.from_numpy(rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=tuple(p.shape))))
    return model


def inputs() -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and random references (N, C, T), float64."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(N, C, T)), rng.normal(size=(N, C, T))


def captum_form(model: nn.Module) -> nn.Module:
    """The same function with every nonlinearity in a form captum 0.9 applies its rule to:
    the adaptive max pool as ``Copy -> MaxPool1d(T)``."""
    import copy

    model = copy.deepcopy(model)
    if isinstance(model.pool, nn.AdaptiveMaxPool1d):
        model.pool = nn.Sequential(Copy(), nn.MaxPool1d(T))
    return model


def captum_values(model: nn.Module, x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """captum's ``DeepLift(model).attribute(x, baselines=ref, target=TARGET)`` and its delta."""
    from captum.attr import DeepLift

    a, d = DeepLift(model).attribute(torch.from_numpy(x), baselines=torch.from_numpy(ref), target=TARGET,
                                     return_convergence_delta=True)
    return a.detach().numpy(), d.detach().numpy()


def main():
    import captum

    x, ref = inputs()
    out = {"captum": captum.__version__, "target": TARGET}
    for pool in ("max", "avg"):
        a, d = captum_values(captum_form(tcn(pool)), x, ref)
        out[pool] = {"values": a.tolist(), "delta": d.tolist()}
    a, d = captum_values(tcn("max"), x, ref)
    out["captum_as_is"] = {"values": a.tolist(), "delta": d.tolist()}
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(out) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
