"""Shapley values of a model's score (Shapley 1953; Lundberg & Lee 2017, arXiv:1705.07874).

    φ_i = Σ_{S ⊆ N\\{i}} |S|! (d−|S|−1)! / d! · [v(S ∪ {i}) − v(S)]
    v(S) = Σ_b w_b f(x_S, b_{N\\S})          (interventional value over a background)

Players are features or feature groups (:mod:`lumos.methods.agnostic.masking`). Every
estimator here satisfies efficiency exactly: ``Σ_i φ_i = f(x) − E_b f(b)`` with
``base_value = E_b f(b)`` (the weighted mean model output over the background), so
``values.sum() + base_value == prediction[target]`` for every row.

*Assumption.* Replacing the absent features by background rows drawn independently of
the present ones evaluates the model off the data manifold when features are
correlated: the values then explain the model under feature independence, not the data.

- :class:`ExactShapley` enumerates all 2^d coalitions (vectorised; refuses above ``max_features``).
- :class:`KernelShap` solves the kernel-weighted least squares with the efficiency
  constraint, paired sampling and complete enumeration of the smallest/largest sizes.
- :class:`SamplingShapley` averages marginal contributions over antithetic permutations
  (Strumbelj & Kononenko 2014, doi:10.1007/s10115-013-0679-x).
"""
from __future__ import annotations

import math

import numpy as np

from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer
from lumos.methods.agnostic.masking import as_background, as_inputs, resolve_groups, spread


