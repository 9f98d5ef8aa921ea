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
from lumos.methods.agnostic.masking import Blend
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
    return target_columns(adapter.scores(batch), target)


def target_columns(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``scores[i, target[i]]`` of scores ``(rows, K)``."""
    if target.size and (target == target[0]).all():  # one target: its column, no per-row lookup
        return scores[:, target[0]]
    return scores[np.arange(scores.shape[0]), target]


def coalition_values(adapter, x: np.ndarray, target: np.ndarray, masks: np.ndarray, reference: np.ndarray,
                     groups: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``v[n, m] = Σ_b w_b f_t(compose(x_n, reference_b, masks_m))``.

    ``reference`` is a background ``(B, *S)`` shared by all inputs (``weights`` sum to 1;
    uniform when None). The (input, coalition) pairs are taken in order, input by input, and
    cut into model calls of :func:`call_rows` rows (a call may end one input's coalitions and
    start the next one's; every pair is evaluated once, so the values do not depend on the
    call size). On a CPU with an automatic call size the calls double while one takes less
    than :data:`CALL_SECONDS` (:class:`CallSize`). The masks' expansion is made once for all
    calls (:class:`~lumos.methods.agnostic.masking.Blend`).
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
    blend = Blend(reference, masks, groups, dtype, x)
    one = bool((target == target[0]).all())
    flat = out.reshape(-1)  # pair p = (input p // m, coalition p % m)
    p, total = 0, n * m
    while p < total:
        q = min(total, p + max(1, size.rows // b))
        c = q - p
        batch = size.buffer(c * b * per_row, dtype)[:c * b * per_row].reshape(c, b, *shape)
        started = time.thread_time() if size.growing else 0.0
        _compose_pairs(blend, x, m, p, q, batch)
        s = size.scores(batch.reshape(c * b, *shape))
        if size.growing:
            size.took(time.thread_time() - started, c * b)
        if one:  # one target: its column, no per-row lookup
            f = s[:, target[0]]
        else:
            first = p // m
            per_input = np.diff(np.clip(np.arange(first, (q - 1) // m + 2) * m, p, q))
            f = s[np.arange(c * b), np.repeat(np.repeat(target[first:first + len(per_input)], per_input), b)]
        flat[p:q] = (f.reshape(c, b) * w).sum(-1)  # row-wise: equal rows give equal values
        p = q
    return out


def _compose_pairs(blend, x: np.ndarray, m: int, p: int, q: int, batch: np.ndarray) -> None:
    """Compose the pairs ``p:q`` (input-major over ``m`` coalitions) into ``batch (q - p, B, *S)``:
    the rest of the first input's coalitions, the whole inputs, the start of the last one."""
    at = p
    while at < q:
        i, j = divmod(at, m)
        if j == 0 and q - at >= m:  # whole inputs
            r = (q - at) // m
            blend(x[i:i + r], slice(0, m), batch[at - p:at - p + r * m].reshape(r, m, *batch.shape[1:]))
            at += r * m
        else:
            stop = min(m, j + q - at)
            blend(x[i:i + 1], slice(j, stop), batch[at - p:at - p + stop - j][None])
            at += stop - j


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

MAX_CALL_ELEMENTS = 2**19
"""The most input elements one grown call composes (2 MB of float32, about one core's L2 cache),
and at most 65,536 rows. Measured on the breast-cancer MLP (KernelShap, 500 coalitions x 50
background rows x 20 inputs, one thread, best of 15 interleaved): calls grown to 17,476 rows took
1.27x the model floor, calls grown to 65,536 rows (8 MB, the earlier cap) 1.34x; the model alone
runs as fast at 4,096-24,576 rows per call and ~15 % slower at 65,536."""


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

    @property
    def growing(self) -> bool:
        """Whether the calls may still grow (their time is then measured)."""
        return self.grows and self.rows < self.most

    def took(self, seconds: float, rows: int) -> None:
        """A call of ``rows`` rows took ``seconds``: grow the next ones when it was short."""
        if self.grows and 2 * rows > self.rows and seconds < CALL_SECONDS and self.rows < self.most:
            self.rows = self.sizes[self.key] = min(self.most, 2 * self.rows)
