"""Input checks at the edge of every explainer, with messages that name the problem.

Every function raises ``ValueError`` (bad values or shapes) or ``TypeError`` (bad types)
and never returns silently-coerced garbage.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_array(inputs: Any, name: str = "inputs") -> np.ndarray:
    """Return ``inputs`` as a numpy array with a batch axis, checked for NaN/inf."""
    if isinstance(inputs, torch.Tensor):
        if inputs.device.type == "meta":
            raise ValueError(f"{name} are a meta tensor (a shape without data); pass real values")
        if inputs.is_complex():
            raise TypeError(f"{name} are complex ({inputs.dtype}); lumos explains real-valued inputs: pass the real "
                            "and imaginary parts (or magnitude and phase) as separate channels")
        arr = inputs.detach().cpu().resolve_conj().numpy()
    elif hasattr(inputs, "iloc") and hasattr(inputs, "to_numpy"):  # a pandas table: its values, writable
        arr = inputs.to_numpy(copy=True)
    else:
        try:
            arr = np.asarray(inputs)
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"{name} must be an array or tensor, got {type(inputs).__name__}: {err}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} are complex ({arr.dtype}); lumos explains real-valued inputs: pass the real and "
                        "imaginary parts (or magnitude and phase) as separate channels")
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis: got shape {arr.shape}. "
            f"Pass a batch, e.g. x[None] for a single sample of shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    check_finite(arr, name)
    if not arr.flags.writeable:  # pandas' copy-on-write views, read-only memmaps: torch would warn on every use
        arr = arr.copy()
    return arr


def check_finite(arr: np.ndarray | torch.Tensor, name: str = "inputs") -> None:
    if isinstance(arr, torch.Tensor):
        if arr.is_floating_point() and not bool(torch.isfinite(arr).all()):
            bad = int((~torch.isfinite(arr)).sum())
            raise ValueError(f"{name} contain {bad} NaN or infinite value(s); clean or impute them first")
        return
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contain {bad} NaN or infinite value(s); clean or impute them first")


def require_float(arr: np.ndarray | torch.Tensor, method: str) -> None:
    """Gradient methods need floating-point inputs: integer pixels have no gradient."""
    dtype = arr.dtype
    is_float = dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)
    if not is_float:
        raise TypeError(
            f"{method} needs floating-point inputs to take gradients, got dtype {dtype}; "
            "convert first, e.g. x.astype(np.float32) / 255"
        )


def integer_array(value: Any) -> np.ndarray | None:
    """``value`` as an int64 array when it holds integers (whole floats accepted), else None."""
    try:
        a = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if a.dtype == object:
        return None
    if a.dtype != bool and np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64, copy=False)
    if np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0):
        return a.astype(np.int64)
    return None


def targets_of(target: Any, n: int):
    """Check ``target`` for a batch of ``n`` inputs before any model call: None, one int, or
    one int per input (returned as int64). Ranges are checked against the scores later."""
    if target is None:
        return None
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    if isinstance(target, str):
        raise TypeError(f"target must be None, an int or a sequence of ints, got the string {target!r}")
    t = integer_array(target)
    if t is None:
        raise TypeError(f"target must be None, an int or a sequence of ints (class indices), got {_show(target)}")
    if t.ndim == 0:
        return int(t)
    if t.ndim != 1:
        raise ValueError(f"target must be an int or a 1-D sequence, got shape {t.shape}")
    if t.shape[0] != n:
        raise ValueError(f"target has {t.shape[0]} entries but there are {n} inputs; give one per input or a single int")
    if (t < 0).any():
        raise ValueError(f"target {int(t[t < 0][0])} is negative; targets are output indices >= 0")
    return t


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resolve_target(target: Any, scores: np.ndarray) -> np.ndarray:
    """Turn ``target`` into one int per sample.

    ``None``: the predicted class (argmax of the scores; 0 for a single-output model).
    An int: that output for every sample. A sequence: one output per sample.
    """
    n, k = scores.shape
    if target is None:
        return np.argmax(scores, axis=1).astype(np.int64) if k > 1 else np.zeros(n, dtype=np.int64)
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    t = integer_array(target)
    if t is None:
        raise TypeError(f"target must be None, an int or a sequence of ints, got {_show(target)}")
    if t.ndim == 0:
        t = np.full(n, int(t), dtype=np.int64)
    elif t.ndim == 1:
        if t.shape[0] != n:
            raise ValueError(f"target has {t.shape[0]} entries but there are {n} inputs; give one per input or a single int")
    else:
        raise ValueError(f"target must be an int or a 1-D sequence, got shape {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(
            f"target {t[bad][0]} out of range: the model has {k} output(s), so targets must lie in [0, {k - 1}]"
        )
    return t.astype(np.int64)


def broadcast_reference(ref: Any, inputs: np.ndarray, name: str = "baseline") -> np.ndarray:
    """Broadcast a baseline to the input batch.

    Accepted: a scalar, one sample shaped like ``inputs[0]``, or one per input
    shaped like ``inputs``.
    """
    if ref is None:
        return np.zeros_like(inputs, dtype=inputs.dtype if np.issubdtype(inputs.dtype, np.floating) else np.float32)
    if isinstance(ref, torch.Tensor):
        ref = ref.detach().cpu().numpy()
    ref = np.asarray(ref, dtype=inputs.dtype if np.issubdtype(inputs.dtype, np.floating) else np.float32)
    check_finite(ref, name)
    if ref.ndim == 0:
        return np.full(inputs.shape, ref, dtype=ref.dtype)
    if ref.shape == inputs.shape:
        return ref
    if ref.shape == inputs.shape[1:]:
        return np.broadcast_to(ref, inputs.shape).copy()
    raise ValueError(
        f"{name} shape {ref.shape} does not match the inputs {inputs.shape}: give a scalar, "
        f"one sample of shape {inputs.shape[1:]}, or one per input of shape {inputs.shape}"
    )


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, choices) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
