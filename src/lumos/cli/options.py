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


def options_per_method(options: dict, classes: dict) -> dict[str, dict]:
    """Split the ``-O`` options of a command that runs several methods (``classes``: name ->
    explainer class): ``key=value`` goes to every method that takes ``key``,
    ``method.key=value`` (``ig.n_steps=64``) to that method only. A key no method takes is
    an error naming the closest option."""
    from lumos.core import registry

    out: dict[str, dict] = {name: {} for name in classes}
    taken = {name: set(registry.options_of(cls)) | {"class_names"} for name, cls in classes.items()}
    for key, value in options.items():
        method, _, option = key.rpartition(".")
        if method:
            name = registry.get(method).name
            if name not in classes:
                raise ValueError(f"--option {key}: {name} is not one of the methods this command runs")
            targets = [name]
        else:
            targets = [n for n in classes if option in taken[n]]
        if method and option not in taken[name]:
            raise ValueError(f"--option {option!r} is not an option of {name}{registry.closest(option, taken[name])}")
        if not targets:
            known = sorted(set().union(*taken.values())) if taken else []
            raise ValueError(f"--option {option!r} is not an option of the methods this command runs"
                             f"{registry.closest(option, known)}")
        for name in targets:
            out[name][option] = value
    return {name: opts for name, opts in out.items() if opts}


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


TARGET_HELP = ("Output to explain: 'predicted' (default; 'pred' also accepted), a class index, or a class name "
               "(from the data's class_names, --label-column values or the model's classes_)")


def parse_target(text: str | None, *, label: bool = False, names: bool = False):
    """``None``/``"predicted"``/``"pred"`` -> None (the predicted class), an integer class
    index, (``label=True``) ``"label"``, or (``names=True``) a class name as given."""
    if text is None or text.strip().lower() in ("pred", "predicted", "prediction"):
        return None
    if label and text == "label":
        return "label"
    try:
        return int(text)
    except ValueError:
        if names:
            return text
        choices = "a class index, 'predicted' or 'label'" if label else "a class index, a class name or 'predicted'"
        raise ValueError(f"--target must be {choices}, got {text!r}") from None
