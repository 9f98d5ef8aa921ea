"""Explainability-performance coefficient (EPC): lumos's own definition.

The idea comes from the UAM course on explainable AI (Oliva & Lago-Fernandez); the
published formula was not available to us, so lumos defines it as follows and documents
it as its own:

1. For each fraction ``k`` in ``fractions`` (default 0.05, 0.10, ..., 1.0), keep the top
   ``k`` fraction of the features of every input by ``|attribution|`` and set the rest to
   ``baseline`` (default 0).
2. Measure the model's performance ``p(k)`` on the masked inputs (default: accuracy
   against ``labels``; any ``performance(scores, labels) -> float``).
3. Report the curve, ``k95`` = the smallest ``k`` with ``p(k) >= 0.95 p(1)``, and
   ``EPC = mean_k (p(k) / p(1)) (1 - k)``.

EPC lies in [0, mean(1 - k)] when performance never exceeds p(1) (0.475 for the default
grid): it is high when a small top fraction of features keeps the performance and near 0
when the performance collapses as soon as features are removed. ``p(1)`` is the performance on
the unmasked inputs (``k = 1`` keeps every feature).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.validate import broadcast_reference
from lumos.metrics._base import attributions_of, inputs_of, inputs_per_call, metric, scorer


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(scores, axis=1) == labels).mean())


@dataclass
class EPCResult:
    """``fractions`` (S,), ``performance`` p(k) (S,), ``full`` p(1), ``k95``, ``epc``."""

    fractions: np.ndarray
    performance: np.ndarray
    full: float
    k95: float
    epc: float

    @property
    def value(self) -> float:
        return self.epc


@metric("epc", "explainability-performance", higher_is_better=True, needs="labels")
def explainability_performance(model, inputs, attributions, labels, *, fractions=None, baseline=0.0,
                               performance: Callable[[np.ndarray, np.ndarray], float] = accuracy,
                               batch_size: int | None = None) -> EPCResult:
    """lumos's explainability-performance coefficient (see the module docstring).

    All masked copies of a chunk of inputs are scored in one batched call; ties in
    ``|attribution|`` are broken by feature position (stable sort), and the number of kept
    features is ``ceil(k d)``.
    """
    x = inputs_of(inputs, attributions)
    a = np.abs(np.asarray(attributions_of(attributions, x), dtype=np.float64)).reshape(len(x), -1)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != len(x):
        raise ValueError(f"labels have {labels.shape[0]} entries for {len(x)} inputs")
    fr = np.arange(1, 21) / 20 if fractions is None else np.asarray(fractions, dtype=np.float64).reshape(-1)
    if fr.size == 0 or (fr <= 0).any() or (fr > 1).any():
        raise ValueError("fractions must lie in (0, 1]")
    fr = np.unique(np.append(fr, 1.0))
    d = a.shape[1]
    keep = np.ceil(fr * d - 1e-9).astype(np.int64)
    rank = np.empty_like(a, dtype=np.int64)
    order = np.argsort(-a, axis=1, kind="stable")
    np.put_along_axis(rank, order, np.arange(d)[None].repeat(len(x), 0), axis=1)
    ref = broadcast_reference(baseline, x).reshape(len(x), -1)
    x2 = x.reshape(len(x), -1)
    parts = []
    with scorer(model, x[0].size, "raw", batch_size) as adapter:
        for sl in chunk_slices(len(x), inputs_per_call(batch_size, x[0].size, len(fr))):
            kept = rank[sl, None, :] < keep[None, :, None]
            copies = np.where(kept, x2[sl, None], ref[sl, None]).reshape(-1, *x.shape[1:])
            s = adapter.scores(copies.astype(x.dtype, copy=False))
            parts.append(s.reshape(sl.stop - sl.start, len(fr), -1))
    allscores = np.concatenate(parts, axis=0)
    perf = np.array([performance(allscores[:, j], labels) for j in range(len(fr))])
    full = float(perf[-1])
    if full <= 0:
        raise ValueError("the model's performance on the unmasked inputs is 0; EPC is undefined")
    k95 = float(fr[np.argmax(perf >= 0.95 * full)])
    epc = float(np.mean(perf / full * (1 - fr)))
    return EPCResult(fr, perf, full, k95, epc)
