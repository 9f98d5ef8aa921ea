"""Robustness and complexity of explanations.

- :func:`infidelity` (Yeh et al. 2019, arXiv 1901.09392):
  ``INFD = E_I[(I^T Phi - (f(x) - f(x - I)))^2]`` over random perturbations ``I``.
- :func:`max_sensitivity` (Yeh et al. 2019): ``max_{||y - x||_inf <= r} ||Phi(y) - Phi(x)||_2``,
  estimated by Monte-Carlo sampling in the ball.
- :func:`sparseness`: the Gini index of ``|Phi|`` (Chalasani et al. 2020); higher is sparser.
- :func:`entropy`: Shannon entropy of ``|Phi| / sum |Phi|``; lower is more concentrated.
"""
from __future__ import annotations

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.explanation import Explanation
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int, targets_of
from lumos.metrics._base import attributions_of, explain_fn, inputs_of, inputs_per_call, metric, region_map, scorer
from lumos.metrics.complexity import flat_values

PERTURBATIONS = ("removal", "gaussian")


@metric("infidelity", "robustness", higher_is_better=False)
def infidelity(model, inputs, attributions, target=None, *, perturbation: str = "removal", n_samples: int = 64,
               noise_std: float = 0.1, p: float = 0.5, region=1, baseline=0.0, normalise: bool = False,
               output: str = "raw", batch_size: int | None = None, seed=0) -> np.ndarray:
    """Infidelity per input (Yeh et al. 2019), lower is better.

    ``INFD(Phi, f, x) = mean_s (I_s^T Phi - (f(x) - f(x - I_s)))^2`` over ``n_samples``
    perturbations, all scored in one batched call per chunk of inputs:

    - ``perturbation="removal"``: each region (see ``region``) is set to ``baseline`` with
      probability ``p``; ``x - I = x (1 - m) + baseline m`` and the explanation term is
      ``m^T Phi``, the attribution of the removed features. This matches attributions that
      already include the input (Gradient x Input, Integrated Gradients, LRP, Shapley):
      Gradient x Input on a linear model has infidelity 0.
    - ``perturbation="gaussian"``: ``I ~ N(0, noise_std^2)`` per feature and the term is
      ``I^T Phi``. This matches plain gradients: Saliency (signed) on a linear model has
      infidelity 0.

    ``normalise=True`` first rescales the explanation term by the optimal
    ``beta = E[term * delta] / E[term^2]`` as in Yeh et al.'s code.
    """
    check_choice(perturbation, "perturbation", PERTURBATIONS)
    n_samples = check_positive_int(n_samples, "n_samples")
    x = inputs_of(inputs, attributions)
    a = np.asarray(attributions_of(attributions, x), dtype=np.float64).reshape(x.shape[0], -1)
    ref = broadcast_reference(baseline, x).reshape(x.shape[0], -1)
    regions = region_map(x.shape[1:], region).reshape(-1)
    n_regions = int(regions.max()) + 1
    rng = np.random.default_rng(seed)  # drawn chunk after chunk: the same draws for any batch_size
    n, d = x.shape[0], a.shape[1]
    x2 = x.reshape(n, -1)
    out = np.empty(n)
    with scorer(model, d, output, batch_size) as adapter:
        f0 = adapter.scores(x)
        t = adapter.targets(target, f0)
        f0 = f0[np.arange(n), t]
        for sl in chunk_slices(n, inputs_per_call(batch_size, d, n_samples)):
            k = sl.stop - sl.start
            if perturbation == "removal":
                m = (rng.random((k, n_samples, n_regions)) < p)[:, :, regions]
                pert = np.where(m, ref[sl, None], x2[sl, None])
                term = np.einsum("ksd,kd->ks", m.astype(np.float64), a[sl])
            else:
                noise = rng.normal(0.0, noise_std, (k, n_samples, d))
                pert = x2[sl, None] - noise
                term = np.einsum("ksd,kd->ks", noise, a[sl])
            scores = adapter.scores(pert.reshape(-1, *x.shape[1:]).astype(x.dtype, copy=False))
            rows = np.repeat(t[sl], n_samples)
            delta = f0[sl, None] - scores[np.arange(rows.size), rows].reshape(k, n_samples)
            if normalise:
                beta = (term * delta).mean(1, keepdims=True) / np.maximum((term ** 2).mean(1, keepdims=True), 1e-30)
                term = beta * term
            out[sl] = ((term - delta) ** 2).mean(axis=1)
    return out


