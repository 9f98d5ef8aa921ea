"""Reading a store written by :func:`lumos.explain_dataset` without loading it.

:func:`open_store` returns a :class:`StoredExplanation`: ``len()``, ``method``, ``params``
and lazy Zarr arrays (``values``, ``target``, ``prediction``...); indexing
(``store[5]``, ``store[100:200]``, ``store[idx]``, ``store[mask]``) reads only those rows
and returns an in-memory :class:`~lumos.core.explanation.Explanation`. Rows are read one
whole chunk at a time and checked against the chunk's record (see :mod:`lumos.scale.store`):
a deleted, swapped or altered chunk file or an unreadable record raises
:class:`~lumos.scale.store.StoreDamagedError` naming the chunk, never NaN or another chunk's
rows. :meth:`StoredExplanation.verify` checks the whole store.

:meth:`StoredExplanation.summary` computes global summaries out of core, one chunk in
memory at a time: the mean |attribution| (or mean signed attribution) per feature, or
per channel / time step / any kept sample axes, overall and per explained class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from lumos.core.explanation import Explanation
from lumos.scale import store as st

STATISTICS = ("mean_abs", "mean")


def open_store(path, verify: bool = True) -> "StoredExplanation":
    """Open a lumos Zarr store lazily (nothing is loaded until it is indexed).

    With ``verify=True`` (the default) every chunk read through the store (indexing,
    :meth:`~StoredExplanation.iter_chunks`, :meth:`~StoredExplanation.summary`) is checked
    against the checksum its record holds, and a damaged chunk (deleted, swapped or
    altered file, unreadable record) raises :class:`~lumos.scale.store.StoreDamagedError`
    (a ValueError) naming it; never NaN or another chunk's rows. ``verify=False`` skips
    the checksums (a chunk that cannot be decoded still raises that error). The raw Zarr
    arrays (``.values``, ``.target``...) are never checked."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no store at {str(path)!r}")
    attrs = st.read_attrs(path)
    if attrs is None or not str(attrs.get("format", "")).startswith("lumos.store/"):
        raise ValueError(f"{str(path)!r} is not a lumos store (written by lumos.explain_dataset)")
    if attrs.get("format") != st.FORMAT:
        raise ValueError(f"{str(path)!r} has store format {attrs.get('format')!r} (an older lumos); this version "
                         f"reads {st.FORMAT!r}: write it again with explain_dataset(..., overwrite=True)")
    return StoredExplanation(path, verify=verify)


