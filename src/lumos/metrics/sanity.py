"""Sanity checks for explanations (Adebayo et al. 2018, arXiv 1810.03292).

An explanation that is meant to describe the model must change when the model's
parameters (or the labels it was trained on) are randomised. lumos

- randomises layers on a deep copy (the user's model is never touched): *cascading*
  (top layer first, then progressively down to the input) or *independent* (one layer
  at a time), re-initialising each layer with its own ``reset_parameters`` under a fixed
  seed (or a normal with the layer's weight scale where a layer has none);
- retrains a re-initialised copy on permuted labels with a training function you give
  (*label randomisation*);
- explains each copy with the explainer's ``with_model(copy)``: the same configuration,
  with layers held by name so that a Grad-CAM layer given as a module object is found
  again in the copy (objects without ``with_model`` are deep-copied onto the copy,
  classes are built on it, callables taking ``model=`` receive it);
- compares each randomised explanation with the original per input by Spearman rank
  correlation, SSIM and top-k intersection (of ``|Phi|`` by default, as the sign of
  gradients is not identified);
- gives a verdict per stage that can fail, by comparing each stage with a *reference*
  (``reference="inputs"``, the default) rather than a fixed number.

The reference rule. Two explanation maps of this model for *different* inputs share nothing
but the model's fixed spatial layout (receptive fields, the zero gradient at the borders,
max-pooling's ties on a blank background); their similarity ``b`` is the level that says
"unrelated". On the MNIST LeNet of ``benchmarks/bench_sanity.py`` saliency's maps of two
different digits already have a Spearman correlation of 0.65, so a fixed bar of 0.5 (or the
0 that Adebayo et al. calibrate against in their Appendix B, random masks on ImageNet) is
not the level of "unrelated" there. ``b`` is measured per input on the original
explanations, input ``i`` against input ``i + 1`` (cyclically; the inputs should not be
sorted by class), with the same measure. A stage has *changed* on a measure when its
similarity is not clearly above ``b``: the mean paired difference
``d_i = rho_s(i) - b(i)`` is at most two standard errors, ``mean(d) <= 2 sd(d) / sqrt(N)``,
or less than half of the similarity above ``b`` is left, ``(rho_s - b) / (1 - b) < 1/2``
(the randomised map is no longer closer to the original than to an unrelated map's level;
:func:`retained`). Unchanged therefore means: significantly, and more than halfway, still
the original.
Two measures, as the paper's Figure 4: Spearman of ``|Phi|`` (``"spearman"``) and of the
signed maps (``"spearman_signed"``, the paper's "diverging" correlation). Cascading: the
*top layers* are the first ``top_layers`` stages (default ``ceil(S / 2)``, the classifier
side). The method *passes* when, with the top layers random, it has changed on both
measures and stays changed with every layer random. It *fails* with the reason

- "insensitive to the top layers" when neither measure has changed (Guided Backprop, as
  Adebayo et al. section 3.1: "invariant to higher layer weights"), or only ``|Phi|`` has
  while the signed map keeps its pattern ("sign pattern unchanged": Guided Grad-CAM, whose
  guided-backprop factor keeps its sign while the Grad-CAM factor moves);
- "|Phi| keeps the input's structure" when the signed map has changed but ``|Phi|`` has not
  (Gradient x Input, IG from a zero baseline, LRP: the paper's "visual perception versus
  ranking dichotomy", section 3.1, explained in section 5.2 by the input dominating the
  product; ``x * u`` and ``x * v`` for independent noise ``u, v`` have a ``|.|`` Spearman of
  0.99 on MNIST digits, the same as IG's randomised maps);
- "unchanged with every layer randomised" when the fully randomised stage has not changed.

Independent mode passes when some layer's stage has changed on both measures; label
randomisation when its one stage has. Smooth MPRT (:func:`smooth_mprt`) takes the same rule
on its denoised maps (``b`` from the denoised original maps of different inputs); in its
default bottom-up order (input side first) it passes when the fully randomised stage has
changed on both measures. With ``reference=None`` the earlier fixed rule is used: a stage is
changed when its mean Spearman of ``|Phi|`` is below ``threshold`` (default 0.5).
``SanityResult.reference`` holds ``b`` per measure. (:func:`efficient_mprt` and
:func:`random_logit` give scores, not verdicts.)

SSIM: lumos's own implementation, always (no dependency, same numbers with or without
scikit-image, and it also handles 1-D maps). It follows scikit-image's defaults
(``structural_similarity``: 7-wide uniform window, K1 = 0.01, K2 = 0.03, sample
covariance, border of half a window cropped) on maps min-max scaled to [0, 1]; images are
summed over channels first. The tests check it against scikit-image.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from scipy import ndimage, stats

from lumos.core.validate import check_choice
from lumos.metrics._base import explain_fn, inputs_of, metric, rebinds, scorer

MODES = ("cascading", "independent")
SIMILARITIES = ("spearman", "ssim", "topk")


# -- similarities -------------------------------------------------------------------
def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)


def centred_ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs) of each row's values, minus the row's mean rank."""
    r = stats.rankdata(_flat(a), axis=1)
    r -= r.mean(axis=1, keepdims=True)
    return r