@metric("max_sensitivity", "robustness", higher_is_better=False, needs="explainer")
def max_sensitivity(explainer, model, inputs, target=None, *, radius: float = 0.02, n_samples: int = 10,
                    relative: bool = False, batch_size: int | None = None, seed=0, attributions=None) -> np.ndarray:
    """Max-sensitivity per input (Yeh et al. 2019), lower is better.

    ``SENS_MAX = max_s ||Phi(x + u_s) - Phi(x)||_2`` with ``u_s ~ U[-radius, radius]`` per
    feature, ``n_samples`` samples, the target fixed to the one explained at ``x``
    (``relative=True`` divides by ``||Phi(x)||_2``). The explainer runs once on each chunk
    of inputs followed by their noisy copies (about ``batch_size`` rows; the explainer's own
    ``batch_size`` bounds its model calls). Each input and its copies keep their positions
    in the whole batch (``row_offset``), so a stochastic explainer draws the same noise for
    them whatever the chunking.

    ``attributions``: Phi(x) already computed (an Explanation, tensor or array with one row
    per input, made by the same explainer; Quantus's ``a_batch``): only the noisy copies are
    explained, seeded as rows after the ``n`` inputs (``row_offset = n + i*S + s``), with the
    same noise ``u_s`` as without it; ``inputs=None`` takes the inputs an Explanation
    carries and ``target=None`` its targets.
    """
    from lumos.metrics.stability import _precomputed, check_width

    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    n_samples = check_positive_int(n_samples, "n_samples")
    run = explain_fn(explainer)
    x = inputs_of(inputs, attributions)
    given = None if attributions is None else _precomputed(attributions, x)
    if given is not None and target is None and isinstance(attributions, Explanation):
        target = attributions.target
    from lumos.methods.base import Explainer

    t = targets_of(target, len(x))
    # the forward pass over x resolves the targets (and checks their range for explainers that do not
    # check it on their own pass); Phi(x) given with the targets and a lumos explainer: left out
    if t is None or given is None or not isinstance(explainer, Explainer):
        with scorer(model, x[0].size, "raw", batch_size) as adapter:
            t = adapter.targets(target, adapter.scores(x))
    elif np.ndim(t) == 0:
        t = np.full(len(x), t, dtype=np.int64)
    rng = np.random.default_rng(seed)  # drawn chunk after chunk: the same draws for any batch_size
    n = x.shape[0]
    rows = n_samples + (given is None)  # rows explained per input
    out = np.empty(n)
    for sl in chunk_slices(n, inputs_per_call(batch_size, x[0].size, rows)):
        k = sl.stop - sl.start
        noisy = (x[sl, None] + rng.uniform(-radius, radius, (k, n_samples) + x.shape[1:])).astype(x.dtype)
        if given is None:
            batch, offset = np.concatenate([x[sl, None], noisy], axis=1), sl.start * rows
        else:
            batch, offset = noisy, n + sl.start * n_samples
        phi = np.asarray(run(model, batch.reshape(-1, *x.shape[1:]), np.repeat(t[sl], rows), row_offset=offset),
                         dtype=np.float64).reshape(k, rows, -1)
        if given is None:
            base, moved = phi[:, 0], phi[:, 1:]
        else:
            check_width(given, phi)
            base, moved = given[sl], phi
        dist = np.linalg.norm(moved - base[:, None], axis=2).max(axis=1)
        if relative:
            dist = dist / np.maximum(np.linalg.norm(base, axis=1), 1e-30)
        out[sl] = dist
    return out


def _flat_abs(attributions) -> np.ndarray:
    return np.abs(flat_values(attributions))


@metric("sparseness", "complexity", higher_is_better=True, needs="attributions_only")
def sparseness(attributions) -> np.ndarray:
    """Gini index of ``|Phi|`` per input (Chalasani et al. 2020; Hurley & Rickard 2009):
    ``G = sum_i (2i - d - 1) a_(i) / (d sum_i a_(i))`` with ``a_(1) <= ... <= a_(d)``.
    0 for a uniform map (and for an all-zero map), ``1 - 1/d`` for a single non-zero feature."""
    a = np.sort(_flat_abs(attributions), axis=1)
    d = a.shape[1]
    weights = 2 * np.arange(1, d + 1) - d - 1
    total = a.sum(axis=1)
    return np.where(total > 0, (a @ weights) / np.maximum(d * total, 1e-300), 0.0)


@metric("entropy", "complexity", higher_is_better=False, needs="attributions_only")
def entropy(attributions) -> np.ndarray:
    """Shannon entropy (nats) of ``p = |Phi| / sum |Phi|`` per input: 0 for a single
    feature, ``log d`` for a uniform map (and, as its limit, for an all-zero map)."""
    a = _flat_abs(attributions)
    total = a.sum(axis=1, keepdims=True)
    p = np.where(total > 0, a / np.maximum(total, 1e-300), 1.0 / a.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(p), 0.0)
    return -(p * logs).sum(axis=1)
