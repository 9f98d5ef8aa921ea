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
        for rows, cols in expansion_chunks(n, m, per_copy):
            xs, ms = x[rows], masks[cols]
            batch = np.stack([compose(xi, reference, ms, groups) for xi in xs])  # (r, c, B, *S)
            r, c = batch.shape[:2]
            t = np.repeat(target[rows], c * b)
            f = self._target_scores(batch.reshape(r * c * b, *x.shape[1:]), t)
            out[rows, cols] = (f.reshape(r, c, b) * w).sum(-1)  # row-wise: equal rows give equal values
        return out
