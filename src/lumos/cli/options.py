"""Values given on the command line: ``-O key=value`` method options and ``--target``.

A value is read as JSON when it parses (``n_steps=32``, ``window=[1,10]``), as an array
from a ``.npy`` or single-array ``.npz`` file (``background=bg.npy``; ``allow_pickle=False``,
numeric arrays only), and as a string otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def parse_option(text: str) -> tuple[str, object]:
    """``"key=value"`` -> ``(key, value)`` (see the module docstring)."""
    if "=" not in text:
        raise ValueError(f"--option {text!r} is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"--option {text!r} has no key before '='")
    if raw.lower().endswith((".npy", ".npz")):
        return key, load_option_array(raw, key)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_options(texts) -> dict:
    """Every ``-O`` of a command as one dict (a key given twice keeps the last value)."""
    return dict(parse_option(t) for t in texts)


def load_option_array(path: str, key: str) -> np.ndarray:
    """The numeric array in a ``.npy`` or single-array ``.npz``; pickled objects refused."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--option {key}={path}: no such file")
    try:
        loaded = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"--option {key}={path}: {_why(err)}") from None
    if isinstance(loaded, np.ndarray):
        arr = loaded
    else:
        with loaded:
            if len(loaded.files) != 1:
                raise ValueError(f"--option {key}={path} holds {len(loaded.files)} arrays "
                                 f"({', '.join(loaded.files)}); give a .npy or a .npz with one array")
            try:
                arr = loaded[loaded.files[0]]
            except ValueError as err:
                raise ValueError(f"--option {key}={path}: {_why(err)}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"--option {key}={path}: the array must be numeric, got dtype {arr.dtype}")
    return arr


def _why(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "pickle" in text.lower() or "object arrays" in text.lower():
        return "holds pickled Python objects, which are not read (numeric arrays only)"
    return f"cannot read it as an array ({text})"


def parse_target(text: str | None, *, label: bool = False):
    """``None``/``"pred"``/``"predicted"`` -> None (the predicted class), an integer class
    index, or (``label=True``) ``"label"``."""
    if text is None or text in ("pred", "predicted"):
        return None
    if label and text == "label":
        return "label"
    try:
        return int(text)
    except ValueError:
        choices = "a class index, 'pred' or 'label'" if label else "a class index or 'pred'"
        raise ValueError(f"--target must be {choices}, got {text!r}") from None