def spearman(a: np.ndarray, b: np.ndarray, ranks_a: np.ndarray | None = None) -> np.ndarray:
    """Spearman rank correlation per row of two batches of maps (average ranks for ties;
    0 when a map is constant). ``ranks_a``: ``centred_ranks(a)`` when already known (a
    randomisation test compares one original with every stage)."""
    return _rank_correlation(centred_ranks(a) if ranks_a is None else ranks_a, centred_ranks(b))


def _rank_correlation(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation per row of two batches of centred ranks (0 for a constant row)."""
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def topk_intersection(a: np.ndarray, b: np.ndarray, k: float | int = 0.1) -> np.ndarray:
    """Fraction of the ``k`` largest features of ``a`` that are among the ``k`` largest of
    ``b`` per row (``k`` < 1: a fraction of the features; ties broken by position)."""
    fa, fb = _flat(a), _flat(b)
    d = fa.shape[1]
    kk = int(np.ceil(k * d)) if k < 1 else int(k)
    if not 1 <= kk <= d:
        raise ValueError(f"k={k} gives {kk} features out of {d}")
    ta = np.argsort(-fa, axis=1, kind="stable")[:, :kk]
    tb = np.argsort(-fb, axis=1, kind="stable")[:, :kk]
    inb = np.zeros_like(fa, dtype=bool)
    np.put_along_axis(inb, tb, True, axis=1)
    return np.take_along_axis(inb, ta, axis=1).mean(axis=1)


def _ssim_one(x: np.ndarray, y: np.ndarray, win: int = 7, k1: float = 0.01, k2: float = 0.03,
              data_range: float = 1.0) -> float:
    size = tuple(min(win, s) for s in x.shape)
    np_ = float(np.prod(size))
    cov_norm = np_ / (np_ - 1) if np_ > 1 else 1.0
    filt = lambda z: ndimage.uniform_filter(z, size=size, mode="reflect")  # noqa: E731
    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    crop = tuple(slice((w - 1) // 2, n - (w - 1) // 2) for w, n in zip(size, x.shape))
    return float(s[crop].mean())


def _unit(m: np.ndarray) -> np.ndarray:
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def ssim(a: np.ndarray, b: np.ndarray, win: int = 7) -> np.ndarray:
    """SSIM per sample of two batches of maps, each min-max scaled to [0, 1]; images
    ``(N, C, H, W)`` are summed over channels first."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim >= 4:
        a, b = a.sum(axis=1), b.sum(axis=1)
    return np.array([_ssim_one(_unit(p), _unit(q), win) for p, q in zip(a, b)])


def similarity(a: np.ndarray, b: np.ndarray, kind: str, topk: float = 0.1) -> np.ndarray:
    check_choice(kind, "similarity", SIMILARITIES)
    if kind == "spearman":
        return spearman(a, b)
    if kind == "ssim":
        return ssim(a, b)
    return topk_intersection(a, b, topk)


# -- randomisation ------------------------------------------------------------------
def parametrised_layers(model: torch.nn.Module) -> list[str]:
    """Names of the modules that own parameters, input side first."""
    return [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]


def randomise_layer(module: torch.nn.Module, seed: int) -> None:
    """Re-initialise one module's own parameters in place, reproducibly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    scale = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.05
                    p.normal_(0.0, scale)


def model_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` to randomise. A TorchScript module's ``deepcopy`` gives
    parameters that are not leaves (``grad_fn=CloneBackward``, torch 2.x), which an
    explainer's guard cannot freeze: they are detached in place, ``requires_grad`` kept."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        if not p.is_leaf:
            wanted = p.requires_grad
            p.detach_()
            p.requires_grad_(wanted)
    return work


ORDERS = ("top_down", "bottom_up", "independent")
LAYER_SEEDS = ("increment", "same")


def _layer_names(model: torch.nn.Module, layers) -> list[str]:
    names = parametrised_layers(model) if layers is None else list(layers)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing or not names:
        raise ValueError(f"unknown layers {missing}; layers with parameters: {parametrised_layers(model)}")
    return names


def randomised_models(model: torch.nn.Module, names: list[str], order: str, seed: int, layer_seeds: str = "increment"):
    """Yield ``(layer name, randomised deep copy)`` per stage.

    ``order``: ``"top_down"`` (cascading from the output side: each stage randomises one more
    layer), ``"bottom_up"`` (cascading from the input side, Hedström et al. 2023's order for
    smooth MPRT) or ``"independent"`` (a fresh copy with one layer randomised per stage).
    ``layer_seeds``: ``"increment"`` re-initialises the ``i``-th randomised layer under
    ``seed + i``; ``"same"`` re-seeds with ``seed`` before every layer, Quantus's convention
    (its ``get_random_layer_generator`` calls ``torch.manual_seed(seed + 1)``, so Quantus's
    ``seed=42`` is lumos's ``seed=43`` with ``layer_seeds="same"``). A yielded copy of a
    cascade is the same object, randomised further at the next stage.
    """
    check_choice(order, "order", ORDERS)
    check_choice(layer_seeds, "layer_seeds", LAYER_SEEDS)
    sequence = list(reversed(names)) if order == "top_down" else list(names)
    work = model_copy(model) if order != "independent" else None
    for i, name in enumerate(sequence):
        if order == "independent":
            work = model_copy(model)
        randomise_layer(dict(work.named_modules())[name], seed + i if layer_seeds == "increment" else seed)
        yield name, work


@dataclass
class SanityResult:
    """Similarity between original and randomised explanations.

    ``stages``: the randomised layer(s) of each stage (cascading: cumulative from the top),
    ``scores[kind]``: (S, N) per stage and input. ``passed``: the verdict of the rule in the
    module docstring, ``reason`` why, ``deciding_stage`` the stage it was read at,
    ``top_layers`` how many stages are the top layers (cascading). ``similarity`` is the
    per-stage mean Spearman correlation, ``changed`` whether each stage has changed: by the
    reference rule (``reference`` holds the unrelated-map level ``b`` per measure, and
    ``meta["changed"]`` the decision per measure and stage), or below ``threshold``.
    """

    method: str
    mode: str
    stages: list[str]
    scores: dict[str, np.ndarray]
    threshold: float
    passed: bool
    deciding_stage: str
    meta: dict = field(default_factory=dict)
    reason: str = ""
    top_layers: int | None = None
    reference: dict | None = None

    @property
    def similarity(self) -> dict[str, float]:
        """Mean Spearman correlation per stage, in stage order."""
        return {s: float(r) for s, r in zip(self.stages, self.mean("spearman"))}

    @property
    def changed(self) -> dict[str, bool]:
        by = self.meta.get("changed")
        if by is not None:
            return {s: bool(all(v[i] for v in by.values())) for i, s in enumerate(self.stages)}
        return {s: bool(r < self.threshold) for s, r in zip(self.stages, self.mean("spearman"))}

    @property
    def verdict(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}: {self.reason}"

    def mean(self, kind: str) -> np.ndarray:
        return self.scores[kind].mean(axis=1)

    def to_records(self) -> list[dict]:
        return [{"method": self.method, "mode": self.mode, "stage": s,
                 **{k: float(v[i].mean()) for k, v in self.scores.items()},
                 "changed": self.changed[s],
                 "top": self.top_layers is not None and i < self.top_layers}
                for i, s in enumerate(self.stages)]


def _top_stages(n: int, top_layers: int | None) -> int:
    """How many of the ``n`` cascade stages are the top layers (default: the upper half)."""
    top = int(np.ceil(n / 2)) if top_layers is None else int(top_layers)
    if not 1 <= top <= n:
        raise ValueError(f"top_layers must be between 1 and the number of stages ({n}), got {top_layers}")
    return top


def _verdict(mode: str, stages: list[str], rho: np.ndarray, threshold: float, top_layers: int | None):
    """``(passed, deciding stage, reason, top)`` by the rule of the module docstring."""
    if mode == "cascading":
        n = len(stages)
        top = _top_stages(n, top_layers)
        t, last = top - 1, n - 1
        shown = ", ".join(f"{s} {r:.2f}" for s, r in zip(stages, rho))
        if rho[t] >= threshold:
            return (False, stages[t], f"insensitive to the top layers: Spearman {rho[t]:.2f} >= {threshold} with the "
                    f"top {top} of {n} layers randomised (through {stages[t]}); per stage: {shown}", top)
        if rho[last] >= threshold:
            return (False, stages[last], f"explanation unchanged (Spearman {rho[last]:.2f} >= {threshold}) with every "
                    f"layer randomised; per stage: {shown}", top)
        return (True, stages[t], f"explanation changes with the top {top} of {n} layers randomised (Spearman "
                f"{rho[t]:.2f} < {threshold} through {stages[t]}) and stays changed; per stage: {shown}", top)
    if mode == "bottom_up":
        ok = bool(rho[-1] < threshold)
        shown = ", ".join(f"{s} {r:.2f}" for s, r in zip(stages, rho))
        return (ok, stages[-1], f"explanation {'changes' if ok else 'unchanged'} (Spearman {rho[-1]:.2f} "
                f"{'<' if ok else '>='} {threshold}) with every layer randomised, input side first; per stage: {shown}",
                None)
    i = int(np.argmin(rho))
    word = "changes" if rho[i] < threshold else "unchanged"
    op = "<" if rho[i] < threshold else ">="
    what = "labels randomised" if mode == "label" else f"layer {stages[i]} randomised (the lowest of {len(stages)})"
    return bool(rho[i] < threshold), stages[i], f"explanation {word} (Spearman {rho[i]:.2f} {op} {threshold}) with {what}", None


REFERENCES = ("inputs", None)


def _check_reference(reference, n_inputs: int | None = None) -> None:
    """``reference`` is one of :data:`REFERENCES`, and the reference rule has 2 inputs or more."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if reference is not None and n_inputs is not None and n_inputs < 2:
        raise ValueError(_TWO_INPUTS)


_TWO_INPUTS = ("the reference rule compares explanations of different inputs: give at least 2 inputs "
               "(or reference=None for the fixed-threshold rule)")


def unrelated_similarity(original: np.ndarray, measures=("spearman", "spearman_signed"),
                         absolute: bool = True) -> dict[str, np.ndarray]:
    """The reference ``b(i)`` of the reference rule: per input ``i``, the similarity between
    its explanation and the explanation of input ``i + 1`` (cyclically) of the same model,
    for each measure (``"spearman"``: of ``|Phi|``; ``"spearman_signed"``: of ``Phi``)."""
    if len(original) < 2:
        raise ValueError(_TWO_INPUTS)
    out = {}
    for k in measures:
        r = centred_ranks(np.abs(original) if k == "spearman" and absolute else original)
        out[k] = _rank_correlation(r, np.roll(r, -1, axis=0))  # the ranks of input i + 1, cyclically
    return out


def retained(stage_scores: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per stage: the share of the original's input-specific similarity that is left,
    ``(rho_s - b) / (1 - b)`` with the means over the inputs (1: unchanged, 0: as unrelated
    as the maps of two different inputs, below 0: less)."""
    b = float(np.mean(ref))
    return (np.asarray(stage_scores, dtype=np.float64).mean(axis=1) - b) / max(1.0 - b, 1e-12)


def changed_vs_reference(stage_scores: np.ndarray, ref: np.ndarray, z: float = 2.0) -> np.ndarray:
    """Per stage (rows of ``stage_scores`` (S, N)): whether the explanation has changed, i.e.
    is not still closer to the original than to an unrelated map: unchanged means
    :func:`retained` ``>= 1/2`` *and* significantly above the reference ``ref`` (N,),
    ``mean(d) > z sd(d) / sqrt(N)`` for the paired ``d = score - ref``."""
    d = np.asarray(stage_scores, dtype=np.float64) - np.asarray(ref, dtype=np.float64)[None]
    n = d.shape[1]
    se = d.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(d))
    return ~((retained(stage_scores, ref) >= 0.5) & (d.mean(axis=1) > z * se))


def _reference_verdict(mode: str, stages: list[str], rho: dict[str, np.ndarray], ref: dict[str, float],
                       changed: dict[str, np.ndarray], top_layers: int | None):
    """``(passed, deciding stage, reason, top)`` by the reference rule of the module docstring;
    ``rho``, ``ref`` and ``changed`` per measure (``"spearman"`` of ``|Phi|``, optionally
    ``"spearman_signed"``)."""
    kinds = list(changed)
    both = np.logical_and.reduce([changed[k] for k in kinds])

    def shown(i):
        return "; ".join(f"{'|Phi|' if k == 'spearman' else 'signed'} {rho[k][i]:.2f} vs {ref[k]:.2f} between inputs"
                         for k in kinds)

    per = ", ".join(f"{s} {rho['spearman'][i]:.2f}" + (f"/{rho['spearman_signed'][i]:.2f}" if len(kinds) > 1 else "")
                    for i, s in enumerate(stages))
    per = f"per stage ({'|Phi|/signed' if len(kinds) > 1 else '|Phi|'} Spearman): {per}"

    def why(i, unchanged, sign_kept):
        """Why stage ``i`` has not changed on both measures: ``unchanged`` when neither has,
        ``sign_kept`` when only ``|Phi|`` has."""
        abs_ok = bool(changed["spearman"][i])
        signed_ok = bool(changed.get("spearman_signed", changed["spearman"])[i])
        if not abs_ok and signed_ok:
            return "|Phi| keeps the input's structure (its sign changed, its magnitude did not)"
        return sign_kept if abs_ok else unchanged

    if mode == "cascading":
        n = len(stages)
        top = _top_stages(n, top_layers)
        t, last = top - 1, n - 1
        where = f"with the top {top} of {n} layers randomised (through {stages[t]})"
        if not both[t]:
            reason = why(t, "insensitive to the top layers",
                         "insensitive to the top layers: the sign pattern is unchanged")
            return False, stages[t], f"{reason} {where}: {shown(t)}; {per}", top
        if not both[last]:
            return False, stages[last], f"explanation unchanged with every layer randomised: {shown(last)}; {per}", top
        return (True, stages[t], f"explanation changes {where} (less than half of its similarity above that of two "
                f"different inputs' maps is left: {shown(t)}) and stays changed; {per}", top)
    if mode == "bottom_up":
        last = len(stages) - 1
        where = f"with every layer randomised, input side first (through {stages[last]})"
        if not both[last]:
            reason = why(last, "explanation unchanged", "sign pattern unchanged (|Phi| changed)")
            return False, stages[last], f"{reason} {where}: {shown(last)}; {per}", None
        return (True, stages[last], f"explanation changes {where} (less than half of its similarity above that of two "
                f"different inputs' maps is left: {shown(last)}); {per}", None)
    i = int(np.argmax(both)) if both.any() else int(np.argmin(rho["spearman"]))
    word = "changes" if both[i] else "unchanged"
    return bool(both[i]), stages[i], f"explanation {word} with layer {stages[i]} randomised: {shown(i)}; {per}", None


def _by_reference(original, scores, absolute):
    """``(measures, reference means, changed per measure)`` of the reference rule."""
    measures = ("spearman", "spearman_signed") if absolute else ("spearman",)
    base = unrelated_similarity(original, measures, absolute)
    return measures, {k: float(v.mean()) for k, v in base.items()}, \
        {k: changed_vs_reference(scores[k], base[k]) for k in measures}


def _stage_scores(model, names, order, seed, layer_seeds, original, explained, similarities, absolute, topk,
                  signed: bool):
    """``(stages, scores)`` of a randomisation test: per stage of :func:`randomised_models`,
    ``explained(copy)`` compared with ``original`` by the similarities (of ``|Phi|`` with
    ``absolute``), and with ``signed`` also by the Spearman correlation of the signed maps
    (``scores["spearman_signed"]``, the reference rule's second measure)."""
    stages, per_stage = [], []
    ranks = centred_ranks(np.abs(original) if absolute else original)  # the original's, once for every stage
    signed_ranks = (ranks if not absolute else centred_ranks(original)) if signed else None
    for name, work in randomised_models(model, names, order, seed, layer_seeds):
        phi = np.asarray(explained(work), dtype=np.float64)
        stage = _compare(original, phi, similarities, absolute, topk, ranks)
        if signed:
            stage["spearman_signed"] = spearman(original, phi, signed_ranks)
        per_stage.append(stage)
        stages.append(name)
    return stages, {k: np.stack([s[k] for s in per_stage]) for k in per_stage[0]}


def _sanity_result(method: str, mode: str, stages: list[str], scores: dict, original: np.ndarray, absolute: bool,
                   threshold: float, top_layers: int | None, reference: str | None, meta: dict | None = None
                   ) -> SanityResult:
    """The :class:`SanityResult` of a randomisation test with its verdict: by the reference
    rule of the module docstring (``reference="inputs"``) or by the fixed ``threshold``
    (``reference=None``). ``mode``: ``"cascading"``, ``"bottom_up"``, ``"independent"`` or
    ``"label"``; ``original``: the unrandomised maps (signed), the reference's source."""
    meta = dict(meta or {})
    if reference is None:
        passed, deciding, reason, top = _verdict(mode, stages, scores["spearman"].mean(axis=1), threshold, top_layers)
        return SanityResult(method, mode, stages, scores, threshold, passed, deciding, meta=meta, reason=reason,
                            top_layers=top)
    measures, ref, changed = _by_reference(original, scores, absolute)
    passed, deciding, reason, top = _reference_verdict(mode, stages, {k: scores[k].mean(axis=1) for k in measures},
                                                       ref, changed, top_layers)
    meta.update(changed={k: v.tolist() for k, v in changed.items()}, rule="reference")
    return SanityResult(method, mode, stages, scores, ref["spearman"], passed, deciding, meta=meta, reason=reason,
                        top_layers=top, reference=ref)


def _compare(original, randomised, similarities, absolute, topk, ranks=None) -> dict[str, np.ndarray]:
    """The similarities of the maps (of ``|Phi|`` with ``absolute``); ``ranks``: the centred
    ranks of the compared original when known (Spearman then ranks only ``randomised``)."""
    if absolute:
        original, randomised = np.abs(original), np.abs(randomised)
    return {k: spearman(original, randomised, ranks) if k == "spearman" and ranks is not None
            else similarity(original, randomised, k, topk) for k in similarities}


def _check_similarities(similarities) -> None:
    for k in similarities:
        check_choice(k, "similarity", SIMILARITIES)
    if "spearman" not in similarities:
        raise ValueError("the verdict is taken on Spearman correlation: keep 'spearman' among the similarities")


def _prepare(explainer, model, inputs, target):
    if not isinstance(model, torch.nn.Module):
        raise TypeError("sanity checks randomise layers, so the model must be a torch.nn.Module")
    if not rebinds(explainer):
        warnings.warn(
            "this explainer cannot be given the randomised model (it is a callable without a 'model' "
            "parameter or an object without a lumos adapter); it is run as given, so it cannot change",
            stacklevel=3,
        )
    run = explain_fn(explainer)
    x = inputs_of(inputs)
    with scorer(model, x[0].size) as adapter:
        t = adapter.targets(target, adapter.scores(x))
    original = np.array(run(model, x, t), dtype=np.float64)
    return run, x, t, original


def _method(explainer) -> str:
    from lumos.metrics._base import method_name

    return method_name(explainer)


def model_randomisation(explainer: Any, model: torch.nn.Module, inputs, target=None, *, mode: str = "cascading",
                        layers: list[str] | None = None, similarities=SIMILARITIES, absolute: bool = True,
                        topk: float = 0.1, threshold: float = 0.5, seed: int = 0,
                        top_layers: int | None = None, layer_seeds: str = "increment",
                        reference: str | None = "inputs") -> SanityResult:
    """Cascading or independent model-parameter randomisation test (Adebayo et al. 2018).

    ``layers``: names of the layers to randomise (default: every module with parameters);
    cascading randomises them from the output side down, cumulatively. The target of each
    input stays the one explained for the original model. ``threshold`` and ``top_layers``
    (the number of cascade stages that are the top layers; None: half of them, rounded up)
    set the verdict, per stage, by the rule of the module docstring. ``reference="inputs"``
    (default): a stage has changed when its Spearman similarity (of ``|Phi|`` and, with
    ``absolute=True``, also of the signed maps, ``scores["spearman_signed"]``) is not
    significantly above the similarity between the original explanations of different inputs;
    a method fails when it has not changed once the top layers are random, or once every
    layer is. ``reference=None``: changed means a mean Spearman below ``threshold``. Returns a
    :class:`SanityResult` with the per-stage similarities, the reference, the verdict and its
    reason. ``layer_seeds``: see :func:`randomised_models`.
    """
    _check_reference(reference)
    check_choice(mode, "mode", MODES)
    _check_similarities(similarities)
    run, x, t, original = _prepare(explainer, model, inputs, target)
    names = _layer_names(model, layers)
    order = "top_down" if mode == "cascading" else mode
    stages, scores = _stage_scores(model, names, order, seed, layer_seeds, original, lambda m: run(m, x, t),
                                   similarities, absolute, topk, signed=reference is not None and absolute)
    return _sanity_result(_method(explainer), mode, stages, scores, original, absolute, threshold, top_layers,
                          reference)


def label_randomisation(explainer: Any, model: torch.nn.Module, inputs, train_fn: Callable, X_train, y_train,
                        target=None, *, similarities=SIMILARITIES, absolute: bool = True, topk: float = 0.1,
                        threshold: float = 0.5, seed: int = 0, reference: str | None = "inputs") -> SanityResult:
    """Data randomisation test (Adebayo et al. 2018): a deep copy of ``model`` with every
    layer re-initialised is trained by ``train_fn(copy, X_train, permuted_y)`` (which
    returns the trained model, or None to mean the copy) on labels permuted with ``seed``;
    its explanations are compared with the original model's. Verdict: the reference rule of
    the module docstring on its one stage (``reference=None``: Spearman below ``threshold``)."""
    _check_reference(reference)
    _check_similarities(similarities)
    run, x, t, original = _prepare(explainer, model, inputs, target)
    work = model_copy(model)
    for i, name in enumerate(parametrised_layers(work)):
        randomise_layer(dict(work.named_modules())[name], seed + i)
    y_perm = np.random.default_rng(seed).permutation(np.asarray(y_train))
    trained = train_fn(work, X_train, y_perm)
    trained = work if trained is None else trained
    phi = np.asarray(run(trained, x, t), dtype=np.float64)
    scores = {k: v[None] for k, v in _compare(original, phi, similarities, absolute, topk).items()}
    if reference is not None and absolute:
        scores["spearman_signed"] = spearman(original, phi)[None]
    result = _sanity_result(_method(explainer), "label", ["label_randomised"], scores, original, absolute, threshold,
                            None, reference)
    result.reason = result.reason.replace("layer label_randomised randomised", "labels randomised")
    return result


@metric("randomisation_spearman", "sanity", higher_is_better=False, needs="explainer")
def randomisation_spearman(explainer: Any, model: torch.nn.Module, inputs, target=None, *, absolute: bool = True,
                           seed: int = 0) -> np.ndarray:
    """Per-input Spearman correlation between the explanation of the model and of a deep
    copy with every layer randomised (the last cascading stage); lower is better."""
    res = model_randomisation(explainer, model, inputs, target, mode="cascading", similarities=("spearman",),
                              absolute=absolute, seed=seed)
    return res.scores["spearman"][-1]


# -- MPRT variants ------------------------------------------------------------------
def _targets(model, x: np.ndarray, target) -> np.ndarray:
    with scorer(model, x[0].size) as adapter:
        return np.asarray(adapter.targets(target, adapter.scores(x)))


def _second_moment(a: np.ndarray) -> np.ndarray:
    """Each map divided by the square root of its mean square (Binder et al. 2022); zero maps kept."""
    flat = a.reshape(len(a), -1)
    rms = np.sqrt((flat ** 2).mean(axis=1))
    return (flat / np.where(rms > 0, rms, 1.0)[:, None]).reshape(a.shape)


def _max_abs(a: np.ndarray) -> np.ndarray:
    """Each map divided by its largest absolute value; zero maps kept."""
    flat = a.reshape(len(a), -1)
    top = np.abs(flat).max(axis=1)
    return (flat / np.where(top > 0, top, 1.0)[:, None]).reshape(a.shape)


def smooth_mprt_noise(x: np.ndarray, n_samples: int, seed: int = 0, row_offset: int = 0) -> np.ndarray:
    """The standard normal draws of :func:`smooth_mprt`, shape ``(n_samples - 1, N, ...)``:
    row ``i`` draws from ``numpy.random.default_rng([seed, row_offset + i])``, so a row's
    noise does not depend on the batch it is in."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    z = np.empty((n_samples - 1, *x.shape), dtype=np.float64)
    for i in range(len(x)):
        z[:, i] = np.random.default_rng([int(seed), int(row_offset) + i]).standard_normal((n_samples - 1, *x.shape[1:]))
    return z


def _smoothed(run, model, x: np.ndarray, t: np.ndarray, z: np.ndarray, std: np.ndarray, chunk: int) -> np.ndarray:
    """``(1/K) sum_k Phi(x + eps_k)`` with ``eps_k = z_k * std`` for ``k < K - 1`` and ``eps = 0`` last
    (Quantus's order: the average of SmoothGrad-style copies that includes the input itself)."""
    k = z.shape[0] + 1
    out = []
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk].astype(np.float64)
        c = len(xs)
        noisy = np.concatenate([xs[None] + z[:, s:s + chunk] * std[s:s + chunk][None], xs[None]])
        rows = noisy.reshape(k * c, *x.shape[1:]).astype(x.dtype)
        tc = t[s:s + chunk]
        a = np.asarray(run(model, rows, np.concatenate([tc] * k)), dtype=np.float64)
        a = a.reshape(k, c, *a.shape[1:])
        acc = a[0] / k
        for j in range(1, k):
            acc = acc + a[j] / k
        out.append(acc)
    return np.concatenate(out)


def smooth_mprt(explainer: Any, model: torch.nn.Module, inputs, target=None, *, n_samples: int = 50,
                noise_magnitude: float = 0.1, order: str = "bottom_up", layers: list[str] | None = None,
                similarities=("spearman",), absolute: bool = True, normalise: bool = True, topk: float = 0.1,
                threshold: float = 0.5, seed: int = 0, noise_seed: int | None = None,
                layer_seeds: str = "increment", top_layers: int | None = None, chunk: int | None = None,
                reference: str | None = "inputs") -> SanityResult:
    """Smooth model parameter randomisation test (Hedström et al. 2023, arXiv:2401.06465;
    extended in arXiv:2405.02383).

    MPRT on *denoised* explanations: for the model and for each randomised copy, each input's
    explanation is the average ``(1/K) sum_k Phi(x + eps_k)`` over ``K = n_samples`` copies
    with Gaussian noise ``eps_k ~ N(0, sigma^2)``, ``sigma = noise_magnitude * (max x - min x)``
    per input, the last copy noise-free; the same noise draws (:func:`smooth_mprt_noise`,
    seeded by ``noise_seed``, default ``seed``) serve every model, so the comparison is not
    blurred by different noise. Each average is divided by the root of its mean square
    (``normalise``; Binder et al. 2022's normalisation, Quantus's default here) and its
    absolute value taken (``absolute``), then compared with the original's by the
    ``similarities`` (Spearman by default). ``order``: ``"bottom_up"`` (the paper's choice,
    Quantus's default), ``"top_down"`` (cascading as Adebayo et al.) or ``"independent"``;
    see :func:`randomised_models`. ``chunk``: inputs per explainer call (each gives ``K`` rows;
    the results do not depend on it). Lower similarity is better.

    The verdict is the reference rule of the module docstring, the one of
    :func:`model_randomisation` (``reference="inputs"``, the default): the reference ``b`` is the
    similarity between the denoised original maps of *different* inputs (input ``i`` against
    ``i + 1``), and a stage has changed when less than half of its similarity above ``b`` is
    left or it is not significantly above ``b`` (paired, two standard errors), on the Spearman
    correlation of ``|Phi|`` and, with ``absolute``, also of the signed denoised maps
    (``scores["spearman_signed"]``). Bottom-up (the default): the method passes when the fully
    randomised stage has changed on both measures, and fails with "explanation unchanged" or
    "|Phi| keeps the input's structure" otherwise; top-down: the cascading rule (changed once
    the ``top_layers`` are random, and staying changed); independent: some layer's stage has
    changed. ``reference=None``: the fixed rule, a mean Spearman below ``threshold``. The
    reference needs at least 2 inputs.

    Equal to ``quantus.SmoothMPRT`` (0.6.0) given the same noise and layer seeding
    (``layer_seeds="same"``, ``seed`` = Quantus's + 1). Quantus normalises over the whole
    batch, lumos each map: the same Spearman scores, as rank correlation ignores the scale.
    """
    check_choice(order, "order", ORDERS)
    _check_similarities(similarities)
    run = explain_fn(explainer)
    x = inputs_of(inputs)
    _check_reference(reference, len(x))
    t = _targets(model, x, target)
    names = _layer_names(model, layers)
    z = smooth_mprt_noise(x, n_samples, seed if noise_seed is None else noise_seed)
    axes = tuple(range(1, x.ndim))
    std = noise_magnitude * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True)).astype(np.float64)
    chunk = max(1, 4096 // n_samples) if chunk is None else int(chunk)

    def explained(m):
        a = _smoothed(run, m, x, t, z, std, chunk)
        return _second_moment(a) if normalise else a

    original = explained(model)
    stages, scores = _stage_scores(model, names, order, seed, layer_seeds, original, explained, similarities,
                                   absolute, topk, signed=reference is not None and absolute)
    return _sanity_result(_method(explainer), "cascading" if order == "top_down" else order, stages, scores,
                          original, absolute, threshold, top_layers, reference,
                          meta={"metric": "smooth_mprt", "n_samples": n_samples, "noise_magnitude": noise_magnitude})


def discrete_entropy(a: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """Shannon entropy (nats) of each map's histogram of ``n_bins`` equal-width bins between its
    minimum and maximum (``numpy.histogram``), per row of ``a`` (N, ...)."""
    flat = np.asarray(a).reshape(len(a), -1)
    return np.array([stats.entropy(np.histogram(row, bins=n_bins)[0]) for row in flat])


@dataclass
class EfficientMPRTResult:
    """``scores``: the relative rise in explanation complexity per input,
    ``(H(Phi_random) - H(Phi)) / H(Phi)``; ``entropy_original``, ``entropy_randomised``:
    the two discrete entropies. Higher is better; 0 means randomising the model did not
    change the explanation's complexity."""

    method: str
    scores: np.ndarray
    entropy_original: np.ndarray
    entropy_randomised: np.ndarray
    n_bins: int

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.scores))


@metric("efficient_mprt", "sanity", higher_is_better=True, needs="explainer")
def efficient_mprt(explainer: Any, model: torch.nn.Module, inputs, target=None, *, n_bins: int = 100,
                   layers: list[str] | None = None, absolute: bool = False, normalise: bool = False,
                   seed: int = 0, layer_seeds: str = "increment") -> EfficientMPRTResult:
    """Efficient model parameter randomisation test (Hedström et al. 2023, arXiv:2401.06465 /
    2405.02383): instead of layer-by-layer similarities, the relative rise in complexity of
    each explanation from the model to a copy with every layer randomised,
    ``(H(Phi_random) - H(Phi)) / H(Phi)``, ``H`` the discrete entropy of the map's histogram
    in ``n_bins`` equal bins (:func:`discrete_entropy`). A faithful explanation of a random
    model is noise, so its entropy rises: higher is better; a model-independent explanation
    scores 0. An input whose original map is constant (``H = 0``) scores NaN.

    Layers are randomised input side first (as Quantus's default ``bottom_up``; the fully
    randomised copy does not depend on the order with ``layer_seeds="same"``). Equal to
    ``quantus.EfficientMPRT`` (0.6.0: ``n_bins`` given or its default 100, ``skip_layers=True``)
    with ``layer_seeds="same"`` and ``seed`` = Quantus's + 1. ``normalise`` divides each
    map by its root mean square, ``absolute`` takes ``|Phi|`` (both off, Quantus's defaults).
    """
    run = explain_fn(explainer)
    x = inputs_of(inputs)
    t = _targets(model, x, target)
    names = _layer_names(model, layers)
    work = None
    for _, work in randomised_models(model, names, "bottom_up", seed, layer_seeds):
        pass

    def explained(m):
        a = np.asarray(run(m, x, t), dtype=np.float64)
        a = _second_moment(a) if normalise else a
        return np.abs(a) if absolute else a

    h0 = discrete_entropy(explained(model), n_bins)
    h1 = discrete_entropy(explained(work), n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(h0 > 0, (h1 - h0) / np.where(h0 > 0, h0, 1.0), np.nan)
    return EfficientMPRTResult(_method(explainer), gain, h0, h1, int(n_bins))


@dataclass
class RandomLogitResult:
    """``scores``: similarity per input between the explanation of the explained class and of
    ``off_target`` (a random other class); lower is better."""

    method: str
    scores: np.ndarray
    target: np.ndarray
    off_target: np.ndarray
    similarity: str


def off_class_targets(target: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """A random class other than ``target[i]`` per input: index ``j`` drawn uniformly from the
    ``n_classes - 1`` others (``numpy.random.RandomState(seed).randint(0, n_classes - 1, N)``,
    Quantus's draw when its batch holds every input), then skipping ``target[i]``."""
    target = np.asarray(target).reshape(-1)
    if n_classes < 2:
        raise ValueError(f"random logit needs at least 2 classes, the model has {n_classes}")
    j = np.random.RandomState(seed).randint(0, n_classes - 1, len(target))
    return j + (j >= target)


def _ssim_joint(a: np.ndarray, b: np.ndarray, win: int = 7) -> np.ndarray:
    """SSIM of the flattened maps per row, data range = the range of the pair (Quantus's ``ssim``)."""
    fa, fb = _flat(a), _flat(b)
    out = []
    for p, q in zip(fa, fb):
        both = np.concatenate([p, q])
        out.append(_ssim_one(p, q, win, data_range=float(abs(both.max() - both.min()))))
    return np.array(out)


@metric("random_logit", "sanity", higher_is_better=False, needs="explainer")
def random_logit(explainer: Any, model: torch.nn.Module, inputs, target=None, *, similarity: str = "ssim",
                 off_target=None, normalise: bool = True, absolute: bool = False, seed: int = 0
                 ) -> RandomLogitResult:
    """Random logit test (Sixt et al. 2020, "When explanations lie", arXiv:1912.09818): the
    similarity between the explanation of the explained class and of a random other class
    (``off_target``; default :func:`off_class_targets` with ``seed``). An explanation that
    looks the same whatever class it explains does not explain the class: lower is better.

    ``similarity``: ``"ssim"`` (Quantus's default: the flattened maps, a 7-wide window, the
    data range of the pair) or ``"spearman"``. ``normalise`` divides each map by its largest
    absolute value, ``absolute`` takes ``|Phi|`` (Quantus's defaults: normalise, signed).

    Equal to ``quantus.RandomLogit`` (0.6.0) with ``batch_size=1`` given the same off classes:
    Quantus divides by the largest value of its whole batch (so its scores depend on which
    inputs share a batch) and re-seeds its draw per batch; lumos scales each map by its own.
    """
    check_choice(similarity, "similarity", ("ssim", "spearman"))
    run = explain_fn(explainer)
    x = inputs_of(inputs)
    with scorer(model, x[0].size) as adapter:
        scores = adapter.scores(x)
        t = np.asarray(adapter.targets(target, scores)).reshape(-1)
    off = off_class_targets(t, scores.shape[1], seed) if off_target is None else np.asarray(off_target).reshape(-1)
    if len(off) != len(x) or np.any(off == t):
        raise ValueError("off_target must give one class per input, each different from the explained one")

    def explained(cls):
        a = np.asarray(run(model, x, cls), dtype=np.float64)
        a = _max_abs(a) if normalise else a
        return np.abs(a) if absolute else a

    a, b = explained(t), explained(off)
    s = _ssim_joint(a, b) if similarity == "ssim" else spearman(a, b)
    return RandomLogitResult(_method(explainer), s, t, off, similarity)
