"""Helpers shared by the workshop scripts: which methods are installed, explaining by
registry name with a clear note when a method is missing or fails, and saving figures."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import lumos

FIGURES = Path(__file__).resolve().parent / "figures"


def available(*names: str) -> list[str]:
    """The subset of ``names`` that the installed lumos registers (families merge over time)."""
    registered = lumos.list_methods()
    from lumos.core import registry

    out = []
    for n in names:
        try:
            key = registry.get(n).name
        except ValueError:
            continue
        if key in registered and n not in out:
            out.append(n)
    return out


def explain_all(model, x, names, target=None, options=None, quiet=False):
    """``{name: Explanation}`` for each available method; missing or failing ones are reported."""
    options = options or {}
    out = {}
    for name in names:
        if not available(name):
            _say(f"  {name:<24} not installed in this lumos (skipped)", quiet)
            continue
        start = time.perf_counter()
        try:
            out[name] = lumos.explain(model, x, method=name, target=target, **options.get(name, {}))
            _say(f"  {name:<24} {time.perf_counter() - start:6.2f} s", quiet)
        except Exception as err:  # noqa: BLE001 - a workshop keeps going and says why
            _say(f"  {name:<24} failed: {type(err).__name__}: {str(err).splitlines()[0][:150]}", quiet)
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
