"""The report's evaluation, taken from :mod:`lumos.metrics` (no second implementation):

- the deletion curve (pixel flipping, MoRF; Samek et al. 2017, arXiv 1509.06321): features
  are set to a baseline in ``n_steps`` equal chunks, most relevant (largest signed
  attribution) first, scored by the softmax probability of the explained class
  (:func:`lumos.metrics.deletion`), and its AOPC ``1/(L+1) Σ_{k=0..L} (f(x⁰) − f(xᵏ))``:
  larger means the ranking found the evidence the model uses; a random ordering gives the
  reference value;
- the Gini sparseness of each map (:func:`lumos.metrics.sparseness`, Chalasani et al. 2020);
- relevance mass accuracy inside a ground-truth mask
  (:func:`lumos.metrics.relevance_mass_accuracy`, Arras et al. 2022).
"""
from __future__ import annotations

import numpy as np

from lumos.metrics import deletion, relevance_mass_accuracy, sparseness

gini = sparseness
mass_in_mask = relevance_mass_accuracy


def relevance_map(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Attributions broadcast to the input batch shape (CAM maps are (N, 1, ...))."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape == shape:
        return values
    try:
        return np.broadcast_to(values, shape).copy()
    except ValueError as err:
        raise ValueError(f"attributions of shape {values.shape} do not broadcast to the inputs {shape}") from err


def deletion_curves(model, x: np.ndarray, values: np.ndarray | None, target: np.ndarray, n_steps: int = 20,
                    baseline: np.ndarray | float = 0.0, seed: int | None = None, batch_size: int = 512) -> np.ndarray:
    """Softmax probability of ``target`` as features are deleted, shape (N, n_steps + 1).

    ``values=None`` orders the features at random (seeded by ``seed``): the reference curve.
    """
    rel = np.random.default_rng(seed).random(x.shape) if values is None else relevance_map(values, x.shape)
    return deletion(model, x, rel, np.asarray(target).reshape(-1), n_steps=n_steps, baseline=baseline,
                    output="softmax", batch_size=batch_size).curve


def aopc(curves: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per sample: mean_k (f(x⁰) − f(xᵏ))."""
    return (curves[:, :1] - curves).mean(axis=1)