class StoredExplanation:
    """An Explanation-like view of a Zarr store; rows are read on demand, whole chunks at
    a time, each checked against its record (unless opened with ``verify=False``)."""

    def __init__(self, path: Path, verify: bool = True):
        self.path = Path(path)
        self.verify_reads = bool(verify)
        self.root = st.open_root(self.path, mode="r")
        self.attrs = st.read_attrs(self.path)
        self.method: str = self.attrs["method"]
        self.params: dict = self.attrs["params"]
        self.seed = self.attrs.get("seed")
        self.n_rows: int = int(self.attrs["n_rows"])
        self.chunk_rows: int = int(self.attrs["chunk_rows"])
        self.fields: dict = self.attrs.get("fields") or {}
        lost = [name for name in self.fields if name not in self.root]
        if lost:
            raise st.StoreDamagedError(
                f"the store {str(self.path)!r} is damaged: array {lost[0]!r} has no metadata "
                f"({lost[0]}/zarr.json is missing); run explain_dataset again with the same arguments to repair "
                "it (its chunks are verified and recomputed where needed)", None, lost[0])
        self._arrays = {name: self.root[name] for name in self.fields}
        self.scope = "local"

    # -- lazy arrays ----------------------------------------------------------
    def _get(self, name):
        return self._arrays.get(name)

    values = property(lambda self: self._get("values"), doc="Attributions (lazy Zarr array, not verified).")
    target = property(lambda self: self._get("target"), doc="Explained output per row (lazy).")
    prediction = property(lambda self: self._get("prediction"), doc="Model scores (lazy).")
    base_value = property(lambda self: self._get("base_value"), doc="Reference score per row (lazy) or None.")
    delta = property(lambda self: self._get("delta"), doc="Completeness error per row (lazy) or None.")

    @property
    def extras(self) -> dict:
        return {k[len("extras/"):]: v for k, v in self._arrays.items() if k.startswith("extras/")}

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    @property
    def done(self) -> np.ndarray:
        """One flag per chunk of ``chunk_rows`` rows: written (a whole record) or not."""
        return st.record_status(self.path, self.n_rows, self.chunk_rows, range(self.n_chunks))

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        done = self.done
        shape = None if self.values is None else tuple(self.values.shape)
        return (f"StoredExplanation(method={self.method!r}, values.shape={shape}, "
                f"chunks done={int(done.sum())}/{done.size}, path={str(self.path)!r})")

    # -- row access -----------------------------------------------------------
    def _rows(self, index) -> np.ndarray:
        n = self.n_rows
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -n <= index < n:
                raise IndexError(f"row {index} out of range for {n} rows")
            return np.array([int(index) % n])
        if isinstance(index, slice):
            return np.arange(*index.indices(n))
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"a boolean mask must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
            raise IndexError(f"index rows with an int, a slice, a 1-D int array or a boolean mask, got {index!r}")
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise IndexError(f"row indices out of range for {n} rows")
        return arr % n

    def _records(self, chunks: np.ndarray) -> dict[int, dict]:
        """The records of ``chunks``; an unwritten chunk or an unreadable record raises."""
        records, missing = {}, []
        for c in chunks:
            c = int(c)
            status, record = st.read_record(self.path, c, self.n_rows, self.chunk_rows)
            if status == "missing":
                missing.append(c)
            elif status == "corrupt":
                start, stop = self._bounds(c)
                raise st.StoreDamagedError(
                    f"{st.where(self.path, c, start, stop)} is damaged: its record {st.RECORDS}/{c}.json {record}; "
                    "run explain_dataset again with the same arguments to recompute it", c)
            else:
                records[c] = record
        if missing:
            start, stop = self._bounds(missing[0])
            raise ValueError(
                f"rows of {len(missing)} chunk(s) (first: chunk {missing[0]}, rows {start}:{stop}) are not written "
                "yet; call explain_dataset again with the same arguments to finish the store"
            )
        return records

    def _bounds(self, chunk: int) -> tuple[int, int]:
        start = int(chunk) * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n_rows)

    def _chunk(self, chunk: int, record: dict, names) -> dict[str, np.ndarray]:
        """The arrays ``names`` of one whole chunk, checked against its record."""
        start, stop = self._bounds(chunk)
        out = {}
        for name in names:
            expected = None
            if self.verify_reads:
                expected = record["output"].get(name)
                if expected is None:
                    raise st.StoreDamagedError(
                        f"{st.where(self.path, chunk, start, stop)} is damaged: its record has no checksum of "
                        f"array {name!r}; run explain_dataset again with the same arguments to recompute it",
                        chunk, name)
            out[name] = st.read_chunk(self.root, self.path, name, chunk, start, stop, expected)
        return out

    def read_rows(self, rows: np.ndarray, names=None) -> dict[str, np.ndarray]:
        """``{array name: rows}`` for row indices ``rows`` (in that order), read one
        verified chunk at a time."""
        names = list(self.fields) if names is None else list(names)
        rows = np.asarray(rows, dtype=np.int64)
        chunk_of = rows // self.chunk_rows
        chunks = np.unique(chunk_of)
        records = self._records(chunks)
        out = {name: np.empty((rows.size, *self._arrays[name].shape[1:]), dtype=self._arrays[name].dtype)
               for name in names}
        for c in chunks:
            at = np.flatnonzero(chunk_of == c)
            block = self._chunk(int(c), records[int(c)], names)
            local = rows[at] - int(c) * self.chunk_rows
            for name in names:
                out[name][at] = block[name][local]
        return out

    def __getitem__(self, index) -> Explanation:
        """Read rows ``index`` into an in-memory Explanation (batch axis kept)."""
        if self.values is None:
            raise ValueError("the store holds no rows yet")
        got = self.read_rows(self._rows(index))
        per_row = {name: got.get(name) for name in st.PER_ROW_FIELDS}
        extras = {k[len("extras/"):]: v for k, v in got.items() if k.startswith("extras/")}
        meta = {"store": str(self.path)}
        if self.seed is not None:
            meta["seed"] = self.seed
        return Explanation(values=got["values"], method=self.method, params=self.params,
                           extras=extras, meta=meta, **per_row)

    def iter_chunks(self) -> Iterator[Explanation]:
        """The stored rows, one chunk (``chunk_rows`` rows) at a time."""
        for start in range(0, self.n_rows, self.chunk_rows):
            yield self[start:start + self.chunk_rows]

    def load(self) -> Explanation:
        """Every row in memory (for stores that fit)."""
        return self[:]

    def verify(self) -> "StoredExplanation":
        """Check every chunk of every array against its record (reads the whole store);
        raises for the first missing or damaged chunk, returns the store otherwise."""
        records = self._records(np.arange(self.n_chunks))
        for c in range(self.n_chunks):
            start, stop = self._bounds(c)
            if sorted(records[c]["output"]) != sorted(self.fields):
                raise st.StoreDamagedError(f"{st.where(self.path, c, start, stop)} is damaged: its record lists "
                                           "other arrays than the store holds", c)
            for name in self.fields:
                st.read_chunk(self.root, self.path, name, c, start, stop, records[c]["output"][name])
        return self

    # -- out-of-core summaries ------------------------------------------------
    def summary(self, statistic: str = "mean_abs", keep=None) -> Explanation:
        """Global summary of the attributions, computed one chunk at a time.

        ``mean_abs``: ``(1/N) Σ_n |φ_n|``; ``mean``: ``(1/N) Σ_n φ_n``, averaged also over
        the sample axes not in ``keep``.

        Parameters
        ----------
        statistic : {"mean_abs", "mean"}
        keep : None, int, tuple of int, "channel" or "time"
            Sample axes kept (0 is the first axis after the batch axis): None keeps all
            (one value per feature/pixel), ``"channel"`` is axis 0 (per channel of
            ``(C, T)`` series or ``(C, H, W)`` images), ``"time"`` the last axis.

        Returns
        -------
        Explanation
            ``scope="global"``; ``values`` has the kept axes; ``extras["per_class"]`` is
            the same statistic over the rows explained for each class ``(K, ...)``
            (NaN for classes never explained) and ``extras["class_count"]`` their counts.
        """
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if not self.complete:
            raise ValueError("the store is incomplete; finish it with explain_dataset before summarising")
        sample_ndim = self.values.ndim - 1
        kept = _kept_axes(keep, sample_ndim)
        reduce = tuple(1 + a for a in range(sample_ndim) if a not in kept)
        n_classes = self.prediction.shape[1] if self.prediction is not None else None
        total = None
        per_class: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        names = ["values"] + (["target"] if self.target is not None else [])
        for c in range(self.n_chunks):
            start, stop = self._bounds(c)
            block = self._chunk(c, self._records(np.array([c]))[c], names)
            v = block["values"].astype(np.float64)
            if statistic == "mean_abs":
                v = np.abs(v)
            v = v.mean(axis=reduce) if reduce else v
            total = v.sum(0) if total is None else total + v.sum(0)
            if self.target is not None:
                t = block["target"]
                for c in np.unique(t):
                    part = v[t == c].sum(0)
                    per_class[int(c)] = per_class.get(int(c), 0) + part
                    counts[int(c)] = counts.get(int(c), 0) + int((t == c).sum())
        extras = {}
        if per_class:
            k = max(n_classes or 0, max(per_class) + 1)
            table = np.full((k, *total.shape), np.nan)
            count = np.zeros(k, dtype=np.int64)
            for c, s in per_class.items():
                table[c] = s / counts[c]
                count[c] = counts[c]
            extras = {"per_class": table, "class_count": count}
        return Explanation(values=total / self.n_rows, method=self.method, params=self.params, scope="global",
                           extras=extras, meta={"statistic": statistic, "kept_axes": list(kept),
                                                "n_rows": self.n_rows, "store": str(self.path)})


def _kept_axes(keep, ndim: int) -> tuple[int, ...]:
    if keep is None:
        return tuple(range(ndim))
    if isinstance(keep, str):
        named = {"channel": (0,), "time": (ndim - 1,)}
        if keep not in named:
            raise ValueError(f"keep must be None, axis indices, 'channel' or 'time'; got {keep!r}")
        return named[keep]
    axes = (keep,) if isinstance(keep, (int, np.integer)) else tuple(keep)
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not 0 <= a < ndim:
            raise ValueError(f"kept axis {a!r} out of range for samples with {ndim} axes (0..{ndim - 1})")
    return tuple(sorted(set(int(a) for a in axes)))
