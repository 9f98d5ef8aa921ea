"""Evaluation used by the report when ``lumos.metrics`` is not installed: the deletion
(pixel-flipping, MoRF) curve of Samek et al. 2017 (arXiv 1509.06321) and its AOPC,
plus the Gini sparseness of each map (Chalasani et al. 2020).

Deletion: features are replaced by a baseline in ``n_steps`` equal chunks, most relevant
(largest signed attribution) first; ``f`` is the softmax probability of the explained class.
``AOPC = 1/(L+1) Σ_{k=0..L} (f(x⁰) − f(xᵏ))``; larger means the ranking found the
evidence the model uses. A random ordering gives the reference value.
"""
from __future__ import annotations

import numpy as np

from lumos.core.model import ModelAdapter


def relevance_map(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Attributions broadcast to the input batch shape (CAM maps are (N, 1, ...))."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape == shape:
        return values
    try:
        return np.broadcast_to(values, shape).copy()
    except ValueError as err:
        raise ValueError(f"attributions of shape {values.shape} do not broadcast to the inputs {shape}") from err


def deletion_curves(model, x: np.ndarray, values: np.ndarray, target: np.ndarray, n_steps: int = 20,
                    baseline: np.ndarray | float = 0.0, seed: int | None = None, batch_size: int = 512) -> np.ndarray:
    """Softmax probability of ``target`` as features are deleted, shape (N, n_steps + 1).

    ``values=None`` with ``seed`` given uses a random ordering (the reference curve).
    All perturbed copies go through the model in batched calls.
    """
    adapter = ModelAdapter(model, output="softmax", batch_size=batch_size)
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float32)
    d = flat.shape[1]
    base = np.broadcast_to(np.asarray(baseline, dtype=np.float32), x.shape[1:]).reshape(-1)
    if values is None:
        rng = np.random.default_rng(seed)
        order = np.stack([rng.permutation(d) for _ in range(n)])
    else:
        rel = relevance_map(values, x.shape).reshape(n, -1)
        order = np.argsort(-rel, axis=1, kind="stable")
    cuts = np.linspace(0, d, n_steps + 1).round().astype(int)
    copies = np.repeat(flat[:, None, :], n_steps + 1, axis=1)  # (N, L+1, d)
    for k in range(1, n_steps + 1):
        idx = order[:, :cuts[k]]
        rows = np.arange(n)[:, None]
        copies[rows, k, idx] = base[idx]
    scores = adapter.scores(copies.reshape((n * (n_steps + 1),) + x.shape[1:]))
    probs = scores[np.arange(n * (n_steps + 1)), np.repeat(np.asarray(target, dtype=int), n_steps + 1)]
    return probs.reshape(n, n_steps + 1)


def aopc(curves: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per sample: mean_k (f(x⁰) − f(xᵏ))."""
    return (curves[:, :1] - curves).mean(axis=1)


def gini(values: np.ndarray) -> np.ndarray:
    """Gini index of |attribution| per sample (0 = uniform, 1 = one feature)."""
    a = np.sort(np.abs(values.reshape(values.shape[0], -1)), axis=1)
    d = a.shape[1]
    total = a.sum(axis=1)
    k = np.arange(1, d + 1)
    g = ((2 * k - d - 1) * a).sum(axis=1) / (d * np.where(total > 0, total, 1))
    return np.where(total > 0, g, 0.0)


def mass_in_mask(values: np.ndarray, mask: np.ndarray, positive: bool = True) -> np.ndarray:
    """Relevance mass accuracy (Arras et al. 2022, arXiv 2003.07258): the share of the
    (positive) relevance that falls inside the ground-truth mask, per sample."""
    rel = relevance_map(values, mask.shape).reshape(mask.shape[0], -1)
    rel = np.clip(rel, 0, None) if positive else np.abs(rel)
    inside = (rel * mask.reshape(mask.shape[0], -1)).sum(axis=1)
    total = rel.sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1), 0.0)
