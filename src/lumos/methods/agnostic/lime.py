"""LIME (Ribeiro, Singh & Guestrin 2016, arXiv:1602.04938): a weighted linear surrogate.

For each input, samples z are drawn around it, the model's target score f(z) is
recorded, and a weighted ridge regression

    g = argmin Σ_z π(z) (f(z) − b − β·z')² + α ‖β‖²,   π(z) = exp(−D(z)² / w²),  w = 0.75·sqrt(d)

is fitted in closed form (vectorised over inputs) on an interpretable representation z':

- ``sampling="mask"`` (any layout): z' ∈ {0,1}^G switches feature groups on or off,
  z = z' ⊙ x + (1 − z') ⊙ baseline; D is the Euclidean distance from z' to all-ones.
  Groups: each column of a table, contiguous segments of a time series, superpixels of
  an image (scikit-image's SLIC or quickshift when installed, a regular grid otherwise).
  β_g is the effect of switching group g from the baseline to x: for a linear model
  without regularisation, β_i = w_i (x_i − b_i) exactly.
- ``sampling="tabular"`` (as lime's ``LimeTabularExplainer``): features drawn from the
  training statistics, N(mean, std) per column, or, with ``discretize=True``, quartile
  bins drawn with their training frequencies and values from a normal truncated to the
  bin; categorical columns drawn from their training frequencies. z' holds the
  standardised value (continuous) or "same bin/category as x" (discretised, categorical);
  D is the Euclidean distance in z'. These samples do not depend on the input (lime,
  too, draws them from the training distribution, not around x), so one set of
  ``n_samples − 1`` is drawn per call and shared by every row of the batch, each row
  adding itself as the first sample and weighting the set with its own kernel: the
  model sees ``n_samples − 1`` rows instead of ``N · n_samples``, and a row's
  explanation does not depend on the other rows in the batch. Errors of different rows
  are then correlated; ``share_samples=False`` draws an independent set per row, as lime.

``values`` are the coefficients β (spread over each group's elements, divided by the
group size); ``extras`` holds the coefficients per group, the intercept, the weighted
R² of the surrogate (``r2``; a poor fit means the explanation should not be trusted) and
its prediction at x (``local_prediction``). Random numbers come from a generator seeded
with ``(seed, i)`` for input i (mask sampling) or ``(seed, 0)`` for the shared tabular set.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from lumos.core.registry import register
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer
from lumos.methods.agnostic.masking import (as_background, as_inputs, resolve_groups, spread,
                                            superpixel_groups, window_groups)


def weighted_ridge(z: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float):
    """Weighted ridge with an unpenalised intercept for a batch of problems.

    z (N, M, G), y (N, M), w (N, M) -> coef (N, G), intercept (N,), weighted R² (N,).
    The penalty is relative to the raw weights (as scikit-learn's ``Ridge`` with
    ``sample_weight``). Centres by the weighted means, then solves (Zc' W Zc + αI) β = Zc' W yc.
    """
    wn = w / w.sum(1, keepdims=True)
    zm = np.einsum("nm,nmg->ng", wn, z)
    ym = (wn * y).sum(1)
    zc, yc = z - zm[:, None], y - ym[:, None]
    zw = zc * w[..., None]
    a = np.matmul(zw.transpose(0, 2, 1), zc) + alpha * np.eye(z.shape[2])
    b = np.einsum("nmg,nm->ng", zw, yc)
    try:
        coef = np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        coef = np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)])
    intercept = ym - (zm * coef).sum(1)
    resid = yc - np.einsum("nmg,ng->nm", zc, coef)
    ss_tot = (wn * yc ** 2).sum(1)
    r2 = 1 - (wn * resid ** 2).sum(1) / np.where(ss_tot > 0, ss_tot, 1.0)
    return coef, intercept, np.where(ss_tot > 0, r2, 1.0)


def shared_design_ridge(z: np.ndarray, y: np.ndarray, z_self: np.ndarray, y_self: np.ndarray,
                        width: float, alpha: float):
    """``weighted_ridge`` for N problems that share M samples ``z`` (M, G) and differ in
    their targets ``y`` (N, M), their first sample (the input itself, ``z_self`` (N, G) with
    target ``y_self`` (N,) and weight 1) and their kernel weights
    π_n(z) = exp(−‖z − z_self,n‖² / width²).

    Same solution as ``weighted_ridge`` on the stacked (N, M+1, G) problem, from weighted
    sums over the shared samples: Σπ, Σπz, Σπzzᵀ (one (G×M)(M×G) product per row),
    Σπy, Σπzy; nothing of size N×M×G is built.
    """
    n, g = z_self.shape
    dist2 = (z ** 2).sum(1)[None] - 2.0 * z_self @ z.T + (z_self ** 2).sum(1)[:, None]
    w = np.exp(-np.maximum(dist2, 0.0) / width ** 2)  # (N, M)
    wy = w * y
    s0 = w.sum(1) + 1.0
    zm = (w @ z + z_self) / s0[:, None]
    ym = (wy.sum(1) + y_self) / s0
    zt = np.ascontiguousarray(z.T)
    s2 = np.stack([(zt * wi) @ z for wi in w]) + z_self[:, :, None] * z_self[:, None, :]
    a = s2 - s0[:, None, None] * zm[:, :, None] * zm[:, None, :] + alpha * np.eye(g)
    b = wy @ z + z_self * y_self[:, None] - s0[:, None] * zm * ym[:, None]
    try:
        coef = np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        coef = np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)])
    intercept = ym - (zm * coef).sum(1)
    resid = y - coef @ zt - intercept[:, None]
    resid_self = y_self - (z_self * coef).sum(1) - intercept
    ss_res = (w * resid ** 2).sum(1) + resid_self ** 2
    ss_tot = (w * (y - ym[:, None]) ** 2).sum(1) + (y_self - ym) ** 2
    r2 = 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)
    return coef, intercept, np.where(ss_tot > 0, r2, 1.0)


class TabularStatistics:
    """Training statistics for tabular sampling: mean/std per column (std of 0 -> 1),
    quartile bins with per-bin min/max/mean/std (only when ``quartiles``), category
    frequencies."""

    def __init__(self, data: np.ndarray, categorical: tuple[int, ...] = (), quartiles: bool = True):
        self.mean = data.mean(0)
        self.std = data.std(0)
        self.std[self.std == 0] = 1.0
        self.categorical = tuple(categorical)
        self.continuous = np.array([j not in self.categorical for j in range(data.shape[1])])
        self.values, self.freqs = {}, {}
        for j in self.categorical:
            v, c = np.unique(data[:, j], return_counts=True)
            self.values[j], self.freqs[j] = v, c / c.sum()
        if quartiles:
            self._quartiles(data)

    def _quartiles(self, data: np.ndarray) -> None:
        self.edges = np.percentile(data, [25, 50, 75], axis=0).T  # (d, 3)
        d = data.shape[1]
        self.bins = np.stack([np.searchsorted(self.edges[j], data[:, j], side="left") for j in range(d)], 1)
        self.bin_freq = np.zeros((d, 4))
        self.bin_stats = np.zeros((4, d, 4))  # (min, max, mean, std) x d x bin
        lo, hi = data.min(0), data.max(0)
        for j in range(d):
            counts = np.bincount(self.bins[:, j], minlength=4)
            self.bin_freq[j] = counts / counts.sum()
            bounds = np.concatenate([[lo[j]], self.edges[j], [hi[j]]])
            for k in range(4):
                col = data[self.bins[:, j] == k, j]
                self.bin_stats[:, j, k] = (bounds[k], bounds[k + 1], col.mean() if col.size else bounds[k],
                                           (col.std() if col.size else 0.0) + 1e-11)

    def bin_of(self, x: np.ndarray) -> np.ndarray:
        return np.stack([np.searchsorted(self.edges[j], x[..., j], side="left") for j in range(x.shape[-1])], -1)


@register("lime")
class Lime(AgnosticExplainer):
    """LIME with a weighted ridge surrogate.

    Parameters
    ----------
    n_samples : int, default 5000
    kernel_width : float, optional
        w in π = exp(−D²/w²); default 0.75·sqrt(d) with d the number of features/groups.
    alpha : float, default 1.0
        Ridge penalty (lime's default ``Ridge(alpha=1)``); 0 for ordinary weighted least squares.
    sampling : {"auto", "mask", "tabular"}
        ``"auto"``: tabular sampling for (N, d) inputs given ``training_data``, masks otherwise.
    discretize : bool, default False
        Tabular sampling with quartile bins (lime's ``discretize_continuous``).
    categorical_features : sequence of int, optional
        Tabular columns sampled from their training frequencies.
    n_segments : int, default 10 for time series, 50 for images
        Contiguous time segments, or superpixels, when no ``groups`` are given.
    segmentation : {"slic", "quickshift", "grid"}, default "slic"
    share_samples : bool, default True
        Tabular sampling: one perturbation set per call shared by every row (fast; a row's
        explanation does not depend on the batch) or, with False, an independent set per
        row as lime draws it (errors of different rows independent; N times the model rows).
    seed : int, default 0

    ``explain(x, target, baseline=0.0, training_data=None, groups=None, feature_names=None)``;
    ``baseline="mean"`` replaces a switched-off group by its mean in x, channel by channel
    (lime's image default).
    """

    def __init__(self, model, *, n_samples: int = 5000, kernel_width: float | None = None, alpha: float = 1.0,
                 sampling: str = "auto", discretize: bool = False, categorical_features=(),
                 n_segments: int | None = None, segmentation: str = "slic", share_samples: bool = True,
                 seed: int = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
        if kernel_width is not None and not (np.isfinite(kernel_width) and kernel_width > 0):
            raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
        self.kernel_width = kernel_width
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.sampling = check_choice(sampling, "sampling", ("auto", "mask", "tabular"))
        self.discretize = bool(discretize)
        self.categorical_features = tuple(int(c) for c in categorical_features)
        self.n_segments = None if n_segments is None else check_positive_int(n_segments, "n_segments")
        self.segmentation = check_choice(segmentation, "segmentation", ("slic", "quickshift", "grid"))
        self.share_samples = bool(share_samples)
        self.seed = seed

    def params(self):
        return {**super().params(), "n_samples": self.n_samples, "kernel_width": self.kernel_width,
                "alpha": self.alpha, "sampling": self.sampling, "discretize": self.discretize,
                "categorical_features": list(self.categorical_features), "n_segments": self.n_segments,
                "segmentation": self.segmentation, "share_samples": self.share_samples, "seed": self.seed}

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed if self.seed is not None else 0, i])

    def _width(self, d: int) -> float:
        return self.kernel_width if self.kernel_width is not None else 0.75 * math.sqrt(d)

    def _explain(self, x, target, scores, baseline=0.0, training_data=None, groups=None, feature_names=None):
        x = as_inputs(x)
        mode = self.sampling
        if mode == "auto":
            mode = "tabular" if x.ndim == 2 and training_data is not None and groups is None else "mask"
        if mode == "tabular":
            if x.ndim != 2:
                raise ValueError(f"tabular sampling needs (N, d) inputs, got {x.shape}; use sampling='mask'")
            coef, intercept, r2, rep_self = self._tabular(x, target, scores,
                                                          as_background(training_data, x, "training_data"))
            group_maps, n_groups = [np.arange(x.shape[1])] * x.shape[0], x.shape[1]
        else:
            rep, y, w, group_maps, n_groups = self._mask(x, target, baseline, groups)
            coef, intercept, r2 = weighted_ridge(rep, y, w, self.alpha)
            rep_self = rep[:, 0]
        values = np.stack([spread(c, g, n_groups) for c, g in zip(coef, group_maps)])
        extras = {"coefficients": coef, "intercept": intercept, "r2": r2,
                  "local_prediction": intercept + (rep_self * coef).sum(1),
                  "groups": np.stack(group_maps).astype(np.int32)}
        return self._result(values, x, target, scores, feature_names=feature_names, extras=extras)

    # -- masks over feature groups ---------------------------------------------
    def _group_map(self, xi, groups):
        if groups is not None:
            return resolve_groups(groups, xi.shape)
        if xi.ndim == 1:
            return resolve_groups(None, xi.shape)
        if xi.ndim == 2:  # (C, T): contiguous segments across all channels
            return window_groups(xi.shape, (None, math.ceil(xi.shape[1] / (self.n_segments or 10))))
        if xi.ndim == 3:
            return resolve_groups(superpixel_groups(xi, self.segmentation, self.n_segments or 50, seed=self.seed)[0],
                                  xi.shape)
        raise ValueError(f"cannot derive feature groups for samples of shape {xi.shape}; pass groups=")

    def _mask(self, x, target, baseline, groups, offset=0):
        per_mean = isinstance(baseline, str)
        if per_mean and baseline != "mean":
            raise ValueError(f"baseline must be a number, an array or 'mean', got {baseline!r}")
        base = None if per_mean else broadcast_reference(baseline, x).astype(x.dtype, copy=False)
        maps = [self._group_map(xi, groups) for xi in x]
        sizes = {g for _, g in maps}
        if len(sizes) != 1:  # superpixels differ per image: explain one input at a time
            parts = [self._mask(x[i:i + 1], target[i:i + 1], baseline if per_mean else base[i:i + 1],
                                maps[i][0], offset=i) for i in range(x.shape[0])]
            return self._pad(parts)
        n_groups = sizes.pop()
        reps, ys = [], []
        for i, (xi, (gm, _)) in enumerate(zip(x, maps)):
            rng = self._rng(offset + i)
            z = rng.random((self.n_samples, n_groups)) < 0.5
            z[0] = True
            if per_mean:
                # mean of each group in each channel (lime's image default)
                key = gm * xi.shape[0] + (np.arange(xi.shape[0]).reshape((-1,) + (1,) * (xi.ndim - 1))
                                          if xi.ndim > 1 else 0)
                sums = np.bincount(key.ravel(), weights=xi.ravel().astype(np.float64))
                ref = (sums / np.maximum(np.bincount(key.ravel()), 1))[key].astype(x.dtype)
            else:
                ref = base[i]
            ys.append(self.coalition_values(xi[None], target[i:i + 1], z, ref[None], gm)[0])
            reps.append(z.astype(np.float64))
        rep, y = np.stack(reps), np.stack(ys)
        dist2 = (1.0 - rep).sum(2)
        w = np.exp(-dist2 / self._width(n_groups) ** 2)
        return rep, y, w, [m for m, _ in maps], n_groups

    @staticmethod
    def _pad(parts):
        # different numbers of superpixels per image: fit each separately by padding
        # the representation with constant-zero columns (their coefficient is 0 under ridge)
        g = max(p[4] for p in parts)
        rep = np.concatenate([np.pad(p[0], ((0, 0), (0, 0), (0, g - p[4]))) for p in parts])
        return rep, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]), \
            [m for p in parts for m in p[3]], g

    # -- tabular sampling from training statistics -------------------------------
    def _tabular(self, x, target, scores_x, data):
        stats = TabularStatistics(np.asarray(data, dtype=np.float64), self.categorical_features, self.discretize)
        n, d = x.shape
        m = self.n_samples
        y_self = np.asarray(scores_x, dtype=np.float64)[np.arange(n), target]  # f(x), already known
        xf = x.astype(np.float64)
        rep_self = np.where(stats.continuous & (not self.discretize), (xf - stats.mean) / stats.std, 1.0)
        if self.share_samples:
            values, bins = self._draw(stats, self._rng(0), m - 1, d)
            y_shared = self.adapter.scores(values.astype(x.dtype, copy=False))[:, target].T
            if not self.discretize and not stats.categorical:  # one design shared by every row
                z = (values - stats.mean) / stats.std
                coef, intercept, r2 = shared_design_ridge(z, y_shared, rep_self, y_self, self._width(d), self.alpha)
                return coef, intercept, r2, rep_self
        out = []
        chunk = max(1, 2**22 // (m * d))
        for lo in range(0, n, chunk):
            rows = np.arange(lo, min(n, lo + chunk))
            if self.share_samples:
                vals, bns, y_drawn = values[None], None if bins is None else bins[None], y_shared[rows]
            else:  # an independent set per row, seeded by (seed, i)
                drawn = [self._draw(stats, self._rng(i), m - 1, d) for i in rows]
                vals = np.stack([v for v, _ in drawn])
                bns = None if drawn[0][1] is None else np.stack([b for _, b in drawn])
                f = self.adapter.scores(vals.reshape(-1, d).astype(x.dtype, copy=False)).reshape(len(rows), m - 1, -1)
                y_drawn = f[np.arange(len(rows)), :, target[rows]]
            rep = np.empty((len(rows), m, d))
            rep[:, 1:] = (vals - stats.mean) / stats.std
            if self.discretize:
                rep[:, 1:] = bns == stats.bin_of(xf[rows])[:, None]
            for j in stats.categorical:
                rep[:, 1:, j] = vals[..., j] == xf[rows, j, None]
            rep[:, 0] = rep_self[rows]
            y = np.concatenate([y_self[rows, None], y_drawn], 1)
            w = np.exp(-((rep - rep[:, :1]) ** 2).sum(2) / self._width(d) ** 2)
            out.append(weighted_ridge(rep, y, w, self.alpha))
        coef, intercept, r2 = (np.concatenate(parts) for parts in zip(*out))
        return coef, intercept, r2, rep_self

    def _draw(self, stats, rng, m, d):
        """m samples from the training statistics (and their quartile bins when discretising)."""
        bins = None
        if self.discretize:
            bins = np.stack([rng.choice(4, size=m, p=stats.bin_freq[j]) for j in range(d)], 1)
            lo, hi, mu, sd = (s[np.arange(d), bins] for s in stats.bin_stats)
            a, b = ndtr((lo - mu) / sd), ndtr((hi - mu) / sd)
            u = rng.random((m, d))
            values = mu + sd * ndtri(np.clip(a + u * (b - a), 1e-16, 1 - 1e-16))
            values = np.where(hi > lo, values, lo)
        else:
            values = rng.standard_normal((m, d)) * stats.std + stats.mean
        for j in stats.categorical:
            values[:, j] = rng.choice(stats.values[j], size=m, p=stats.freqs[j])
        return values, bins
