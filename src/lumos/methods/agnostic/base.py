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

from typing import ClassVar

import numpy as np

from lumos.core.batching import expansion_chunks
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
    uniform when None). Inputs and coalitions are split into blocks of at most the
    adapter's ``batch_size`` composed rows, each evaluated in one call of the model.
    """
    n, m, b = x.shape[0], masks.shape[0], reference.shape[0]
    w = np.full(b, 1.0 / b) if weights is None else weights
    out = np.empty((n, m))
    if m == 0:
        return out
    per_row = int(np.prod(x.shape[1:], dtype=np.int64))
    per_copy = max(1, call_rows(adapter, per_row, b) // b)
    chunks = list(expansion_chunks(n, m, per_copy))
    # one buffer for every chunk: a fresh multi-MB array per chunk costs a page fault per
    # 4 kB page each time (glibc returns large blocks to the system when freed)
    most = max((rows.stop - rows.start) * (cols.stop - cols.start) for rows, cols in chunks)
    store = np.empty(most * b * per_row, dtype=np.result_type(x, reference))
    for rows, cols in chunks:
        xs, ms = x[rows], masks[cols]
        r, c = xs.shape[0], ms.shape[0]
        batch = store[:r * c * b * per_row].reshape(r, c, b, *x.shape[1:])
        compose_rows(xs, reference, ms, groups, out=batch)  # (r, c, B, *S) written in place
        s = adapter.scores(batch.reshape(r * c * b, *x.shape[1:])).reshape(r, c * b, -1)
        f = input_scores(s, target[rows])
        out[rows, cols] = (f.reshape(r, c, b) * w).sum(-1)  # row-wise: equal rows give equal values
    return out


CACHE_ELEMENTS = 2**17
"""Input elements of one model call composing coalitions on a CPU (512 kB of float32): the
composed rows and the model's activations stay in the cache. Measured with one thread
(KernelShap, 1,024 coalitions, 10 background rows): the ECG200 1-D CNN (96 samples, calls of
1,365 rows) took 0.43x the time of calls of 65,536 rows; the 30-feature MLP (calls of 4,369
rows) about 0.9x."""


def call_rows(adapter, per_row: int, b: int) -> int:
    """Rows per model call of :func:`coalition_values`: the adapter's ``batch_size`` (the
    most per call), on a CPU at most :data:`CACHE_ELEMENTS` elements (at least one
    coalition's ``b`` rows)."""
    rows = adapter.batch_size
    if getattr(getattr(adapter, "device", None), "type", "cpu") == "cpu":
        rows = min(rows, max(b, CACHE_ELEMENTS // max(per_row, 1)))
    return rows


def input_scores(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``scores[i, :, target[i]]`` of scores ``(r, rows, K)`` grouped by input: a column view
    when every input has the same target (no per-row lookup)."""
    if (target == target[0]).all():
        return scores[:, :, target[0]]
    return scores[np.arange(scores.shape[0]), :, target]
