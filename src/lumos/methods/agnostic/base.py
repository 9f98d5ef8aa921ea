"""Shared plumbing of the model-agnostic explainers.

They implement the explainer template (:mod:`lumos.methods.base`): the template validates
the inputs and targets, opens the call's private view of the model and plans chunks of
inputs under the one :class:`~lumos.core.batching.RowBudget`; the adapter bound to the
call (``state.adapter``) already evaluates at most the budget's rows per model call, so
the methods here only compose perturbed inputs and send them to ``state.adapter.scores``.

What a method builds per input besides the model's rows (coalitions, LIME samples,
orderings and their values) is generated in blocks of at most :attr:`design_elements`
elements, so memory does not grow with the sampling budget.
"""
from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from lumos.core.validate import broadcast_reference
from lumos.methods.agnostic.masking import compose_rows
from lumos.methods.base import Explainer

DESIGN_ELEMENTS = 2**21
"""Default bound on the elements of one block of a sampling design (coalitions, samples,
orderings) and of the values held for it: 16 MB in float64."""


class AgnosticExplainer(Explainer):
    """Base of the perturbation explainers: any torch module or ``numpy -> scores``
    callable (e.g. ``clf.predict_proba``); no gradients are taken. Integer inputs are
    perturbed as float32."""

    needs_gradients = False
    design_elements: ClassVar[int] = DESIGN_ELEMENTS
    """Elements of one block of the sampling design (and of its values) held at once."""

    def _validate(self, inputs) -> np.ndarray:
        x = super()._validate(inputs)
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)

    @staticmethod
    def scored(x: np.ndarray, targets, state):
        """The scores of a chunk, its targets and the target scores ``f_t(x)``."""
        scores = state.adapter.scores(x)
        t = targets(scores)
        return scores, t, scores[np.arange(x.shape[0]), t]


def row_reference(ref, x: np.ndarray, name: str = "baseline") -> np.ndarray:
    """A baseline checked once for the batch ``x``: ``(1, *S)`` when shared by every input
    (None, a scalar, one sample), ``(N, *S)`` when given per input. Take a chunk's rows
    with :func:`reference_rows`."""
    if ref is None or np.ndim(ref) < x.ndim:
        try:
            return broadcast_reference(ref, x[:1], name)
        except ValueError:
            pass  # the message names the batch's shape below
    return broadcast_reference(ref, x, name)


