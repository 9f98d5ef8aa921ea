"""Axioms beyond :mod:`lumos.metrics.axioms`: non-sensitivity, and completeness with LRP's
absorbed relevance reported apart from the error.

- :func:`non_sensitivity` (Nguyen & Martinez 2020, arXiv:2007.07584): the size of the
  symmetric difference between the features with (near-)zero attribution and the
  features the model is insensitive to.
- :func:`relevance_budget` / :func:`completeness_residual` / :func:`absorbed_relevance`: where the
  output went. For a method with a baseline (IG, DeepLIFT, Shapley values) completeness is
  ``sum Phi = f(x) - f(x')`` and the gap is the error. LRP starts from ``R_out = f_t(x)``
  and its rules *by design* keep part of it: a layer ``z = W a + b`` with LRP-eps
  passes ``sum_k R_k (z_k - b_k) / (z_k + eps sign z_k)`` down, so the bias share and the
  stabiliser share ``sum_k R_k (b_k + eps sign z_k) / (z_k + eps sign z_k)`` stay at the
  layer (Montavon et al. 2019, "Layer-wise relevance propagation: an overview", sec. 10.2).
  :func:`relevance_budget` measures at every module that carries a rule ``sum R_out -
  sum R_in`` (the *absorbed* relevance, per layer) during the explainer's own backward
  pass, so ``f_t(x) = sum_i R_i + absorbed + error`` where ``error`` is relevance lost or
  created outside the rules (operations written in ``forward`` that relevance crosses as a
  gradient, numerical error). A Deep Taylor (z+, no bias) model absorbs ~0; LRP-eps on a
  network with biases absorbs a large share and its error is still ~1e-7.
"""
from __future__ import annotations

import copy
import types
from dataclasses import dataclass, field

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.hooks import BackwardRule
from lumos.core.validate import broadcast_reference
from lumos.metrics._base import (_bound_model, _explain, explain_fn, inputs_of, inputs_per_call, metric, rebind,
                                 region_map, scorer)
from lumos.metrics.complexity import flat_values, prepare


