"""One explain-a-dataset job, cut into row chunks that any process can compute.

A :class:`Job` holds everything a chunk needs (explainer, data source, targets, call
options, store path) and is what the Dask engine ships to each worker once. Both engines
call :meth:`Job.run_chunk`, so they write byte-identical stores; :meth:`Job.verify` decides,
before either runs, which chunks of an existing store are to be (re)computed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lumos.scale import store as st
from lumos.scale.sources import Source


class Targets:
    """What to explain for each row: None (the predicted class), an int (that output for
    every row), ``"label"`` (the label the dataset yields with each input) or one int per
    row."""

    def __init__(self, spec: Any, n_rows: int):
        if spec is None or (isinstance(spec, str) and spec == "label"):
            self.spec = spec
        elif isinstance(spec, str):
            raise ValueError(f"target must be None, an int, 'label' or one int per row; got {spec!r}")
        elif np.ndim(spec) == 0:
            if isinstance(spec, bool) or not float(spec).is_integer():
                raise TypeError(f"target must be an integer output index, got {spec!r}")
            self.spec = int(spec)
        else:
            arr = np.asarray(spec)
            if arr.ndim != 1 or arr.shape[0] != n_rows:
                raise ValueError(f"target must have one entry per row ({n_rows}), got shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"per-row targets must be integers, got dtype {arr.dtype}")
            self.spec = arr.astype(np.int64)

    def describe(self) -> Any:
        if isinstance(self.spec, np.ndarray):
            return {"per_row": st.digest(self.spec)}
        return self.spec

    def rows(self, start: int, stop: int, labels: np.ndarray | None):
        if isinstance(self.spec, np.ndarray):
            return self.spec[start:stop]
        if self.spec == "label":
            if labels is None:
                raise ValueError("target='label' needs a dataset that yields (input, label) items; this one yields inputs only")
            return np.asarray(labels).astype(np.int64)
        return self.spec


class Job:
    """Explain rows ``[i * chunk_rows, (i + 1) * chunk_rows)`` and write them to the store."""

    def __init__(self, explainer, source: Source, targets: Targets, options: dict, path: Path, chunk_rows: int,
                 device: str | None = None):
        self.explainer = explainer
        self.device = device
        self.source = source
        self.targets = targets
        self.options = dict(options)
        self.path = str(path)
        self.chunk_rows = int(chunk_rows)
        self.n_rows = len(source)
        self._root = None
        self._fields = None

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n_rows)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_root"] = None  # an open group is reopened in the process that runs the chunk
        return state

    def prepare(self) -> None:
        """In a Dask worker: tune malloc for tensor work, then move this process's copy of
        the model to the job's device."""
        _tune_malloc()
        model = self.explainer.model
        if self.device is not None and isinstance(model, torch.nn.Module):
            model.to(torch.device(self.device))

    def root(self):
        if self._root is None:
            self._root = st.open_root(Path(self.path), mode="r+")
        return self._root

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The input rows (and labels, or None) of chunk ``index``."""
        start, stop = self.bounds(index)
        x, labels = self.source.read(start, stop)
        if x.shape[0] != stop - start:
            raise ValueError(f"the data source returned {x.shape[0]} rows for rows {start}:{stop}")
        return x, labels

    def call_options(self, start: int) -> dict:
        """The explain() options for rows starting at ``start``: a stochastic explainer
        also gets ``row_offset`` (row i is seeded by (seed, row_offset + i)), so its rows do
        not depend on the chunking."""
        options = dict(self.options)
        if getattr(type(self.explainer), "stochastic", False):
            options["row_offset"] = int(options.get("row_offset", 0)) + int(start)
        return options

    def explain(self, x, labels, start: int, stop: int):
        return self.explainer.explain(x, target=self.targets.rows(start, stop, labels), **self.call_options(start))

    def compute(self, index: int):
        start, stop = self.bounds(index)
        x, labels = self.read(index)
        return self.explain(x, labels, start, stop)

    def create_arrays_from_probe(self) -> bool:
        """Fix the arrays' dtypes and shapes from a two-row probe explained here, so that
        every chunk can then be computed in parallel. Returns False (nothing done) for a
        dataset of fewer than two rows."""
        if self.n_rows < 2:
            return False
        x, labels = self.source.read(0, 2)
        exp = self.explain(x, labels, 0, 2)
        self._fields = st.result_fields(exp, 2)  # two rows: a (1, ...) extra is not mistaken for a per-row one
        st.create_arrays(self.root(), self._fields, self.n_rows, self.chunk_rows, seed=st.reported_seed(exp))
        return True

    def run_chunk(self, index: int) -> int:
        """Compute chunk ``index``, write its arrays, then its record; returns the number of rows."""
        start, stop = self.bounds(index)
        x, labels = self.read(index)
        input_info = st.input_digest(x, labels)
        exp = self.explain(x, labels, start, stop)
        del x
        root = self.root()
        seed = st.reported_seed(exp)
        if self._fields is None:
            attrs = st.read_attrs(Path(self.path)) or {}
            self._fields = attrs.get("fields")
        if self._fields is None:  # the first chunk written: it fixes the arrays' dtypes and shapes
            fields = st.result_fields(exp, stop - start)
            st.create_arrays(root, fields, self.n_rows, self.chunk_rows, seed=seed)
            self._fields = fields
        st.write_chunk(root, Path(self.path), index, start, stop, exp, self._fields, input_info, seed=seed)
        return stop - start

    def verify(self) -> list[int]:
        """The chunks to (re)compute: those without a whole record, or whose stored arrays
        do not match their record (deleted, swapped or garbled chunk files, lost array
        metadata). A recorded chunk whose input rows differ from the ones the record hashed
        refuses the resume with a ValueError naming it."""
        path = Path(self.path)
        root = self.root()
        fields = (st.read_attrs(path) or {}).get("fields")
        for stale in (path / st.RECORDS).glob(".*.tmp"):  # records a killed run did not finish
            stale.unlink(missing_ok=True)
        if fields:  # recreate the metadata of an array that lost it; its chunks are then checked
            st.create_arrays(root, fields, self.n_rows, self.chunk_rows)
        pending = []
        for index in range(self.n_chunks):
            start, stop = self.bounds(index)
            status, record = st.read_record(path, index, self.n_rows, self.chunk_rows)
            if status != "ok":
                pending.append(index)
                continue
            x, labels = self.read(index)
            found = st.input_digest(x, labels)
            del x
            if found != record["input"]:
                raise ValueError(
                    f"the input data differ from those of the run that wrote {str(path)!r}: chunk {index} (rows "
                    f"{start}:{stop}) holds other rows than it did then ({_describe(record['input'], found)}); "
                    "resuming would mix explanations of different data. Use a new out path, or overwrite=True "
                    "to discard the store."
                )
            if not fields or st.outputs_intact(root, path, record, fields, index, start, stop) is not None:
                st.remove_record(path, index)
                pending.append(index)
        return pending


def _describe(old: dict, new: dict) -> str:
    if old.get("dtype") != new["dtype"] or old.get("shape") != new["shape"]:
        return f"dtype {old.get('dtype')} shape {old.get('shape')} then, {new['dtype']} {new['shape']} now"
    return "same dtype and shape, other values"


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def _tune_malloc(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 64 * 2**20) -> bool:
    """Let glibc serve tensor-sized blocks from its heap in this (worker) process.

    Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it switches off
    glibc's adaptive mmap threshold, so every block above 128 kB (each activation and
    gradient of a batch) is mapped and unmapped anew: on the 2-core reference machine the
    workers spent more time in page faults (system time) than computing, and two workers
    were barely faster than one process. Raising both thresholds keeps such blocks for
    reuse, bounded by ``trim_threshold`` of retained free memory. Linux/glibc only; a
    no-op elsewhere. Returns whether it applied.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):
        return False
