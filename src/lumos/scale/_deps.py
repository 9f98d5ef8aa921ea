"""Optional dependencies of :mod:`lumos.scale` (the ``scale`` extra): zarr and dask.

Importing lumos never needs them; the functions that do call :func:`require` first, which
raises an ``ImportError`` naming the extra to install.
"""
from __future__ import annotations

import importlib

_EXTRA_HINT = "install it with: pip install 'lumos-xai[scale]'"


def require(module: str, purpose: str):
    """Import ``module`` or raise an ImportError that names the ``scale`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional package {module.split('.')[0]!r} (lumos extra 'scale'); "
            f"{_EXTRA_HINT}"
        ) from err


def zarr():
    mod = require("zarr", "lumos.explain_dataset / lumos.open_store")
    major = int(mod.__version__.split(".")[0])
    if major < 3:
        raise ImportError(f"lumos.scale needs zarr >= 3, found {mod.__version__}; {_EXTRA_HINT}")
    return mod
