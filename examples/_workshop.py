"""Helpers shared by the workshop scripts: explaining with several lumos methods (timed),
saving figures and seeding."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import lumos

FIGURES = Path(__file__).resolve().parent / "figures"


def explain_all(model, x, methods, target=None, quiet=False) -> dict:
    """``{label: Explanation}`` for ``methods``, a dict ``{label: (registry name, options)}``
    (or an iterable of registry names with default options). Each run is timed and printed;
    an error is raised, never hidden."""
    if not isinstance(methods, dict):
        methods = {name: (name, {}) for name in methods}
    out = {}
    for label, (name, options) in methods.items():
        start = time.perf_counter()
        out[label] = lumos.explain(model, x, method=name, target=target, **options)
        _say(f"  {label:<28} {time.perf_counter() - start:6.2f} s", quiet)
    return out


def _say(msg, quiet=False):
    if not quiet:
        print(msg, flush=True)


def save(fig, name: str, quiet=False) -> Path:
    """Save a figure under examples/figures (or $LUMOS_FIGURES) and close it."""
    import matplotlib.pyplot as plt

    folder = Path(os.environ.get("LUMOS_FIGURES", FIGURES))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    _say(f"  wrote {path}", quiet)
    return path


def normalise(v: np.ndarray) -> np.ndarray:
    m = float(np.max(np.abs(v)))
    return v / m if m > 0 else v


def setup(threads: int = 2, seed: int = 0):
    import matplotlib
    import torch

    matplotlib.use("Agg")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
