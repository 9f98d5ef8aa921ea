"""Leverage SHAP (Musco & Witter, ICLR 2025, arXiv:2410.01917): KernelSHAP's constrained
regression with coalitions sampled in proportion to their statistical leverage, in
complementary pairs, without replacement.

The KernelSHAP regression (Lundberg & Lee 2017)

    φ = argmin_{Σφ = v(N) − v(∅)}  Σ_{0<|z|<d} π(z) (v(z) − v(∅) − zᵀφ)²,
    π(z) = (d−1) / (C(d,|z|) |z| (d−|z|))

is a least-squares problem with one row per coalition. Musco & Witter show that the
leverage score of row z of the (constraint-projected, √π-weighted) design is
``1 / C(d, |z|)`` up to a constant: every coalition *size* carries the same total
leverage, unlike the kernel, which puts most of its weight on the sizes 1 and d−1.
Sampling rows by leverage and reweighting them by 1 / (inclusion probability) gives a
(1+ε) approximation of the regression's optimum with O(d log d + d/ε) rows (their
Theorem 1.1); KernelSHAP's kernel-proportional sampling has no such guarantee.

Design used here (:class:`PairedDesign`)
----------------------------------------
Strata are the coalition sizes, paired: stratum s < d/2 holds the C(d,s) pairs
(z, N∖z) with |z| = s; for even d, stratum d/2 holds its C(d,d/2)/2 pairs. The budget's
pairs are split over the strata by water-filling: stratum j gets ``min(P_j, c·a_j)``
pairs (``P_j`` pairs in it, ``a_j`` its share: its total leverage, or with
``distribution="kernel"`` its total kernel weight), with c such that the counts add up
to the budget. A stratum whose share covers all its pairs is enumerated completely
(the sizes 1 and d−1 first: they hold the fewest coalitions), so "exact enumeration of
the smallest and largest sizes" is the saturated case of the same rule. In every other
stratum a fixed number k_j of distinct pairs is drawn uniformly without replacement
(ranks drawn without replacement, unranked by the combinatorial number system), and
each coalition's kernel weight is multiplied by ``P_j / k_j`` (Horvitz–Thompson), so the
normal equations are unbiased for the full regression's.

*Difference from the paper's Algorithm 1.* The paper includes each pair independently
with probability min(1, c·ℓ) (a Bernoulli sample, random size); here each stratum
receives a fixed count with the same inclusion probability, so the budget is met
exactly. Above 2^62 pairs in a stratum (d > ~64), pairs are drawn with replacement
(the chance of a repeat among k draws is below k² / 2^63).

With a budget of all 2^d − 2 coalitions every stratum is enumerated: the exact Shapley
value. Efficiency Σφ = f(x) − E f(background) holds exactly for every budget (the
constrained solve of :class:`~lumos.methods.agnostic.shapley.ConstrainedWLS`).
"""
from __future__ import annotations

import math

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.registry import register
from lumos.methods.agnostic.shapley import KernelShap, joined, kernel_weight

RANK_LIMIT = 2 ** 62
"""Strata with fewer pairs than this are sampled by rank, exactly without replacement."""


def unrank_combinations(ranks: np.ndarray, n: int, k: int) -> np.ndarray:
    """The k-subsets of ``range(n)`` with colex ranks ``ranks`` (combinatorial number
    system: rank = Σ_i C(c_i, i) for c_1 < … < c_k). Returns ``(len(ranks), k)`` indices."""
    ranks = np.asarray(ranks, dtype=np.int64).copy()
    out = np.empty((ranks.shape[0], k), dtype=np.int64)
    for i in range(k, 0, -1):
        table = np.array([min(math.comb(c, i), RANK_LIMIT) for c in range(n)], dtype=np.int64)
        c = np.searchsorted(table, ranks, side="right") - 1  # the largest c with C(c, i) <= rank
        out[:, i - 1] = c
        ranks -= table[c]
    return out


