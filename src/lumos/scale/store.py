"""The Zarr store written by :func:`lumos.explain_dataset`.

Layout (one folder, a Zarr v3 group)::

    attrs["lumos"]     format, method, params, fingerprint (what must match to resume),
                       n_rows, chunk_rows, fields (name -> dtype, shape) once known, seed
    values             (N, ...)  attributions, chunks of ``chunk_rows`` rows
    target             (N,)      explained output per row
    prediction         (N, K)    model scores
    base_value, delta  (N,)      when the method defines them (IG, Shapley values...)
    extras/<name>      (N, ...)  per-row method extras (standard deviations, raw CAM maps...)
    records/<i>.json   one record per finished row chunk ``i``

Every array is chunked by the same ``chunk_rows`` rows, so one task writes whole Zarr
chunks (no two writers ever touch the same file), then the chunk's record: the rows, a
BLAKE2b hash of the input rows (bytes, dtype and shape, and the labels when the data
yield them), a BLAKE2b checksum of each stored array's rows, and a checksum of the record
itself. The record is written to a temporary file and renamed, so a process killed at any
moment leaves either no record or a whole one; a chunk interrupted half-way has none and
is recomputed on resume.

The records are what make a store verifiable rather than trusted. On resume every
recorded chunk is checked: input rows that differ from those the record hashed refuse
the resume (other data), outputs that do not match their checksums (a deleted, swapped,
garbled or truncated chunk file, a lost array metadata file) or a missing or unreadable
record make that chunk be recomputed. :func:`lumos.open_store` checks the same checksums
on every read and names the damaged chunk.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from lumos.core.explanation import to_jsonable
from lumos.scale import _deps

FORMAT = "lumos.store/2"
RECORD_FORMAT = "lumos.chunk/1"
RECORDS = "records"
PER_ROW_FIELDS = ("target", "prediction", "base_value", "delta")
_REPAIR = "run explain_dataset again with the same arguments to recompute it"


class StoreDamagedError(ValueError):
    """A chunk of a store does not hold what its record says was written (or its record
    is unreadable). ``chunk`` is the row chunk, ``array`` the array concerned (or None)."""

    def __init__(self, message: str, chunk: int | None = None, array: str | None = None):
        super().__init__(message)
        self.chunk, self.array = chunk, array


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


# -- checksums ----------------------------------------------------------------------
def _canonical(a) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(a))
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def array_hash(*arrays) -> str:
    """BLAKE2b (128 bits) of arrays: dtype, shape and bytes of each (None counts too)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = _canonical(a)
        h.update(f"{a.dtype.str}{list(a.shape)};".encode())
        h.update(a.reshape(-1).view(np.uint8))  # the bytes, without a copy
    return h.hexdigest()


def input_digest(x, labels=None) -> dict:
    """What a record keeps of a chunk's input rows (and labels)."""
    x = np.asarray(x)
    return {"dtype": _canonical(x[:0]).dtype.str, "shape": list(x.shape), "blake2b": array_hash(x, labels)}


def _record_check(body: dict) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# -- the store ----------------------------------------------------------------------
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
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes"), dict):
        return None
    attrs = doc["attributes"].get("lumos")
    return attrs if isinstance(attrs, dict) else None


def _ensure_records(root) -> None:
    if RECORDS not in root:  # a group node, so that Zarr lists the store without warnings
        root.create_group(RECORDS)


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
        if existing.get("format") != FORMAT:
            raise ValueError(
                f"the store {str(path)!r} has format {existing.get('format')!r} (an older lumos), this version "
                f"writes {FORMAT!r} and cannot resume it. Use a new out path, or overwrite=True to discard it."
            )
        mismatch = _differences(existing.get("fingerprint", {}), header["fingerprint"])
        if mismatch:
            what = "; ".join(f"{k}: store has {a!r}, this call {b!r}" for k, a, b in mismatch)
            raise ValueError(
                f"the store {str(path)!r} was written by method {existing.get('method')!r} with another "
                f"configuration ({what}); resuming would mix explanations. Use a new out path, or "
                "overwrite=True to discard it."
            )
        root = zarr.open_group(str(path), mode="r+")
        _ensure_records(root)
        return root
    # one write of the group's metadata, attributes included: a kill leaves a lumos store or none
    attrs = to_jsonable({**header, "format": FORMAT, "fields": None})
    root = zarr.create_group(str(path), overwrite=True, zarr_format=3, attributes={"lumos": attrs})
    _ensure_records(root)
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
        out[name] = (_canonical(v[:0]).dtype.str, list(v.shape[1:]))
    return out


def reported_seed(exp):
    """The seed an Explanation says it used (``meta`` or ``params``), else None."""
    for where in (getattr(exp, "meta", None), getattr(exp, "params", None)):
        if isinstance(where, dict) and where.get("seed") is not None:
            return to_jsonable(where["seed"])
    return None


