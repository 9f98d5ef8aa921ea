"""Shared plumbing of the model-agnostic explainers: the target score of many composed
inputs, evaluated chunk by chunk (one ``adapter.scores`` call per chunk)."""
from __future__ import annotations

import numpy as np

from lumos.core.batching import expansion_chunks
from lumos.methods.agnostic.masking import compose
from lumos.methods.base import Explainer


class AgnosticExplainer(Explainer):
    """Base of the perturbation explainers: any torch module or ``numpy -> scores``
    callable (e.g. ``clf.predict_proba``); no gradients are taken."""

    needs_gradients = False
    element_budget = 2**22
    """Without an explicit ``batch_size``, one model call gets about this many input
    elements (at least 256 and at most 65,536 rows): perturbation methods send hundreds
    of thousands of rows, and small calls would spend their time in call overhead."""

    def __init__(self, model, *, batch_size: int | None = None, **kwargs):
        self._auto_batch = batch_size is None
        super().__init__(model, batch_size=256 if batch_size is None else batch_size, **kwargs)

    def _size_batches(self, x: np.ndarray) -> None:
        if self._auto_batch:
            self.adapter.batch_size = int(np.clip(self.element_budget // max(x[0].size, 1), 256, 65536))

    def _run(self, x, target, **options):
        self._size_batches(x)
        return super()._run(x, target, **options)

    def _target_scores(self, batch: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``f_t(batch)`` for a flat batch and one target per row."""
        s = self.adapter.scores(batch)
        return s[np.arange(s.shape[0]), target]

    def coalition_values(self, x: np.ndarray, target: np.ndarray, masks: np.ndarray, reference: np.ndarray,
                         groups: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``v[n, m] = Σ_b w_b f_t(compose(x_n, reference_b, masks_m))``.

        ``reference`` is a background ``(B, *S)`` shared by all inputs (``weights`` sum
        to 1; uniform when None). Inputs and coalitions are split into chunks of about
        ``batch_size`` composed rows, each evaluated in one call of the model.
        """
        n, m, b = x.shape[0], masks.shape[0], reference.shape[0]
        w = np.full(b, 1.0 / b) if weights is None else weights
        out = np.empty((n, m))
        if m == 0:
            return out
        per_copy = max(1, self.adapter.batch_size // b)
        chunks = list(expansion_chunks(n, m, per_copy))
        # one buffer for every chunk: a fresh multi-MB array per chunk costs a page fault per
        # 4 kB page each time (glibc returns large blocks to the system when freed)
        per_row = int(np.prod(x.shape[1:], dtype=np.int64))
        most = max((rows.stop - rows.start) * (cols.stop - cols.start) for rows, cols in chunks)
        store = np.empty(most * b * per_row, dtype=np.result_type(x, reference))
        for rows, cols in chunks:
            xs, ms = x[rows], masks[cols]
            r, c = xs.shape[0], ms.shape[0]
            batch = store[:r * c * b * per_row].reshape(r, c, b, *x.shape[1:])
            for xi, buf in zip(xs, batch):
                compose(xi, reference, ms, groups, out=buf)  # (c, B, *S) written in place
            t = np.repeat(target[rows], c * b)
            f = self._target_scores(batch.reshape(r * c * b, *x.shape[1:]), t)
            out[rows, cols] = (f.reshape(r, c, b) * w).sum(-1)  # row-wise: equal rows give equal values
        return out
