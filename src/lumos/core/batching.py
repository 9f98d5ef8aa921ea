"""Chunking of large expansions (IG steps, SmoothGrad noise, perturbations) so that one
forward pass sees many rows but memory stays bounded."""
from __future__ import annotations

from typing import Iterator

DEFAULT_MAX_ROWS = 1024
"""Default bound on the rows of one forward pass built from an expansion."""


def chunk_slices(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


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