# -- non-sensitivity ------------------------------------------------------------------------
@metric("non_sensitivity", "axioms", higher_is_better=False)
def non_sensitivity(model, inputs, attributions, target=None, *, eps: float = 1e-5, region=1, baseline=0.0,
                    normalise: bool = True, absolute: bool = True, output: str = "softmax",
                    batch_size: int | None = None) -> np.ndarray:
    """Non-sensitivity per input (Nguyen & Martinez 2020), lower is better (0: the
    features with zero attribution are exactly those the model ignores).

    ``NS = |{r : a_r < eps} XOR {r : |f_t(x) - f_t(x with region r = baseline)| < eps}|``
    over the regions ``r`` of :func:`~lumos.metrics.region_map` (``region=1``: one feature,
    all channels of a pixel together), with ``a = |Phi| / max |Phi|`` per input
    (``normalise``, ``absolute``; a region is attribution-free when all its features are
    below ``eps``) and ``f`` the ``output`` scores (softmax, Quantus's default). All regions
    of a chunk of inputs are scored in one batched model call; a region that already
    holds the baseline is not scored (its copy is the input: the difference is 0). Equal to Quantus 0.6
    ``NonSensitivity(eps, features_in_step=1, perturb_baseline=baseline)`` on single-channel
    inputs (Quantus removes one array element at a time) with per-input normalisation."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x = inputs_of(inputs, attributions)
    n = x.shape[0]
    a = flat_values(attributions)
    if a.shape[1] != x[0].size:
        a = np.broadcast_to(a.reshape((n,) + (1,) * (x.ndim - 1 - (a.ndim - 1)) + a.shape[1:]), (n, x[0].size))
    a = prepare(np.asarray(a, dtype=np.float64).reshape(n, -1), normalise, absolute)
    regions = region_map(x.shape[1:], region).reshape(-1)
    n_regions = int(regions.max()) + 1
    order = np.argsort(regions, kind="stable")
    starts = np.searchsorted(regions[order], np.arange(n_regions))
    quiet_attr = np.maximum.reduceat(a[:, order], starts, axis=1) < eps  # (n, R)
    ref = broadcast_reference(baseline, x).reshape(n, -1)
    x2 = x.reshape(n, -1)
    member = regions[None, :] == np.arange(n_regions)[:, None]  # (R, d)
    with scorer(model, x[0].size, output, batch_size) as adapter:
        f0 = adapter.scores(x)
        t = adapter.targets(target, f0)
        f0 = f0[np.arange(n), t]
        # a region that already holds the baseline leaves the input as it is: its copy scores
        # f(x) exactly and is not sent to the model (most pixels of a dark-background image)
        idx = (regions[None, :] + n_regions * np.arange(n)[:, None]).ravel()
        same = np.bincount(idx, weights=(x2 == ref).ravel(), minlength=n * n_regions).reshape(n, n_regions)
        held = same == np.bincount(regions, minlength=n_regions)[None]  # (n, R)
        rows, regs = np.nonzero(~held)
        diff = np.zeros((n, n_regions))
        for part in chunk_slices(rows.size, adapter.batch_size):
            r, g = rows[part], regs[part]
            pert = np.where(member[g], ref[r], x2[r]).reshape(-1, *x.shape[1:])
            scores = adapter.scores(pert.astype(x.dtype, copy=False))
            diff[r, g] = np.abs(scores[np.arange(r.size), t[r]] - f0[r])
        return ((diff < eps) ^ quiet_attr).sum(axis=1).astype(np.float64)


# -- completeness and absorbed relevance -------------------------------------------------------
@dataclass
class RelevanceBudget:
    """Where ``f_t(x)`` went, per input: ``f_x - base = total + absorbed + error``.

    ``total`` is ``sum_i Phi_i``; ``base`` the method's baseline score (``f(x')``; 0 for
    LRP, which starts from the logit); ``absorbed`` the relevance kept by LRP rules
    (biases, stabilisers, zero denominators; 0 for other methods), ``by_layer`` its split
    per module name; ``error`` the rest. ``scores`` is ``|error|`` (relative to
    ``|f_t(x)|`` when asked), the per-input value of :func:`completeness_residual`."""

    f_x: np.ndarray
    base: np.ndarray
    total: np.ndarray
    absorbed: np.ndarray
    error: np.ndarray
    scores: np.ndarray
    by_layer: dict = field(default_factory=dict)


class _Ledger(BackwardRule):
    """A rule that runs ``inner`` and books ``sum R_out - sum R_in`` per row."""

    def __init__(self, inner: BackwardRule, name: str, book: dict):
        self.inner, self.name, self.book = inner, name, book

    def backward(self, module, inputs, output, grad_output):
        grads = self.inner.backward(module, inputs, output, grad_output)
        r_in = sum(g.reshape(g.shape[0], -1).sum(1, dtype=g.dtype) for g in grads if g is not None)
        kept = grad_output.reshape(grad_output.shape[0], -1).sum(1) - r_in
        self.book.setdefault(self.name, []).append(kept.detach().double().cpu().numpy())
        return grads

    def __repr__(self):
        return f"Ledger({self.inner!r})"


def _is_lrp(explainer) -> bool:
    from lumos.methods.relevance.lrp import LRP

    return isinstance(explainer, LRP)


def _with_ledger(explainer, book: dict):
    """A shallow copy of an LRP explainer whose rules book what they absorb."""
    obj = copy.copy(explainer)
    original = type(explainer).prepare

    def prepare_with_ledger(self, x, call, **options):
        state = original(self, x, call, **options)
        names = {m: n for n, m in call.model.named_modules()}
        state.rules = {m: (None if r is None else _Ledger(r, names.get(m, type(m).__name__), book))
                       for m, r in state.rules.items()}
        return state

    obj.prepare = types.MethodType(prepare_with_ledger, obj)
    return obj


def _explainer_object(explainer, model):
    """The lumos explainer that :func:`~lumos.metrics._base.explain_fn` would run on
    ``model`` (None for a plain callable, which records no completeness)."""
    if isinstance(explainer, type):
        return explainer(model)
    if hasattr(explainer, "explain"):
        bound = _bound_model(explainer)
        if bound is not None and model is not None and model is not bound:
            return rebind(explainer, bound, model)
        return explainer
    return None


def relevance_budget(explainer, model, inputs, target=None, *, relative: bool = True,
                     batch_size: int | None = None) -> RelevanceBudget:
    """Explain ``inputs`` and split ``f_t(x) - base`` into the attributions' sum, the
    relevance absorbed by LRP's rules and the error (see the module docstring). One
    explainer call per chunk of about ``batch_size`` inputs. Explainers that record no
    completeness (no ``delta``: saliency, a plain callable) get NaN errors."""
    x = inputs_of(inputs)
    n = x.shape[0]
    with scorer(model, x[0].size, "raw", batch_size) as adapter:
        scores0 = adapter.scores(x)
        t = adapter.targets(target, scores0)
    f_x = scores0[np.arange(n), t].astype(np.float64)
    obj = _explainer_object(explainer, model)
    lrp = obj is not None and _is_lrp(obj)
    book: dict = {}
    if lrp:
        obj = _with_ledger(obj, book)
    base, total, delta = (np.full(n, np.nan) for _ in range(3))
    for sl in chunk_slices(n, inputs_per_call(batch_size, x[0].size, 1)):
        if obj is None:
            total[sl] = flat_values(explain_fn(explainer)(model, x[sl], t[sl])).sum(axis=1)
            continue
        exp = _explain(obj, x[sl], t[sl], sl.start)
        total[sl] = flat_values(exp.values).sum(axis=1)
        if getattr(exp, "delta", None) is not None:
            delta[sl] = np.asarray(exp.delta, dtype=np.float64).reshape(-1)
            base[sl] = np.broadcast_to(np.asarray(exp.base_value, dtype=np.float64).reshape(-1), (sl.stop - sl.start,))
    by_layer = {name: np.concatenate(parts) for name, parts in book.items()}
    absorbed = np.sum(list(by_layer.values()), axis=0) if by_layer else np.zeros(n)
    # delta = total - (f_x - base), hence error = f_x - base - total - absorbed = -delta - absorbed
    error = -delta - absorbed
    scores = np.abs(error) / np.maximum(np.abs(f_x), 1e-12) if relative else np.abs(error)
    return RelevanceBudget(f_x, base, total, absorbed, error, scores, by_layer)


@metric("completeness_residual", "axioms", higher_is_better=False, needs="explainer")
def completeness_residual(explainer, model, inputs, target=None, *, relative: bool = True,
                 batch_size: int | None = None) -> RelevanceBudget:
    """Completeness error per input with LRP's absorbed relevance taken out, lower is better
    (completeness: Sundararajan et al. 2017; LRP conservation: Bach et al. 2015, Montavon et al. 2019).

    ``|f_t(x) - base - sum_i Phi_i - absorbed|`` (divided by ``|f_t(x)|`` when
    ``relative``), where ``base`` is the method's baseline score (IG, DeepLIFT, Shapley:
    ``f(x')``; LRP: 0) and ``absorbed`` the relevance LRP's rules keep at biases and
    stabilisers (0 for other methods), reported by :func:`absorbed_relevance`. Returns the
    :class:`RelevanceBudget` (``.scores`` per input). For non-LRP methods the signed error
    is ``-delta``, and ``f_t(x) - base`` is what Quantus 0.6 ``Completeness`` compares
    ``sum Phi`` with (``perturb_baseline`` = the method's baseline, ``normalise=False``);
    Quantus returns only whether they are exactly equal."""
    return relevance_budget(explainer, model, inputs, target, relative=relative, batch_size=batch_size)


@metric("absorbed_relevance", "axioms", higher_is_better=None, needs="explainer")
def absorbed_relevance(explainer, model, inputs, target=None, *, relative: bool = True,
                       batch_size: int | None = None) -> np.ndarray:
    """Relevance kept by LRP's rules (Montavon et al. 2019: biases, epsilon stabilisers, zero denominators) per
    input, divided by ``|f_t(x)|`` when ``relative``: the part of ``f_t(x) - sum R`` that
    LRP-eps removes by design. 0 for methods without rules; neither direction is better
    (it describes the rules, it is no error). Beside :func:`completeness_residual` it explains an
    LRP-eps gap of, say, 0.86 next to 1e-5 for Deep Taylor."""
    b = relevance_budget(explainer, model, inputs, target, relative=False, batch_size=batch_size)
    return b.absorbed / np.maximum(np.abs(b.f_x), 1e-12) if relative else b.absorbed
