"""The Zarr store written by :func:`lumos.explain_dataset`.

Layout (one Zarr v3 group)::

    attrs["lumos"]     format, method, params, fingerprint (what must match to resume),
                       n_rows, chunk_rows, fields (name -> dtype, shape) once known
    values             (N, ...)  attributions, chunks of ``chunk_rows`` rows
    target             (N,)      explained output per row
    prediction         (N, K)    model scores
    base_value, delta  (N,)      when the method defines them (IG, Shapley values...)
    extras/<name>      (N, ...)  per-row method extras (standard deviations, raw CAM maps...)
    done               (n_chunks,) bool, one Zarr chunk per element: True once every array
                       of that row chunk is written

Every array is chunked by the same ``chunk_rows`` rows, so one task writes whole Zarr
chunks (no two writers ever touch the same file) and its "done" flag last: a chunk
interrupted half-way is simply recomputed on resume.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lumos.core.explanation import to_jsonable
from lumos.scale import _deps

FORMAT = "lumos.store/1"
PER_ROW_FIELDS = ("target", "prediction", "base_value", "delta")


def check_out_path(out) -> Path:
    """Validate the store location: a new folder in an existing directory, or an
    existing lumos store."""
    if out is None or (isinstance(out, str) and not out.strip()):
        raise ValueError("out must name the folder of the Zarr store, e.g. out='explanations.zarr'")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike), got {type(out).__name__}")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"out={str(path)!r} is an existing file, not a Zarr store folder; choose another path")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the parent folder of out={str(path)!r} does not exist: {str(path.parent)!r}")
    if not path.exists() and not os.access(path.parent, os.W_OK):
        raise PermissionError(f"cannot create the store {str(path)!r}: {str(path.parent)!r} is not writable")
    return path


def digest(value: Any) -> str:
    """Short content hash of arrays, tensors, dicts and lists (for fingerprints)."""
    h = hashlib.sha256()

    def feed(v):
        if hasattr(v, "detach") and hasattr(v, "cpu"):
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            h.update(f"{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(str(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            for item in v:
                feed(item)
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()[:16]


def model_digest(model) -> str:
    """Hash of a torch model's class and parameters/buffers, or of a callable's name."""
    state = getattr(model, "state_dict", None)
    if callable(state):
        return digest({"class": type(model).__qualname__, "state": dict(state())})
    return digest(getattr(model, "__qualname__", type(model).__qualname__))


def explainer_digest(explainer) -> str:
    """Hash of an explainer's configuration, including array-valued settings (baselines,
    backgrounds) that ``params()`` only summarises."""
    arrays = {k: v for k, v in sorted(vars(explainer).items())
              if k != "adapter" and not k.startswith("_") and (isinstance(v, np.ndarray) or hasattr(v, "detach"))}
    return digest({"params": to_jsonable(explainer.params()), "arrays": arrays})


def open_root(path: Path, mode: str = "r"):
    zarr = _deps.zarr()
    return zarr.open_group(str(path), mode=mode, zarr_format=3)


def read_attrs(path: Path) -> dict | None:
    """The lumos attributes of the store at ``path``, or None if it holds none."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return None
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return doc.get("attributes", {}).get("lumos")


def prepare(path: Path, header: dict, overwrite: bool = False):
    """Create the store (or check that an existing one was written with the same
    configuration) and return the root group."""
    zarr = _deps.zarr()
    existing = read_attrs(path) if path.exists() else None
    if path.exists() and existing is None and any(path.iterdir()) and not overwrite:
        raise ValueError(
            f"{str(path)!r} exists and is not a lumos store; choose a new path (or overwrite=True to replace it)"
        )
    if existing is not None and not overwrite:
        mismatch = _differences(existing.get("fingerprint", {}), header["fingerprint"])
        if existing.get("format") != FORMAT or mismatch:
            what = "; ".join(f"{k}: store has {a!r}, this call {b!r}" for k, a, b in mismatch) or "format"
            raise ValueError(
                f"the store {str(path)!r} was written by method {existing.get('method')!r} with another "
                f"configuration ({what}); resuming would mix explanations. Use a new out path, or "
                "overwrite=True to discard it."
            )
        return zarr.open_group(str(path), mode="r+")
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    n_chunks = -(-header["n_rows"] // header["chunk_rows"])
    root.create_array("done", shape=(n_chunks,), chunks=(1,), dtype="bool", fill_value=False)
    root.attrs["lumos"] = to_jsonable({**header, "format": FORMAT, "fields": None})
    return root


def _differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    new = json.loads(json.dumps(to_jsonable(new)))
    keys = sorted(set(old) | set(new))
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def result_fields(exp, rows: int) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, per-row shape) of the arrays of one chunk's Explanation."""
    fields = {"values": exp.values}
    for name in PER_ROW_FIELDS:
        v = getattr(exp, name)
        if v is not None:
            fields[name] = v
    for name, v in exp.extras.items():
        if v.ndim >= 1 and v.shape[0] == rows and v.dtype != object:
            fields[f"extras/{name}"] = v
    out = {}
    for name, v in fields.items():
        v = np.asarray(v)
        if v.shape[0] != rows:
            raise ValueError(f"the explainer returned {name} with {v.shape[0]} rows for a chunk of {rows} inputs")
        out[name] = (v.dtype.str, list(v.shape[1:]))
    return out


def create_arrays(root, fields: dict, n_rows: int, chunk_rows: int) -> None:
    """Create the per-row arrays once the first chunk tells their dtypes and shapes."""
    for name, (dtype, shape) in fields.items():
        if name in root:
            continue
        fill = 0 if np.dtype(dtype).kind in "iub" else np.nan
        root.create_array(name, shape=(n_rows, *shape), chunks=(chunk_rows, *shape), dtype=np.dtype(dtype),
                          fill_value=fill)
    attrs = dict(root.attrs["lumos"])
    attrs["fields"] = fields
    root.attrs["lumos"] = attrs


def write_chunk(root, index: int, start: int, stop: int, exp, fields: dict) -> None:
    """Write the arrays of one row chunk, then mark it done."""
    for name, (dtype, _) in fields.items():
        if name.startswith("extras/"):
            value = exp.extras[name[len("extras/"):]]
        else:
            value = getattr(exp, name)
        root[name][start:stop] = np.asarray(value).astype(np.dtype(dtype), copy=False)
    root["done"][index] = True


def done_mask(root) -> np.ndarray:
    return np.asarray(root["done"][:], dtype=bool)