def reference_rows(ref: np.ndarray, index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The references of the inputs at batch positions ``index`` (a broadcast view when shared)."""
    return np.broadcast_to(ref if ref.shape[0] == 1 else ref[index], shape)


def target_scores(adapter, batch: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``f_t(batch)`` for a flat batch and one target per row."""
    s = adapter.scores(batch)
    if target.size and (target == target[0]).all():  # one target: its column, no per-row lookup
        return s[:, target[0]]
    return s[np.arange(s.shape[0]), target]


def coalition_values(adapter, x: np.ndarray, target: np.ndarray, masks: np.ndarray, reference: np.ndarray,
                     groups: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``v[n, m] = Σ_b w_b f_t(compose(x_n, reference_b, masks_m))``.

    ``reference`` is a background ``(B, *S)`` shared by all inputs (``weights`` sum to 1;
    uniform when None). Inputs and coalitions are split into blocks of composed rows, each
    evaluated in one call of the model: all coalitions of several inputs when they fit,
    else one input and a run of coalitions (every (input, coalition) pair once, so the
    values do not depend on the call size). The rows per call are :func:`call_rows`; on a
    CPU with an automatic call size they double while a call takes less than
    :data:`CALL_SECONDS` (:class:`CallSize`).
    """
    n, m, b = x.shape[0], masks.shape[0], reference.shape[0]
    w = np.full(b, 1.0 / b) if weights is None else weights
    out = np.empty((n, m))
    if m == 0:
        return out
    shape = x.shape[1:]
    per_row = int(np.prod(shape, dtype=np.int64))
    size = CallSize(adapter, per_row, b)
    dtype = np.result_type(x, reference)
    i = j = 0  # the next input, and its next coalition
    while i < n:
        per_copy = max(1, size.rows // b)
        if j == 0 and m <= per_copy:  # all coalitions of as many inputs as fit
            rows, cols = slice(i, min(n, i + per_copy // m)), slice(0, m)
        else:
            rows, cols = slice(i, i + 1), slice(j, min(m, j + per_copy))
        r, c = rows.stop - rows.start, cols.stop - cols.start
        batch = size.buffer(r * c * b * per_row, dtype)[:r * c * b * per_row].reshape(r, c, b, *shape)
        started = time.thread_time()
        compose_rows(x[rows], reference, masks[cols], groups, out=batch)  # (r, c, B, *S) written in place
        s = size.scores(batch.reshape(r * c * b, *shape)).reshape(r, c * b, -1)
        size.took(time.thread_time() - started, r * c * b)
        f = input_scores(s, target[rows])
        out[rows, cols] = (f.reshape(r, c, b) * w).sum(-1)  # row-wise: equal rows give equal values
        i, j = (rows.stop, 0) if cols.stop == m else (i, cols.stop)
    return out


CACHE_ELEMENTS = 2**17
"""Input elements of the first model call composing coalitions on a CPU (512 kB of float32):
the composed rows and the model's activations stay in the cache. Measured with one thread
(KernelShap, 1,024 coalitions, 10 background rows): the ECG200 1-D CNN (96 samples, calls of
1,365 rows) took 0.43x the time of calls of 65,536 rows; the 30-feature MLP (calls of 4,369
rows) about 0.9x."""

CALL_SECONDS = 2e-3
"""On a CPU with an automatic call size, the calls of :func:`coalition_values` double while one
(composing its rows and the model) takes less than this: a call's fixed cost (the model's Python
layers, composing, reading the scores: 30-60 µs) then stays within a few per cent. A cheap model
gets fewer, larger calls; one whose first call already takes this long (the ECG200 1-D CNN:
~3 ms for 1,365 rows) keeps the cache-sized calls. Measured on the breast-cancer MLP (30
features, ~0.1 µs per row; KernelShap, 500 coalitions x 50 background rows, one thread): calls
of 4,369 rows spent ~8 % more than calls of 17,000-35,000 in the model alone."""

MAX_CALL_ELEMENTS = 2**21
"""The most input elements one grown call composes (8 MB of float32), and at most 65,536 rows."""


def call_rows(adapter, per_row: int, b: int) -> int:
    """Rows of the first model call of :func:`coalition_values`: the adapter's ``batch_size``
    (the most per call), on a CPU at most :data:`CACHE_ELEMENTS` elements (at least one
    coalition's ``b`` rows)."""
    rows = adapter.batch_size
    if getattr(getattr(adapter, "device", None), "type", "cpu") == "cpu":
        rows = min(rows, max(b, CACHE_ELEMENTS // max(per_row, 1)))
    return rows


class CallSize:
    """Rows per model call of :func:`coalition_values`: :func:`call_rows`, doubled after every
    full-sized call that took less than :data:`CALL_SECONDS` of the thread's CPU time (robust
    to other processes on a shared machine), up to :data:`MAX_CALL_ELEMENTS` elements or
    65,536 rows, when the adapter sized its calls itself on a CPU (``adapter.automatic``; a
    ``batch_size`` given by the user is kept as it is). The size reached is kept on the call's
    adapter for the next blocks of the same explanation. The values do not depend on the call
    sizes; only the time does."""

    def __init__(self, adapter, per_row: int, b: int):
        self.adapter, self.rows = adapter, call_rows(adapter, per_row, b)
        cpu = getattr(getattr(adapter, "device", None), "type", "cpu") == "cpu"
        self.grows = cpu and getattr(adapter, "automatic", False) is True
        self.most = max(self.rows, b, min(65536, MAX_CALL_ELEMENTS // max(per_row, 1)))
        if self.grows:
            self.key = (per_row, b)
            self.sizes = adapter.__dict__.setdefault("_call_sizes", {})  # one explain() call's adapter
            self.rows = self.sizes.get(self.key, self.rows)

    def buffer(self, elements: int, dtype) -> np.ndarray:
        """One buffer for every chunk, regrown only when the calls grow, and kept for the next
        blocks of a grown explanation: a fresh multi-MB array per chunk costs a page fault per
        4 kB page each time (glibc returns large blocks to the system when freed)."""
        store = self.sizes.get(dtype) if self.grows else getattr(self, "store", None)
        if store is None or store.size < elements:
            store = np.empty(elements, dtype=dtype)
            if self.grows:
                self.sizes[dtype] = store
            else:
                self.store = store
        return store

    def scores(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] <= self.adapter.batch_size:
            return self.adapter.scores(batch)
        return self.adapter.scores(batch, batch_size=batch.shape[0])  # a grown call, within most

    def took(self, seconds: float, rows: int) -> None:
        """A call of ``rows`` rows took ``seconds``: grow the next ones when it was short."""
        if self.grows and 2 * rows > self.rows and seconds < CALL_SECONDS and self.rows < self.most:
            self.rows = self.sizes[self.key] = min(self.most, 2 * self.rows)


def input_scores(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``scores[i, :, target[i]]`` of scores ``(r, rows, K)`` grouped by input: a column view
    when every input has the same target (no per-row lookup)."""
    if (target == target[0]).all():
        return scores[:, :, target[0]]
    return scores[np.arange(scores.shape[0]), :, target]
