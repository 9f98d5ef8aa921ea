"""Helpers shared by the workshop scripts: explaining with several lumos methods (timed),
saving figures and seeding.

Where figures go (:func:`figures_dir`): ``$LUMOS_FIGURES`` when set, else
``examples/output/`` (not tracked by git). The committed figures in ``examples/figures/``,
the ones the READMEs show, are rewritten only when asked: run a script with
``--update-figures`` (or with ``LUMOS_FIGURES=examples/figures``).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

import lumos

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"
"""The committed figures (shown by README.md and examples/README.md)."""
OUTPUT = HERE / "output"
"""Where the scripts write by default (git-ignored)."""
UPDATE_FLAG = "--update-figures"


def updating(argv=None) -> bool:
    """Whether this run was asked to refresh the committed figures (``--update-figures``)."""
    return UPDATE_FLAG in (sys.argv[1:] if argv is None else argv)


def figures_dir(update: bool | None = None) -> Path:
    """The folder figures are written to (created): ``examples/figures`` with
    ``--update-figures`` (or ``update=True``), else ``$LUMOS_FIGURES``, else
    ``examples/output``."""
    if update is None:
        update = updating()
    if update:
        folder = FIGURES
    elif os.environ.get("LUMOS_FIGURES"):
        folder = Path(os.environ["LUMOS_FIGURES"]).expanduser()
    else:
        folder = OUTPUT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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


def save(fig, name: str, quiet=False, **savefig) -> Path:
    """Save a figure in :func:`figures_dir` and close it."""
    import matplotlib.pyplot as plt

    path = figures_dir() / name
    fig.savefig(path, **{"dpi": 110, "bbox_inches": "tight", **savefig})
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
