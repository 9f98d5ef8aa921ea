"""Random-access views of a dataset, read one block of rows at a time.

:func:`as_source` turns what the user passes into a :class:`Source` with ``len()``, the
shape and dtype of one sample, and ``read(start, stop) -> (x, y)`` returning a numpy batch
and the labels (or None). Random access (not a sequential iterator) is what lets a
second call skip finished chunks and lets Dask workers read their own chunks.

Supported: numpy arrays, ``np.memmap`` (pages are released after each read so resident
memory does not grow with the dataset), Zarr arrays, map-style torch ``Dataset`` (items
``x`` or ``(x, y, ...)``) and ``DataLoader`` over one (its ``collate_fn`` is used, its
sampler and shuffling are not: rows are explained in dataset order).
"""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import torch


def _to_numpy(batch: Any, what: str) -> np.ndarray:
    if isinstance(batch, torch.Tensor):
        return batch.detach().cpu().numpy()
    arr = np.asarray(batch)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{what} must be numeric arrays or tensors, got dtype {arr.dtype}")
    return arr


class Source:
    """A dataset seen as ``n`` rows of one sample shape."""

    kind = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def describe(self) -> dict:
        """Number of rows, sample shape and dtype (part of the store's fingerprint). The
        data themselves are checked chunk by chunk: each chunk's record keeps a hash of
        its input rows, and resuming with rows that differ is refused."""
        first, _ = self.read(0, 1)
        return {"n_rows": len(self), "sample_shape": list(first.shape[1:]), "dtype": str(first.dtype)}


class ArraySource(Source):
    """numpy array, ``np.memmap`` or Zarr array: rows are sliced directly.

    A memory map is pickled as (file, offset, shape, dtype), not as its contents, so Dask
    workers reopen the file instead of receiving the data.
    """

    kind = "array"

    def __init__(self, array):
        if getattr(array, "ndim", 0) < 2:
            raise ValueError(f"data must have a batch axis and at least one sample axis, got shape {getattr(array, 'shape', None)}")
        if array.shape[0] == 0:
            raise ValueError("data is empty (0 rows)")
        self.array = array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def read(self, start, stop):
        block = np.array(self.array[start:stop])  # a copy, detached from any memory map
        _release_pages(self.array, start, stop)
        return block, None

    def __reduce__(self):
        spec = _memmap_spec(self.array)
        if spec is not None:
            return (_reopen_memmap, spec)
        return (ArraySource, (self.array,))


def _memmap_spec(arr) -> tuple | None:
    """(filename, byte offset, dtype, shape) of a C-contiguous memory map, else None."""
    mm = getattr(arr, "_mmap", None)
    if not isinstance(arr, np.memmap) or mm is None or arr.filename is None or not arr.flags.c_contiguous:
        return None
    base = np.frombuffer(mm, dtype=np.uint8)
    map_start = arr.offset - arr.offset % mmap.ALLOCATIONGRANULARITY
    offset = map_start + (arr.ctypes.data - base.ctypes.data)
    return (str(arr.filename), int(offset), arr.dtype.str, tuple(arr.shape))


def _reopen_memmap(filename, offset, dtype, shape):
    return ArraySource(np.memmap(filename, mode="r", dtype=np.dtype(dtype), shape=shape, offset=offset))


def _release_pages(arr, start: int, stop: int) -> None:
    """Drop the pages of rows ``start:stop`` of a read-only memory map from the resident
    set (they are file-backed and reread on demand), so RSS stays bounded."""
    mm = getattr(arr, "_mmap", None)
    if not isinstance(arr, np.memmap) or mm is None or not hasattr(mm, "madvise") or not arr.flags.c_contiguous:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        row = arr.strides[0]
        lo = arr.ctypes.data - base + start * row
        hi = arr.ctypes.data - base + stop * row
        page = mmap.PAGESIZE
        lo -= lo % page
        length = hi - lo
        if length > 0 and arr.mode in ("r", "c"):
            mm.madvise(mmap.MADV_DONTNEED, lo, min(length, len(mm) - lo))
    except (OSError, ValueError, AttributeError):  # best effort: never fail a read for this
        pass


class TorchSource(Source):
    """A map-style torch Dataset (or the dataset of a DataLoader, with its collate_fn)."""

    kind = "torch"

    def __init__(self, dataset, collate_fn=None):
        if isinstance(dataset, torch.utils.data.IterableDataset):
            raise TypeError(
                "an IterableDataset has no random access, so chunks could not be skipped on resume or "
                "read by Dask workers; pass a map-style Dataset (with __getitem__ and __len__) or an array"
            )
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"a torch Dataset needs __getitem__ and __len__, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty (0 items)")
        self.dataset = dataset
        self.collate_fn = collate_fn

    def __len__(self):
        return len(self.dataset)

    def read(self, start, stop):
        items = [self.dataset[i] for i in range(start, stop)]
        if self.collate_fn is not None:
            batch = self.collate_fn(items)
            xs, ys = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) and len(batch) >= 2 else (batch, None)
        elif isinstance(items[0], (tuple, list)):
            xs = np.stack([_to_numpy(it[0], "dataset items") for it in items])
            ys = np.asarray([_to_numpy(it[1], "labels") for it in items]) if len(items[0]) >= 2 else None
        else:
            xs, ys = np.stack([_to_numpy(it, "dataset items") for it in items]), None
        x = _to_numpy(xs, "dataset items")
        y = None if ys is None else _to_numpy(ys, "labels").reshape(len(x), -1)
        if y is not None and y.shape[1] == 1:
            y = y[:, 0]
        return x, y


def as_source(data) -> Source:
    """Wrap ``data`` as a :class:`Source` (see the module docstring for what is accepted)."""
    if isinstance(data, Source):
        return data
    if isinstance(data, torch.utils.data.DataLoader):
        return TorchSource(data.dataset, collate_fn=data.collate_fn)
    if isinstance(data, torch.utils.data.Dataset):
        return TorchSource(data)
    if isinstance(data, torch.Tensor):
        return ArraySource(data.detach().cpu().numpy())
    if isinstance(data, np.ndarray):
        return ArraySource(data)
    if type(data).__module__.startswith("zarr") and hasattr(data, "shape"):
        return ArraySource(data)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
        raise TypeError(
            f"data must be a numpy array, np.memmap, Zarr array, torch Dataset or DataLoader; got {type(data).__name__}"
            + (" (to explain a file, open it first: np.load(path, mmap_mode='r') or zarr.open_array(path))"
               if isinstance(data, str) else "")
        )
    if hasattr(data, "shape") and hasattr(data, "__getitem__"):  # h5py datasets and other array-likes
        return ArraySource(data)
    raise TypeError(f"data of type {type(data).__name__} is not supported; pass an array or a torch Dataset")