def create_arrays(root, fields: dict, n_rows: int, chunk_rows: int, seed=None) -> None:
    """Create the per-row arrays (those missing) once the first chunk tells their dtypes
    and shapes. Existing chunk files are kept: they are verified against their records."""
    for name, (dtype, shape) in fields.items():
        if name in root:
            continue
        fill = 0 if np.dtype(dtype).kind in "iub" else np.nan
        root.create_array(name, shape=(n_rows, *shape), chunks=(chunk_rows, *shape), dtype=np.dtype(dtype),
                          fill_value=fill)
    attrs = dict(root.attrs["lumos"])
    if attrs.get("fields") is None or (seed is not None and "seed" not in attrs):
        attrs["fields"] = fields
        if seed is not None:
            attrs["seed"] = seed
        root.attrs["lumos"] = to_jsonable(attrs)


def _stored(value, dtype: str, shape: list, rows: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value).astype(np.dtype(dtype), copy=False), (rows, *shape))


def write_chunk(root, path: Path, index: int, start: int, stop: int, exp, fields: dict, input_info: dict,
                seed=None) -> None:
    """Write the arrays of one row chunk, then (atomically) its record."""
    output = {}
    for name, (dtype, shape) in fields.items():
        value = exp.extras[name[len("extras/"):]] if name.startswith("extras/") else getattr(exp, name)
        value = _stored(value, dtype, shape, stop - start)
        # every chunk as a file, also an all-fill one: what is read back is what was hashed
        root[name].with_config({"write_empty_chunks": True})[start:stop] = value
        output[name] = array_hash(value)
    body = {"format": RECORD_FORMAT, "chunk": int(index), "rows": [int(start), int(stop)],
            "input": input_info, "output": output}
    if seed is not None:
        body["seed"] = seed
    write_record(path, index, body)


def record_path(path: Path, index: int) -> Path:
    return Path(path) / RECORDS / f"{int(index)}.json"


def write_record(path: Path, index: int, body: dict) -> None:
    """Write a chunk's record: to a temporary file, flushed to disk, then renamed."""
    body = to_jsonable(body)
    text = json.dumps({**body, "check": _record_check(body)}, sort_keys=True, indent=1)
    final = record_path(path, index)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_record(path: Path, index: int) -> None:
    try:
        record_path(path, index).unlink()
    except FileNotFoundError:
        pass


def read_record(path: Path, index: int, n_rows: int, chunk_rows: int) -> tuple[str, Any]:
    """``("ok", record)``, ``("missing", None)`` or ``("corrupt", reason)`` for chunk ``index``."""
    file = record_path(path, index)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return "missing", None
    except OSError as err:
        return "corrupt", f"cannot be read ({err})"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "corrupt", "is not valid JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("check"), str):
        return "corrupt", "is not a chunk record"
    check = doc.pop("check")
    if _record_check(doc) != check:
        return "corrupt", "does not match its own checksum"
    start = int(index) * chunk_rows
    rows = [start, min(start + chunk_rows, n_rows)]
    if (doc.get("format") != RECORD_FORMAT or doc.get("chunk") != index or doc.get("rows") != rows
            or not isinstance(doc.get("input"), dict) or not isinstance(doc.get("output"), dict)):
        return "corrupt", f"does not describe chunk {index} (rows {rows[0]}:{rows[1]})"
    return "ok", doc


def record_status(path: Path, n_rows: int, chunk_rows: int, chunks) -> np.ndarray:
    """True for each chunk of ``chunks`` whose record is present and whole."""
    return np.array([read_record(path, int(i), n_rows, chunk_rows)[0] == "ok" for i in chunks], dtype=bool)


def where(path: Path, index: int, start: int, stop: int) -> str:
    return f"chunk {index} (rows {start}:{stop}) of the store {str(path)!r}"


def read_chunk(root, path: Path, name: str, index: int, start: int, stop: int, expected: str | None) -> np.ndarray:
    """Rows ``start:stop`` of array ``name``, checked against the checksum ``expected``
    (None: not checked); a damaged chunk raises :class:`StoreDamagedError` naming it."""
    try:
        array = root[name]
    except KeyError:
        raise StoreDamagedError(
            f"{where(path, index, start, stop)} is damaged: array {name!r} has no metadata "
            f"({name}/zarr.json is missing); {_REPAIR}", index, name) from None
    try:
        block = np.asarray(array[start:stop])
    except Exception as err:  # noqa: BLE001 (any codec or I/O failure names the chunk)
        raise StoreDamagedError(
            f"{where(path, index, start, stop)} is damaged: array {name!r} cannot be decoded "
            f"({type(err).__name__}: {err}); {_REPAIR}", index, name) from None
    if expected is not None and array_hash(block) != expected:
        raise StoreDamagedError(
            f"{where(path, index, start, stop)} is damaged: array {name!r} does not match the checksum recorded "
            f"when it was written (a deleted, swapped or altered chunk file); {_REPAIR}", index, name)
    return block


def outputs_intact(root, path: Path, record: dict, fields: dict, index: int, start: int, stop: int) -> str | None:
    """None if every stored array of the chunk matches its record, else the reason."""
    if sorted(record["output"]) != sorted(fields):
        return "its record lists other arrays"
    for name in fields:
        try:
            read_chunk(root, path, name, index, start, stop, record["output"][name])
        except StoreDamagedError as err:
            return str(err)
    return None