class PairedDesign:
    """Complementary pairs of coalitions, stratified by size, drawn without replacement.

    Parameters
    ----------
    d : players
    n_samples : budget of coalitions (pairs = n_samples // 2)
    rng : numpy Generator (all draws are made here, up front: every pass over
        :meth:`blocks` yields the same coalitions, whatever the block size)
    distribution : "leverage" (Musco & Witter: equal share per size) or "kernel"
        (KernelSHAP's share, ∝ (d−1)/(s(d−s)) per size)
    folds : independent samples of the non-saturated strata (each with the stratum's
        count); the saturated strata are shared. ``folds=2`` serves the cross-fitted
        regression-adjusted estimator.
    """

    def __init__(self, d: int, n_samples: int, rng: np.random.Generator, distribution: str = "leverage",
                 folds: int = 1):
        if distribution not in ("leverage", "kernel"):
            raise ValueError(f"distribution must be 'leverage' or 'kernel', got {distribution!r}")
        self.d, self.distribution, self.folds = d, distribution, folds
        self.strata: list[dict] = []  # size, pairs, count, ranks per fold
        if d < 2:
            return
        sizes = list(range(1, d // 2 + 1))
        pairs = [math.comb(d, s) // (2 if 2 * s == d else 1) for s in sizes]
        if distribution == "leverage":
            share = np.array([1.0 if 2 * s == d else 2.0 for s in sizes])
        else:
            share = np.array([(1.0 if 2 * s == d else 2.0) / (s * (d - s)) for s in sizes])
        counts = self.allocate(np.array(pairs, dtype=float), share, max(n_samples // 2, 0))
        for s, p, k in zip(sizes, pairs, counts):
            if k <= 0:
                continue
            stratum = {"size": s, "pairs": p, "count": int(k), "saturated": k >= p}
            if not stratum["saturated"]:
                per = max(1, int(k) // folds) if folds > 1 else int(k)
                stratum["count"] = per
                stratum["ranks"] = [self._draw(rng, s, p, per) for _ in range(folds)]
            self.strata.append(stratum)

    @staticmethod
    def allocate(pairs: np.ndarray, share: np.ndarray, budget: int) -> np.ndarray:
        """Water-filling: counts ``min(pairs_j, c·share_j)`` adding up to ``budget`` (integers:
        floors, then the largest remainders)."""
        if budget >= pairs.sum():
            return pairs.astype(np.int64)
        ratio = pairs / share
        order = np.argsort(ratio)
        left, weight = float(budget), float(share.sum())
        target = np.zeros_like(pairs)
        for j in order:  # strata saturate in order of pairs per unit of share
            c = left / weight
            if pairs[j] <= c * share[j]:
                target[j] = pairs[j]
                left -= pairs[j]
                weight -= share[j]
            else:
                break
        free = target == 0
        target[free] = share[free] * (left / share[free].sum()) if free.any() else 0
        counts = np.minimum(np.floor(target + 1e-9), pairs).astype(np.int64)
        rest = int(budget - counts.sum())
        if rest > 0:
            frac = np.where(counts < pairs, target - counts, -np.inf)
            for j in np.argsort(-frac, kind="stable")[:rest]:
                counts[j] += 1
        return counts

    def _draw(self, rng, s: int, pairs: int, k: int):
        if pairs < RANK_LIMIT:
            return ("rank", np.sort(rng.choice(pairs, size=k, replace=False)))
        return ("keys", rng.integers(0, 2 ** 63 - 1, size=k))  # seeds of the key blocks

    @property
    def n_coalitions(self) -> int:
        """Coalitions of one fold (saturated strata included)."""
        return sum(2 * st["pairs"] if st["saturated"] else 2 * st["count"] for st in self.strata)

    def _subsets(self, stratum, fold: int, sl: slice) -> np.ndarray:
        """The ``sl`` pairs' first members as bool masks ``(m, d)``."""
        d, s = self.d, stratum["size"]
        middle = 2 * s == d
        if stratum["saturated"]:
            ranks = np.arange(sl.start, sl.stop, dtype=np.int64)
            kind = "rank"
        else:
            kind, data = stratum["ranks"][fold]
            ranks = data[sl]
        out = np.zeros((len(ranks), d), dtype=bool)
        if kind == "rank":
            if middle:  # pairs of the middle size: the member holding player 0
                idx = unrank_combinations(ranks, d - 1, s - 1) + 1
                out[:, 0] = True
            else:
                idx = unrank_combinations(ranks, d, s)
            out[np.arange(len(ranks))[:, None], idx] = True
        else:  # huge strata: uniform subsets from per-draw seeds (with replacement)
            for row, seed in enumerate(ranks):
                keys = np.random.default_rng(int(seed)).random(d)
                out[row, np.argpartition(keys, s - 1)[:s]] = True
        return out

    def blocks(self, size: int, fold: int = 0, sampled_only: bool = False, saturated_only: bool = False):
        """Yield ``(masks (m, d) bool, scale (m,))`` blocks of at most ``size`` coalitions
        (pairs kept together); ``scale`` = 1 / inclusion probability (``P_j / k_j``)."""
        per = max(1, size // 2)
        for st in self.strata:
            if (sampled_only and st["saturated"]) or (saturated_only and not st["saturated"]):
                continue
            n = st["pairs"] if st["saturated"] else st["count"]
            scale = 1.0 if st["saturated"] else st["pairs"] / st["count"]
            for sl in chunk_slices(n, per):
                first = self._subsets(st, fold, sl)
                masks = np.concatenate([first, ~first])
                yield masks, np.full(masks.shape[0], scale)


@register("leverage_shap", "leverageshap")
class LeverageShap(KernelShap):
    """Leverage SHAP (Musco & Witter, ICLR 2025, arXiv:2410.01917): the KernelSHAP
    regression on coalitions drawn by leverage score (an equal share of the budget per
    coalition size), in complementary pairs, without replacement, each weighted by its
    kernel weight over its inclusion probability; sizes whose share covers all their
    coalitions are enumerated. See the module docstring for the design.

    Parameters
    ----------
    n_samples : int or "auto", default "auto"
        Coalitions per input (``"auto"``: 2d + 2048, as shap); rounded down to pairs.
    distribution : "leverage" or "kernel", default "leverage"
        ``"kernel"`` keeps KernelSHAP's size distribution but samples paired coalitions
        without replacement (with the same enumeration of saturated sizes).
    seed, n_background, background : as :class:`~lumos.methods.agnostic.shapley.KernelShap`.

    Consistency: with ``n_samples >= 2^d − 2`` the result is the exact Shapley value; the
    normal equations are unbiased for the full regression's at every budget.
    """

    def __init__(self, model, *, n_samples="auto", distribution: str = "leverage", **kwargs):
        kwargs.pop("paired", None)  # always paired
        super().__init__(model, n_samples=n_samples, paired=True, **kwargs)
        if distribution not in ("leverage", "kernel"):
            raise ValueError(f"distribution must be 'leverage' or 'kernel', got {distribution!r}")
        self.distribution = distribution

    def params(self):
        return {**super().params(), "distribution": self.distribution}

    def _design(self, state):
        d = state.n_groups
        budget = 2 * d + 2048 if self.n_samples == "auto" else self.n_samples
        design = PairedDesign(d, budget, state.call.shared_rng(), self.distribution)
        state.block = max(2, self.design_elements // max(d, 1))
        weight = {s: kernel_weight(d, np.array([s]))[0] for s in range(1, d)}

        def blocks():
            for masks, scale in design.blocks(state.block):
                yield masks, scale * weight[int(masks[0].sum())]

        if design.n_coalitions <= state.block:
            state.blocks = joined(blocks())
        else:
            state.blocks = blocks
        state.n_coalitions = design.n_coalitions
