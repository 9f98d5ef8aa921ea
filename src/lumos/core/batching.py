"""Chunking under one memory bound.

Every method and metric asks one :class:`RowBudget` how many rows a model call may see.
Its one public knob is ``batch_size`` (the most rows per model call, in the Python API,
on the command line as ``-O batch_size=...`` and in :func:`lumos.explain_dataset`); left
at ``None`` the budget sizes calls from the input's element count:

- a call with a backward pass (gradients, relevance, CAM) gets about
  :data:`BACKWARD_ELEMENTS` input elements, between 16 and 8,192 rows: moderate chunks
  are fastest on CPUs (a small CNN's activations stay in cache; measured on MNIST, 256
  rows were 2x faster than 2,675) and bound the activations kept for the backward pass;
- a forward-only call (perturbation methods, metrics) gets about
  :data:`FORWARD_ELEMENTS` input elements, between 16 and 65,536 rows: enough rows that
  call overhead does not count, few enough that a CNN's activations stay in cache.
  Measured on one CPU thread (µs per row, forward without gradients, chunks of
  64 / 256 / 1,024 / 4,096 / 16,384 rows): MNIST LeNet 182 / 203 / 296 / 328 / 393, a VGG-style
  MNIST CNN 658 / 810 / 1,091 / 1,412 / 1,811, a 784-256-10 MLP 14 / 11 / 13 / 14 / 14, a
  30-feature MLP 1.8 / 1.0 / 0.8 / 1.0 / 1.4, a Conv1d on 96 steps 48 / 48 / 48 / 98 / 129:
  2**17 elements (167 MNIST rows, 4,369 rows of 30 features, 1,365 of 96 steps) is within
  15% of the fastest size of each, where the former 2**22 (5,349 MNIST rows) was 1.6 to
  2x slower on the CNNs.

- a recurrent model (``nn.RNN``/``GRU``/``LSTM``) gets at most :data:`RECURRENT_ROWS` rows
  per call: the CPU cost per row of a GRU rises threefold from 128 to 3,840 rows (21 to
  66 µs measured on a GRU(32)), so large calls are slower, not faster. Differentiated
  calls of a model whose recurrent layers are all GRUs get :data:`GRU_BACKWARD_ROWS`, of
  one with an LSTM :data:`LSTM_BACKWARD_ROWS`. Measured (µs per row, forward + backward,
  one thread, 256 / 512 rows): GRU(16) on 3 x 151 steps 108 / 93, GRU(32) on 12 x 96 103 / 98,
  GRU(32) on 3 x 200 507 / 515, GRU(64) 1,352 / 1,354, GRU(200) 11,974 / 11,694; LSTM(32)
  at 128 / 256 rows: on the Ismail benchmark's 50 x 50 62 / 91, on 3 x 200 458 / 534, the
  reference LSTM on 12 x 96 70 / 130 (64 rows: 66, 449, 78). Forward only, 512 rows were
  slower for GRU(32) (52 / 66 µs) and 128 for the LSTMs (18 / 15, 31 / 29 µs at 128 / 256),
  so forward calls keep 256 for every recurrent model.

An expansion (IG steps, SmoothGrad noise, perturbed copies) of ``E`` copies per input is
split by :func:`expansion_chunks` so that no call exceeds the budget's rows; chunk sums
are exact, so results do not depend on the budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

BACKWARD_ELEMENTS = 2**18
RECURRENT_ROWS = 256
GRU_BACKWARD_ROWS = 512
LSTM_BACKWARD_ROWS = 128
FORWARD_ELEMENTS = 2**17
_BOUNDS = {"backward": (16, 8192), "forward": (16, 65536)}
_ELEMENTS = {"backward": BACKWARD_ELEMENTS, "forward": FORWARD_ELEMENTS}


def check_batch_size(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"batch_size must be a positive integer (rows per model call) or None for automatic "
                         f"sizing, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class RowBudget:
    """How many rows one model call may see.

    Parameters
    ----------
    batch_size : int or None
        The most rows per model call; None sizes calls from the element count.
    """

    batch_size: int | None = None
    max_rows: int | None = None
    """A cap on automatic sizing (set by :meth:`for_model` for recurrent models)."""
    max_backward_rows: int | None = None
    """The cap of differentiated calls, when it differs from ``max_rows`` (GRU-only models, LSTMs)."""

    def __post_init__(self):
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))

    @property
    def recurrent(self) -> bool:
        """Sized for a recurrent model (:meth:`for_model`, automatic sizing): its calls cost
        nearly as much for 8 rows as for 80, so methods put extra rows in a call rather than
        make another."""
        return self.max_rows is not None

    def for_model(self, model) -> "RowBudget":
        """This budget, capped at :data:`RECURRENT_ROWS` rows for recurrent torch models."""
        import torch

        if self.batch_size is None and isinstance(model, torch.nn.Module):
            recurrent = [m for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
            if recurrent:
                if any(isinstance(m, torch.nn.LSTM) for m in recurrent):
                    return RowBudget(None, RECURRENT_ROWS, LSTM_BACKWARD_ROWS)
                gru_only = all(isinstance(m, torch.nn.GRU) for m in recurrent)
                return RowBudget(None, RECURRENT_ROWS, GRU_BACKWARD_ROWS if gru_only else None)
        return self

    def rows(self, sample_numel: int, kind: str = "backward") -> int:
        """Rows per model call for samples of ``sample_numel`` elements; ``kind`` is
        ``"backward"`` (the call is differentiated) or ``"forward"``."""
        if self.batch_size is not None:
            return self.batch_size
        lo, hi = _BOUNDS[kind]
        cap = self.max_backward_rows if kind == "backward" and self.max_backward_rows is not None else self.max_rows
        if cap is not None:
            lo, hi = min(lo, cap), min(hi, cap)
        return int(np.clip(_ELEMENTS[kind] // max(int(sample_numel), 1), lo, hi))

    def inputs_per_chunk(self, sample_numel: int, expansion: int = 1, kind: str = "backward") -> int:
        """Inputs per chunk when each input expands into ``expansion`` model rows (at least 1)."""
        return max(1, self.rows(sample_numel, kind) // max(int(expansion), 1))


def chunk_slices(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def balanced_slices(n: int, size: int) -> Iterator[slice]:
    """The fewest consecutive slices of at most ``size`` covering ``range(n)``, as equal as
    possible (100 rows at 64: 50 + 50, not 64 + 36: a short last call costs nearly as much
    as a full one on models with a large cost per call, recurrent ones above all)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    parts = -(-n // size) if n else 0
    for k in range(parts):
        yield slice(k * n // parts, (k + 1) * n // parts)


def expansion_chunks(n_inputs: int, n_copies: int, max_rows: int) -> Iterator[tuple[slice, slice]]:
    """Split an ``n_copies x n_inputs`` expansion into blocks of at most ``max_rows`` rows.

    Yields ``(input_slice, copy_slice)`` pairs: all copies of a group of inputs when
    they fit, otherwise all inputs of a group of copies, or one input and a group of
    copies when even that does not fit. Every (input, copy) pair appears exactly once,
    so sums over blocks are exact.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if n_copies <= max_rows:
        per = max(1, max_rows // n_copies)
        for sl in chunk_slices(n_inputs, per):
            yield sl, slice(0, n_copies)
        return
    for i in range(n_inputs):
        for cs in chunk_slices(n_copies, max_rows):
            yield slice(i, i + 1), cs