def kmeans_background(data, k: int = 50, seed: int = 0, round_values: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Summarise a background by k-means (as ``shap.kmeans``): centres and weights.

    Each centre's feature is rounded to the nearest value that feature takes in the data
    (``round_values``), and the weight of a centre is its cluster's share of the rows.
    Returns ``(centres (k, *S), weights (k,))``.
    """
    from sklearn.cluster import KMeans  # scikit-learn is a lumos dependency

    data = np.asarray(data, dtype=np.float64)
    flat = data.reshape(data.shape[0], -1)
    k = check_positive_int(k, "k")
    if k >= flat.shape[0]:
        return data.copy(), np.full(flat.shape[0], 1.0 / flat.shape[0])
    km = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(flat)
    centres = km.cluster_centers_.copy()
    if round_values:
        for j in range(flat.shape[1]):
            nearest = np.abs(flat[:, j][None, :] - centres[:, j][:, None]).argmin(axis=1)
            centres[:, j] = flat[nearest, j]
    weights = np.bincount(km.labels_, minlength=k) / flat.shape[0]
    return centres.reshape(k, *data.shape[1:]), weights


class ShapleyExplainer(AgnosticExplainer):
    """Common part: background, groups, base value, efficiency bookkeeping.

    ``explain(x, target, background=..., background_weights=None, groups=None,
    feature_names=None)``; ``background`` rows are shaped like the samples.
    """

    def __init__(self, model, *, n_background: int | None = None, seed: int = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_background = None if n_background is None else check_positive_int(n_background, "n_background")
        self.seed = seed

    def params(self):
        return {**super().params(), "n_background": self.n_background, "seed": self.seed}

    def _explain(self, x, target, scores, background=None, background_weights=None, groups=None,
                 feature_names=None):
        x = as_inputs(x)
        bg = as_background(background, x)
        if background_weights is None and self.n_background is not None and bg.shape[0] > self.n_background:
            bg, background_weights = kmeans_background(bg, self.n_background, seed=self.seed)
            bg = bg.astype(x.dtype)
        w = self._weights(background_weights, bg.shape[0])
        groups, n_groups = resolve_groups(groups, x.shape[1:])
        base = np.stack([(self._target_scores(bg, np.full(bg.shape[0], t)) * w).sum() for t in np.unique(target)])
        base = base[np.searchsorted(np.unique(target), target)]
        f_x = scores[np.arange(x.shape[0]), target]
        phi, extras = self._shapley(x, target, bg, w, groups, n_groups, f_x, base)
        values = spread(phi, groups, n_groups)
        delta = values.reshape(x.shape[0], -1).sum(1) - (f_x - base)
        extras = {"group_values": phi, "groups": np.broadcast_to(groups, x.shape).astype(np.int32), **extras}
        return self._result(values, x, target, scores, base_value=base, delta=delta,
                            feature_names=feature_names, extras=extras)

    @staticmethod
    def _weights(weights, b):
        if weights is None:
            return np.full(b, 1.0 / b)
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (b,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"background_weights must be {b} non-negative finite numbers with a positive sum")
        return w / w.sum()

    def _values(self, x, target, masks, bg, w, groups, f_x, base):
        """Coalition values. The full coalition is evaluated like every other one
        (Σ_b w_b f(x), equal to f(x) up to rounding), so that a player the model
        ignores has exactly equal values with and without it."""
        return self.coalition_values(x, target, masks, bg, groups, w)

    def _shapley(self, x, target, bg, w, groups, n_groups, f_x, base):
        raise NotImplementedError


def all_coalitions(d: int) -> np.ndarray:
    """Bool matrix (2^d, d): row k is the coalition whose bits are those of k."""
    return ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(bool)


@register("exact_shapley", "shapley")
class ExactShapley(ShapleyExplainer):
    """Shapley values by enumeration of all 2^d coalitions.

    All coalition values are computed in batched model calls; then, for every player i,
    the differences ``v(S ∪ i) − v(S)`` over the 2^(d−1) coalitions without i are
    contracted with the weights ``|S|!(d−|S|−1)!/d!`` in one matrix product. A player
    the model ignores gets exactly 0.

    Parameters
    ----------
    max_features : int, default 16
        Refuse (ValueError) above this many players: the cost is 2^d · B model rows per input.
    n_background : int, optional
        Summarise a larger background to this many k-means centres.
    """

    def __init__(self, model, *, max_features: int = 16, **kwargs):
        super().__init__(model, **kwargs)
        self.max_features = check_positive_int(max_features, "max_features")

    def params(self):
        return {**super().params(), "max_features": self.max_features}

    def _shapley(self, x, target, bg, w, groups, n_groups, f_x, base):
        d = n_groups
        if d > self.max_features:
            raise ValueError(f"ExactShapley would enumerate 2^{d} coalitions ({d} features or groups > "
                             f"max_features={self.max_features}); group features, raise max_features, "
                             "or use KernelShap / SamplingShapley")
        masks = all_coalitions(d)
        v = self._values(x, target, masks, bg, w, groups, f_x, base)
        ids = np.arange(2 ** d)
        without = np.stack([ids[((ids >> i) & 1) == 0] for i in range(d)])  # (d, 2^(d-1))
        with_i = without + (1 << np.arange(d))[:, None]
        size = masks[without].sum(-1)  # |S| for each S without i
        weight = np.array([1.0 / (d * math.comb(d - 1, k)) for k in range(d)])[size]  # |S|!(d-|S|-1)!/d!
        phi = np.empty((x.shape[0], d))
        for n in range(x.shape[0]):
            phi[n] = np.einsum("ik,ik->i", v[n][with_i] - v[n][without], weight)
        return phi, {}


def kernel_weight(d: int, s: np.ndarray) -> np.ndarray:
    """Shapley kernel per coalition of size s: (d−1) / (C(d,s) · s · (d−s))."""
    s = np.asarray(s)
    comb = np.array([math.comb(d, int(k)) for k in s.ravel()], dtype=np.float64).reshape(s.shape)
    return (d - 1) / (comb * s * (d - s))


def kernel_coalitions(d: int, n_samples: int, rng: np.random.Generator, paired: bool = True):
    """Coalitions and kernel weights for KernelSHAP with a budget of ``n_samples``.

    Sizes are visited from the outside in (1 and d−1, then 2 and d−2, ...); a size pair
    is enumerated completely while its share of the remaining kernel weight times the
    remaining budget covers all its coalitions. The rest of the budget samples sizes
    in proportion to their total kernel weight (d−1)/(s(d−s)), then a uniform subset of
    that size, together with its complement when ``paired``. Enumerated coalitions get
    their exact kernel weight; sampled ones share the remaining total weight equally
    (duplicates are merged, adding their weights), an unbiased estimate of the kernel.
    Returns ``(masks (M, d) bool, weights (M,))``.
    """
    if d < 2:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    pair_sizes = list(range(1, d // 2 + 1))  # s with partner d - s
    total = np.array([(d - 1) / (s * (d - s)) * (1 if 2 * s == d else 2) for s in pair_sizes])
    masks, weights = [], []
    left = n_samples
    k = 0
    while k < len(pair_sizes):
        s = pair_sizes[k]
        count = math.comb(d, s) * (1 if 2 * s == d else 2)
        share = total[k] / total[k:].sum()
        if left * share + 1e-8 < count:
            break
        for size in ({s, d - s}):
            sub = _subsets_of_size(d, size)
            masks.append(sub)
            weights.append(np.full(len(sub), kernel_weight(d, np.array([size]))[0]))
        left -= count
        k += 1
    if k < len(pair_sizes) and left > 0:
        draws = left // 2 if paired else left
        draws = max(draws, 1)
        p = total[k:] / total[k:].sum()
        sizes = np.asarray(pair_sizes[k:])[rng.choice(len(p), size=draws, p=p)]
        flip = rng.random(draws) < 0.5  # size s or d - s, then the complement
        sizes = np.where(flip, d - sizes, sizes)
        keys = rng.random((draws, d))
        thresh = np.sort(keys, axis=1)[np.arange(draws), sizes - 1]
        sampled = keys <= thresh[:, None]
        if paired:
            sampled = np.concatenate([sampled, ~sampled])
        uniq, counts = np.unique(sampled, axis=0, return_counts=True)
        masks.append(uniq)
        weights.append(counts * (total[k:].sum() / sampled.shape[0]))
    if not masks:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    return np.concatenate(masks), np.concatenate(weights)


def _subsets_of_size(d: int, s: int) -> np.ndarray:
    from itertools import combinations

    idx = np.array(list(combinations(range(d), s)), dtype=np.int64)
    out = np.zeros((idx.shape[0], d), dtype=bool)
    out[np.arange(idx.shape[0])[:, None], idx] = True
    return out


def constrained_wls(masks: np.ndarray, weights: np.ndarray, v: np.ndarray, base: np.ndarray,
                    f_x: np.ndarray) -> np.ndarray:
    """Solve min Σ_z π(z) (v(z) − base − z·φ)² subject to Σφ = f(x) − base, for every row.

    The constraint eliminates the last player: φ_d = Δ − Σ_{i<d} φ_i, so the regression is
    on ``z_i − z_d`` with target ``v − base − z_d Δ``; all rows share the design matrix.
    """
    d = masks.shape[1]
    delta = f_x - base
    if d == 1:
        return delta[:, None]
    z = masks.astype(np.float64)
    design = z[:, :-1] - z[:, -1:]
    y = v - base[:, None] - z[None, :, -1] * delta[:, None]  # (N, M)
    sw = np.sqrt(weights)
    sol, *_ = np.linalg.lstsq(design * sw[:, None], (y * sw[None]).T, rcond=None)  # (d-1, N)
    phi = np.empty((v.shape[0], d))
    phi[:, :-1] = sol.T
    phi[:, -1] = delta - sol.sum(0)
    return phi


@register("kernel_shap", "kernelshap")
class KernelShap(ShapleyExplainer):
    """KernelSHAP (Lundberg & Lee 2017): Shapley values as the solution of a weighted
    linear regression of coalition values on coalition indicators with the Shapley kernel
    π(z) = (d−1) / (C(d,|z|) |z| (d−|z|)), the empty and full coalitions enforced exactly
    as the efficiency constraint. With a budget of all 2^d − 2 coalitions the result is
    the exact Shapley value.

    Parameters
    ----------
    n_samples : int or "auto", default "auto"
        Coalitions evaluated per input (``"auto"``: 2d + 2048, as shap).
    paired : bool, default True
        Sample each coalition together with its complement (antithetic).
    n_background : int, optional
        Summarise a larger background to this many weighted k-means centres.
    seed : int, default 0
        The coalitions are drawn once per call from this seed and shared by all inputs.
    """

    def __init__(self, model, *, n_samples="auto", paired: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.n_samples = n_samples if n_samples == "auto" else check_positive_int(n_samples, "n_samples")
        self.paired = bool(paired)

    def params(self):
        return {**super().params(), "n_samples": self.n_samples, "paired": self.paired}

    def _shapley(self, x, target, bg, w, groups, n_groups, f_x, base):
        d = n_groups
        budget = 2 * d + 2048 if self.n_samples == "auto" else self.n_samples
        masks, weights = kernel_coalitions(d, budget, np.random.default_rng(self.seed), self.paired)
        if masks.shape[0] == 0:
            return (f_x - base)[:, None] * np.ones((1, d)) / d, {"n_coalitions": np.asarray(0)}
        v = self._values(x, target, masks, bg, w, groups, f_x, base)
        return constrained_wls(masks, weights, v, base, f_x), {"n_coalitions": np.asarray(masks.shape[0])}


@register("sampling_shapley", "shapley_sampling", "permutation_shapley")
class SamplingShapley(ShapleyExplainer):
    """Shapley values as the mean marginal contribution over random orderings of the
    players (Strumbelj & Kononenko 2014), each ordering used with its reverse
    (antithetic pairs). Efficiency holds exactly for every ordering (the contributions
    telescope to f(x) − E f); ``extras["std_error"]`` is the standard error over pairs.

    Parameters
    ----------
    n_permutations : int, default 64
        Orderings (rounded up to an even number: each comes with its reverse).
    """

    def __init__(self, model, *, n_permutations: int = 64, **kwargs):
        super().__init__(model, **kwargs)
        self.n_permutations = check_positive_int(n_permutations, "n_permutations")

    def params(self):
        return {**super().params(), "n_permutations": self.n_permutations}

    def _shapley(self, x, target, bg, w, groups, n_groups, f_x, base):
        d = n_groups
        rng = np.random.default_rng(self.seed)
        half = (self.n_permutations + 1) // 2
        perms = np.argsort(rng.random((half, d)), axis=1)
        perms = np.concatenate([perms, perms[:, ::-1]])  # (P, d)
        p = perms.shape[0]
        rank = np.argsort(perms, axis=1)  # position of each player in each ordering
        # chain k of ordering p holds the first k players: player i is in it when rank < k
        chains = rank[:, None, :] < np.arange(d + 1)[None, :, None]  # (P, d+1, d)
        inner = np.concatenate([chains[:, 1:d].reshape(-1, d), np.zeros((1, d), bool), np.ones((1, d), bool)])
        v_all = self.coalition_values(x, target, inner, bg, groups, w)
        n = x.shape[0]
        v = np.concatenate([np.broadcast_to(v_all[:, -2, None, None], (n, p, 1)),
                            v_all[:, :-2].reshape(n, p, d - 1),
                            np.broadcast_to(v_all[:, -1, None, None], (n, p, 1))], axis=2)
        step = np.diff(v, axis=2)  # (N, P, d): contribution of the k-th player in ordering p
        contrib = np.take_along_axis(step, np.broadcast_to(rank[None], step.shape), axis=2)
        phi = contrib.mean(1)
        pair = 0.5 * (contrib[:, :half] + contrib[:, half:])
        se = pair.std(1, ddof=1) / np.sqrt(half) if half > 1 else np.full_like(phi, np.nan)
        return phi, {"std_error": se}
