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

*Memory.* KernelSHAP's coalitions and SamplingShapley's orderings are generated in blocks
of about ``design_elements`` elements, evaluated block by block and reduced as they come
(the normal equations of the regression, the sums of the contributions), so a budget of a
million coalitions of a 784-pixel image needs no more memory than one of a hundred
thousand. The random draws are made in the same order whatever the block size: a budget
that fits one block gives the coalitions of an unblocked computation.
"""
from __future__ import annotations

import copy
import math
import warnings
from itertools import combinations, islice

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer, coalition_values
from lumos.methods.agnostic.masking import as_background, resolve_groups, spread
from lumos.methods.base import Chunk, State, record_completeness


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


AUTO_BACKGROUND = 100
"""With ``n_background="auto"`` (the default), a background of more rows is summarised by
this many weighted k-means centres (as shap advises: each background row multiplies the
model rows of every coalition), with a one-line warning saying so."""


class ShapleyExplainer(AgnosticExplainer):
    """Common part: background, groups, base value, efficiency bookkeeping.

    The background (rows shaped like the samples, with optional weights) is given to the
    constructor (``KernelShap(model, background=X_train[:100])``, as shap's explainers
    take it) or per call, ``explain(x, target, background=..., background_weights=None,
    groups=None, feature_names=None)``; a call's background replaces the constructor's.
    """

    needs_background = True
    stochastic = True
    call_options = {"background": None, "background_weights": None, "groups": None, "feature_names": None}

    def __init__(self, model, *, background=None, background_weights=None, n_background: int | str | None = "auto",
                 seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.background = None if background is None else as_background(background, None)
        self.background_weights = background_weights
        if n_background not in ("auto", None, "all"):
            n_background = check_positive_int(n_background, "n_background")
        self.n_background = None if n_background == "all" else n_background
        self.seed = seed

    def params(self):
        bg = None if self.background is None else list(self.background.shape)
        return {**super().params(), "background": bg, "n_background": self.n_background, "seed": self.seed}

    # -- the template ---------------------------------------------------------------
    def prepare(self, x, call, background=None, background_weights=None, groups=None, feature_names=None):
        if background is None:
            background, background_weights = self.background, (background_weights if background_weights is not None
                                                                else self.background_weights)
        bg = as_background(background, x)
        k = AUTO_BACKGROUND if self.n_background == "auto" else self.n_background
        if background_weights is None and k is not None and bg.shape[0] > k:
            if self.n_background == "auto":
                warnings.warn(f"{type(self).__name__}: the background has {bg.shape[0]} rows, so it is summarised by "
                              f"{k} weighted k-means centres (the cost grows with every row; pass n_background=None "
                              "to use all rows, or an int)", stacklevel=4)
            bg, background_weights = kmeans_background(bg, k, seed=call.seed)
            bg = bg.astype(x.dtype)
        w = self._weights(background_weights, bg.shape[0])
        groups, n_groups = resolve_groups(groups, x.shape[1:])
        state = State(call, bg=bg, w=w, groups=groups, n_groups=n_groups, feature_names=feature_names)
        self._design(state)
        state.bg_scores = call.adapter.scores(bg)  # (B, K): the base value E_b f_t(b) of every target
        return state

    def _design(self, state) -> None:
        """Add the method's per-call design (coalitions, orderings) to ``state``."""

    def _width(self, state) -> int:
        """Values held per input at once (coalition values of one block), for the plan."""
        raise NotImplementedError

    def plan(self, x, state):
        # model calls are bounded by the adapter's budget inside coalition_values; the
        # inputs of a chunk share the generated design, so chunks are as large as the
        # memory of its values allows
        per = max(1, self.design_elements // max(1, self._width(state)))
        return list(chunk_slices(x.shape[0], per))

    def attribute_chunk(self, x, targets, state):
        scores, t, f_x = self.scored(x, targets, state)
        base = self._base(t, state)
        phi, extras = self._shapley(x, t, f_x, base, state)
        values = spread(phi, state.groups, state.n_groups)
        extras = {"group_values": phi, "groups": np.broadcast_to(state.groups, x.shape).astype(np.int32), **extras}
        return Chunk(values, scores, t, extras)

    def finish(self, x, result, state):
        record_completeness(result, self._base(result.target, state))
        result.feature_names = state.feature_names

    @staticmethod
    def _base(target, state) -> np.ndarray:
        """``E_b f_t(b)`` (background-weighted) for each row's target."""
        classes = np.unique(target)
        base = np.stack([(state.bg_scores[:, c] * state.w).sum() for c in classes])
        return base[np.searchsorted(classes, target)]

    @staticmethod
    def _weights(weights, b):
        if weights is None:
            return np.full(b, 1.0 / b)
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (b,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"background_weights must be {b} non-negative finite numbers with a positive sum")
        return w / w.sum()

    def _values(self, x, target, masks, state) -> np.ndarray:
        """Coalition values ``(n, m)``. The full coalition is evaluated like every other one
        (Σ_b w_b f(x), equal to f(x) up to rounding), so that a player the model ignores
        has exactly equal values with and without it."""
        return coalition_values(state.adapter, x, target, masks, state.bg, state.groups, state.w)

    def _shapley(self, x, target, f_x, base, state):
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
    n_background : "auto", int or None, default "auto"
        Summarise a larger background to this many weighted k-means centres; ``"auto"``:
        above :data:`AUTO_BACKGROUND` (100) rows, with a warning; None: use every row.
    """

    def __init__(self, model, *, max_features: int = 16, **kwargs):
        super().__init__(model, **kwargs)
        self.max_features = check_positive_int(max_features, "max_features")

    def params(self):
        return {**super().params(), "max_features": self.max_features}

    def _design(self, state):
        d = state.n_groups
        if d > self.max_features:
            raise ValueError(f"ExactShapley would enumerate 2^{d} coalitions ({d} features or groups > "
                             f"max_features={self.max_features}); group features, raise max_features, "
                             "or use KernelShap / SamplingShapley")
        state.masks = all_coalitions(d)

    def _width(self, state):
        return state.masks.shape[0]

    def expansion(self, state):
        return state.masks.shape[0] * state.bg.shape[0]

    def _shapley(self, x, target, f_x, base, state):
        d, masks = state.n_groups, state.masks
        v = self._values(x, target, masks, state)
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


class KernelDesign:
    """The coalitions and kernel weights of a KernelSHAP budget, generated in blocks.

    Sizes are visited from the outside in (1 and d−1, then 2 and d−2, ...); a size pair
    is enumerated completely while its share of the remaining kernel weight times the
    remaining budget covers all its coalitions. The rest of the budget samples sizes
    in proportion to their total kernel weight (d−1)/(s(d−s)), then a uniform subset of
    that size, together with its complement when ``paired``. Enumerated coalitions get
    their exact kernel weight; sampled ones share the remaining total weight equally
    (duplicates within a block are merged, adding their weights), an unbiased estimate of
    the kernel.

    The sizes and the size-or-complement flips of every draw are drawn here, up front;
    :meth:`blocks` then draws the uniform keys block by block from a copy of the generator
    left after them, so every pass yields the same coalitions, and one block holds exactly
    the coalitions of an unblocked draw.
    """

    def __init__(self, d: int, n_samples: int, rng: np.random.Generator, paired: bool = True):
        self.d, self.paired = d, bool(paired)
        self.enumerated: list[tuple[int, float]] = []  # (size, kernel weight), in order
        self.sizes = np.zeros(0, dtype=np.int64)
        self.n_sampled, self.sample_weight, self.rng = 0, 0.0, rng
        if d < 2:
            return
        pair_sizes = list(range(1, d // 2 + 1))  # s with partner d - s
        total = np.array([(d - 1) / (s * (d - s)) * (1 if 2 * s == d else 2) for s in pair_sizes])
        left = n_samples
        k = 0
        while k < len(pair_sizes):
            s = pair_sizes[k]
            count = math.comb(d, s) * (1 if 2 * s == d else 2)
            share = total[k] / total[k:].sum()
            if left * share + 1e-8 < count:
                break
            for size in ({s, d - s}):
                self.enumerated.append((size, kernel_weight(d, np.array([size]))[0]))
            left -= count
            k += 1
        if k < len(pair_sizes) and left > 0:
            draws = left // 2 if paired else left
            draws = max(draws, 1)
            p = total[k:] / total[k:].sum()
            sizes = np.asarray(pair_sizes[k:])[rng.choice(len(p), size=draws, p=p)]
            flip = rng.random(draws) < 0.5  # size s or d - s, then the complement
            self.sizes = np.where(flip, d - sizes, sizes)
            self.n_sampled = draws * (2 if paired else 1)
            self.sample_weight = total[k:].sum() / self.n_sampled
            self.rng = rng  # positioned at the keys; every pass draws from a copy

    @property
    def n_coalitions(self) -> int:
        """Coalitions generated (an upper bound of those evaluated: duplicates are merged)."""
        return sum(math.comb(self.d, s) for s, _ in self.enumerated) + self.n_sampled

    def blocks(self, size: int):
        """Yield ``(masks (m, d) bool, weights (m,))`` blocks of at most ``size`` coalitions."""
        d = self.d
        for s, weight in self.enumerated:
            subsets = combinations(range(d), s)
            while True:
                idx = np.array(list(islice(subsets, size)), dtype=np.int64).reshape(-1, s)
                if idx.shape[0] == 0:
                    break
                out = np.zeros((idx.shape[0], d), dtype=bool)
                out[np.arange(idx.shape[0])[:, None], idx] = True
                yield out, np.full(idx.shape[0], weight)
        if self.n_sampled:
            rng = copy.deepcopy(self.rng)
            per = max(1, size // 2) if self.paired else size
            for sl in chunk_slices(len(self.sizes), per):
                sizes = self.sizes[sl]
                keys = rng.random((len(sizes), d))
                thresh = np.sort(keys, axis=1)[np.arange(len(sizes)), sizes - 1]
                sampled = keys <= thresh[:, None]
                if self.paired:
                    sampled = np.concatenate([sampled, ~sampled])
                uniq, counts = _unique_rows(sampled)
                yield uniq, counts * self.sample_weight


def joined(blocks) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(masks, weights)`` blocks of a design that fits one block, joined into one: one
    stream of model calls for all coalition sizes, not a short last call per size."""
    parts = list(blocks)
    if len(parts) < 2:
        return parts
    return [(np.concatenate([m for m, _ in parts]), np.concatenate([w for _, w in parts]))]


def _unique_rows(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(masks, axis=0, return_counts=True)`` for a bool matrix, sorting the rows
    packed to bits (8x shorter keys, the same lexicographic order)."""
    packed = np.packbits(masks, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return masks[first], counts


def kernel_coalitions(d: int, n_samples: int, rng: np.random.Generator, paired: bool = True):
    """Coalitions and kernel weights for KernelSHAP with a budget of ``n_samples`` (see
    :class:`KernelDesign`), all at once. Returns ``(masks (M, d) bool, weights (M,))``."""
    parts = list(KernelDesign(d, n_samples, rng, paired).blocks(max(n_samples, 1) + 2 * d))
    if not parts:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    return np.concatenate([m for m, _ in parts]), np.concatenate([w for _, w in parts])


class ConstrainedWLS:
    """min Σ_z π(z) (v(z) − base − z·φ)² subject to Σφ = f(x) − base, for every row, from
    the normal equations accumulated over blocks of coalitions.

    The constraint eliminates the last player: φ_d = Δ − Σ_{i<d} φ_i, so the regression is
    on ``z_i − z_d`` with target ``v − base − z_d Δ``. Every block adds ``Σ π D Dᵀ`` (shared
    by all rows) and ``Σ π D y`` (per row); the solution is the least-squares solution of
    those normal equations (the minimum-norm one when the budget leaves the design
    rank-deficient, as for the stacked regression). Efficiency holds exactly whatever the
    blocks.
    """

    def __init__(self, d: int, base: np.ndarray, f_x: np.ndarray):
        self.d, self.base, self.delta = d, base, f_x - base
        self.a = np.zeros((d - 1, d - 1))
        self.b = np.zeros((d - 1, len(base)))

    def add(self, masks: np.ndarray, weights: np.ndarray, v: np.ndarray) -> None:
        """One block: coalitions ``masks`` (m, d), kernel weights (m,), values ``v`` (N, m)."""
        z = masks.astype(np.float64)
        design = z[:, :-1] - z[:, -1:]
        y = v - self.base[:, None] - z[None, :, -1] * self.delta[:, None]  # (N, m)
        dw = design * weights[:, None]
        self.a += dw.T @ design
        self.b += dw.T @ y.T

    def solve(self) -> np.ndarray:
        d = self.d
        if d == 1:
            return self.delta[:, None]
        sol = np.linalg.lstsq(self.a, self.b, rcond=None)[0]  # (d-1, N)
        phi = np.empty((self.b.shape[1], d))
        phi[:, :-1] = sol.T
        phi[:, -1] = self.delta - sol.sum(0)
        return phi


def constrained_wls(masks: np.ndarray, weights: np.ndarray, v: np.ndarray, base: np.ndarray,
                    f_x: np.ndarray) -> np.ndarray:
    """:class:`ConstrainedWLS` for all coalitions at once: ``φ`` (N, d)."""
    wls = ConstrainedWLS(masks.shape[1], base, f_x)
    if masks.shape[1] > 1:
        wls.add(masks, weights, v)
    return wls.solve()


@register("kernel_shap", "kernelshap")
class KernelShap(ShapleyExplainer):
    """KernelSHAP (Lundberg & Lee 2017): Shapley values as the solution of a weighted
    linear regression of coalition values on coalition indicators with the Shapley kernel
    π(z) = (d−1) / (C(d,|z|) |z| (d−|z|)), the empty and full coalitions enforced exactly
    as the efficiency constraint. With a budget of all 2^d − 2 coalitions the result is
    the exact Shapley value.

    The coalitions are generated, evaluated and reduced into the regression's normal
    equations block by block (about ``design_elements / d`` coalitions each), so memory
    does not grow with ``n_samples``.

    *Default design, chosen by the measured error-versus-time curve*
    (``benchmarks/shapley_curve``, 10 seeds, 5 rows, budgets 2^6-2^14): this
    kernel-proportional paired design stays the default. Time to shap KernelExplainer@500's
    error, as a fraction of shap's time: 0.28 / 0.16 / 0.45 (breast-cancer MLP / 16-feature MLP
    / ECG200 CNN) against :class:`~lumos.methods.agnostic.LeverageShap`'s 0.30 / 0.16 / 0.41 —
    within 1.1x of each other either way. Use ``LeverageShap`` for expensive
    models with few players, :class:`SamplingShapley` for cheap models with many.

    Parameters
    ----------
    n_samples : int or "auto", default "auto"
        Coalitions evaluated per input (``"auto"``: 2d + 2048, as shap).
    paired : bool, default True
        Sample each coalition together with its complement (antithetic).
    n_background : "auto", int or None, default "auto"
        Summarise a larger background to this many weighted k-means centres; ``"auto"``:
        above :data:`AUTO_BACKGROUND` (100) rows, with a warning; None: use every row.
    seed : int or None, default 0
        The coalitions are drawn once per call from this seed and shared by all inputs;
        None draws a fresh seed, recorded in the explanation's ``params``.
    """

    def __init__(self, model, *, n_samples="auto", paired: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.n_samples = n_samples if n_samples == "auto" else check_positive_int(n_samples, "n_samples")
        self.paired = bool(paired)

    def params(self):
        return {**super().params(), "n_samples": self.n_samples, "paired": self.paired}

    def _design(self, state):
        d = state.n_groups
        budget = 2 * d + 2048 if self.n_samples == "auto" else self.n_samples
        design = KernelDesign(d, budget, state.call.shared_rng(), self.paired)
        state.block = max(2, self.design_elements // max(d, 1))
        if design.n_coalitions <= state.block:  # one block: generated once, duplicates merged
            state.blocks = joined(design.blocks(state.block))
            state.n_coalitions = sum(m.shape[0] for m, _ in state.blocks)
        else:  # regenerated for each chunk of inputs (the count: duplicates within blocks merged)
            state.blocks = lambda: design.blocks(state.block)
            state.n_coalitions = design.n_coalitions

    def _width(self, state):
        return min(state.block, state.n_coalitions)

    def expansion(self, state):
        return state.n_coalitions * state.bg.shape[0]

    def _shapley(self, x, target, f_x, base, state):
        d = state.n_groups
        if state.n_coalitions == 0:
            return (f_x - base)[:, None] * np.ones((1, d)) / d, {}
        wls = ConstrainedWLS(d, base, f_x)
        count = 0
        for masks, weights in (state.blocks() if callable(state.blocks) else state.blocks):
            wls.add(masks, weights, self._values(x, target, masks, state))
            count += masks.shape[0]
        state.n_coalitions = count  # evaluated per input: the same for every chunk of inputs
        return wls.solve(), {}

    def finish(self, x, result, state):
        super().finish(x, result, state)
        result.extras["n_coalitions"] = np.asarray(state.n_coalitions)


def latin_orderings(d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` orderings of ``d`` players ``(n, d)``, in blocks of ``d`` that are the rows of a random
    Latin square (row k of the cyclic square, (k + j) mod d, with rows, positions and players
    permuted uniformly): each ordering is uniform, and in a full block every player holds
    every position once. A last partial block takes its first rows (a uniform subset)."""
    cyclic = (np.arange(d)[:, None] + np.arange(d)[None, :]) % d
    out = np.empty((n, d), dtype=np.int64)
    for start in range(0, n, d):
        square = rng.permutation(d)[cyclic[rng.permutation(d)][:, rng.permutation(d)]]
        out[start:start + d] = square[:min(d, n - start)]
    return out


@register("sampling_shapley", "shapley_sampling", "permutation_shapley")
class SamplingShapley(ShapleyExplainer):
    """Shapley values as the mean marginal contribution over random orderings of the
    players (Strumbelj & Kononenko 2014), each ordering used with its reverse
    (antithetic pairs). Efficiency holds exactly for every ordering (the contributions
    telescope to f(x) − E f); ``extras["std_error"]`` is the standard error over pairs.

    The orderings are drawn and evaluated in blocks of pairs (about ``design_elements``
    coalition indicators each); the contributions are summed as they come.

    Parameters
    ----------
    n_permutations : int, default 64
        Orderings (rounded up to an even number: each comes with its reverse).
    antithetic : bool, default True
        Pair each ordering with its reverse; False draws every ordering independently
        (shap's PermutationExplainer pairs them too; shapiq's PermutationSamplingSV does not).
    stratified : bool, default False
        Draw the orderings in blocks of d that put every player at every position exactly
        once (the rows of a random Latin square: the cyclic square with its rows, columns
        and symbols permuted uniformly; a last partial block takes random rows): the
        position-balanced "structured random sampling" of van Campen et al. 2018 (Social
        Network Analysis and Mining 8:3), a stratification of each player's contributions
        by coalition size as in Maleki et al. 2013 (arXiv:1306.4265). Every ordering is
        still uniform, so the estimate stays unbiased; a full block removes the variance
        between coalition sizes. With ``antithetic`` the block's reverses follow it.
    """

    def __init__(self, model, *, n_permutations: int = 64, antithetic: bool = True, stratified: bool = False,
                 **kwargs):
        super().__init__(model, **kwargs)
        self.n_permutations = check_positive_int(n_permutations, "n_permutations")
        self.antithetic = bool(antithetic)
        self.stratified = bool(stratified)

    def params(self):
        return {**super().params(), "n_permutations": self.n_permutations, "antithetic": self.antithetic,
                "stratified": self.stratified}

    def _design(self, state):
        d = state.n_groups
        state.half = (self.n_permutations + 1) // 2
        state.pairs = max(1, min(state.half, self.design_elements // (2 * d * (d + 1))))  # pairs per block
        state.rng = state.call.shared_rng()
        if self.stratified:  # all orderings up front (n · d small integers), sliced per block of pairs
            count = state.half if self.antithetic else 2 * state.half
            state.orderings = latin_orderings(d, count, state.rng)

    def _width(self, state):
        return 2 * state.pairs * state.n_groups

    def expansion(self, state):
        return (2 * state.half * (state.n_groups - 1) + 2) * state.bg.shape[0]

    def _shapley(self, x, target, f_x, base, state):
        d, half, n = state.n_groups, state.half, x.shape[0]
        rng = copy.deepcopy(state.rng)  # the same orderings for every chunk of inputs
        total = np.zeros((n, d))
        count, mean, m2 = 0, np.zeros((n, d)), np.zeros((n, d))
        ends = None
        for sl in chunk_slices(half, state.pairs):
            q = sl.stop - sl.start
            if self.stratified and self.antithetic:
                perms = state.orderings[sl]
                perms = np.concatenate([perms, perms[:, ::-1]])
            elif self.stratified:  # consecutive rows of the squares, paired only for the standard error
                perms = state.orderings[2 * sl.start:2 * sl.stop]
            elif self.antithetic:
                perms = np.argsort(rng.random((q, d)), axis=1)
                perms = np.concatenate([perms, perms[:, ::-1]])  # (2q, d): orderings, then their reverses
            else:  # 2q independent orderings, paired only for the standard error
                perms = np.argsort(rng.random((2 * q, d)), axis=1)
            p = perms.shape[0]
            rank = np.argsort(perms, axis=1)  # position of each player in each ordering
            # chain k of ordering p holds the first k players: player i is in it when rank < k
            chains = rank[:, None, :] < np.arange(d + 1)[None, :, None]  # (2q, d+1, d)
            inner = chains[:, 1:d].reshape(-1, d)
            if ends is None:  # the empty and the full coalition, evaluated once
                inner = np.concatenate([inner, np.zeros((1, d), bool), np.ones((1, d), bool)])
            v_all = self._values(x, target, inner, state)
            if ends is None:
                ends, v_all = v_all[:, -2:], v_all[:, :-2]
            v = np.concatenate([np.broadcast_to(ends[:, 0, None, None], (n, p, 1)),
                                v_all.reshape(n, p, d - 1),
                                np.broadcast_to(ends[:, 1, None, None], (n, p, 1))], axis=2)
            step = np.diff(v, axis=2)  # (N, 2q, d): contribution of the k-th player in ordering p
            contrib = np.take_along_axis(step, np.broadcast_to(rank[None], step.shape), axis=2)
            total += contrib.sum(1)
            pair = 0.5 * (contrib[:, :q] + contrib[:, q:])
            pair_mean = pair.mean(1)
            pair_m2 = ((pair - pair_mean[:, None]) ** 2).sum(1)
            if count == 0:
                mean, m2 = pair_mean, pair_m2
            else:  # Chan et al.'s pairwise update of the mean and the sum of squared deviations
                gap, both = pair_mean - mean, count + q
                mean = mean + gap * (q / both)
                m2 = m2 + pair_m2 + gap ** 2 * (count * q / both)
            count += q
        phi = total / (2 * half)
        se = np.sqrt(m2 / (half - 1)) / np.sqrt(half) if half > 1 else np.full_like(phi, np.nan)
        return phi, {"std_error": se}
