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
- gives a verdict per stage that can fail. Each stage ``s`` has the mean Spearman
  correlation ``rho_s`` over the inputs and is *changed* when ``rho_s < threshold``
  (default 0.5). Cascading mode tells Adebayo et al.'s story: the *top layers* are the
  first ``top_layers`` stages of the cascade (default ``ceil(S / 2)`` of ``S`` stages: the
  classifier and the last conv layers, those that decide the class). The method passes when
  the explanation has changed once the top layers are random (stage ``top_layers``) and
  stays changed when every layer is (the last stage); it fails, with the reason "insensitive
  to the top layers", when ``rho`` is still at or above ``threshold`` with the top layers
  random, even if it drops once the layers near the input are randomised too (Guided
  Backprop, whose map is rebuilt by the lower layers' ReLU pattern and the input's edges: on
  a digits CNN its ``rho`` is 0.77, 0.69 while the classifier and the last conv are random,
  0.50 and 0.30 below, while saliency's is 0.29, 0.21). Independent mode: the lowest ``rho``
  over the layers must be below ``threshold``; label randomisation: its one stage. An
  explainer that ignores the model (an edge detector of the input) keeps ``rho = 1`` and
  fails. Multiplying by the input (Gradient x Input, IG from a zero baseline) keeps the
  input's zero pixels at zero in every model, so ``|Phi|``'s ranks stay correlated on
  sparse inputs (0.9 on 8x8 digits): the test then fails these too, as the paper reports.

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


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per row of two batches of maps (average ranks for ties;
    0 when a map is constant)."""
    ra = stats.rankdata(_flat(a), axis=1)
    rb = stats.rankdata(_flat(b), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
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


@dataclass
class SanityResult:
    """Similarity between original and randomised explanations.

    ``stages``: the randomised layer(s) of each stage (cascading: cumulative from the top),
    ``scores[kind]``: (S, N) per stage and input. ``passed``: the verdict of the rule in the
    module docstring, ``reason`` why, ``deciding_stage`` the stage it was read at,
    ``top_layers`` how many stages are the top layers (cascading). ``similarity`` is the
    per-stage mean Spearman correlation, ``changed`` whether each stage is below ``threshold``.
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

    @property
    def similarity(self) -> dict[str, float]:
        """Mean Spearman correlation per stage, in stage order."""
        return {s: float(r) for s, r in zip(self.stages, self.mean("spearman"))}

    @property
    def changed(self) -> dict[str, bool]:
        return {s: bool(r < self.threshold) for s, r in zip(self.stages, self.mean("spearman"))}

    @property
    def verdict(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}: {self.reason}"

    def mean(self, kind: str) -> np.ndarray:
        return self.scores[kind].mean(axis=1)

    def to_records(self) -> list[dict]:
        return [{"method": self.method, "mode": self.mode, "stage": s,
                 **{k: float(v[i].mean()) for k, v in self.scores.items()},
                 "changed": bool(self.scores["spearman"][i].mean() < self.threshold),
                 "top": self.top_layers is not None and i < self.top_layers}
                for i, s in enumerate(self.stages)]


def _verdict(mode: str, stages: list[str], rho: np.ndarray, threshold: float, top_layers: int | None):
    """``(passed, deciding stage, reason, top)`` by the rule of the module docstring."""
    if mode == "cascading":
        n = len(stages)
        top = int(np.ceil(n / 2)) if top_layers is None else int(top_layers)
        if not 1 <= top <= n:
            raise ValueError(f"top_layers must be between 1 and the number of stages ({n}), got {top_layers}")
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
    i = int(np.argmin(rho))
    word = "changes" if rho[i] < threshold else "unchanged"
    op = "<" if rho[i] < threshold else ">="
    what = "labels randomised" if mode == "label" else f"layer {stages[i]} randomised (the lowest of {len(stages)})"
    return bool(rho[i] < threshold), stages[i], f"explanation {word} (Spearman {rho[i]:.2f} {op} {threshold}) with {what}", None


def _compare(original, randomised, similarities, absolute, topk) -> dict[str, np.ndarray]:
    if absolute:
        original, randomised = np.abs(original), np.abs(randomised)
    return {k: similarity(original, randomised, k, topk) for k in similarities}


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
                        top_layers: int | None = None) -> SanityResult:
    """Cascading or independent model-parameter randomisation test (Adebayo et al. 2018).

    ``layers``: names of the layers to randomise (default: every module with parameters);
    cascading randomises them from the output side down, cumulatively. The target of each
    input stays the one explained for the original model. ``threshold`` and ``top_layers``
    (the number of cascade stages that are the top layers; None: half of them, rounded up)
    set the verdict, per stage, by the rule of the module docstring: in cascading mode a
    method fails when its mean Spearman correlation is still ``>= threshold`` once the top
    layers are random, or once every layer is. Returns a :class:`SanityResult` with the
    per-stage similarities, the verdict and its reason.
    """
    check_choice(mode, "mode", MODES)
    _check_similarities(similarities)
    run, x, t, original = _prepare(explainer, model, inputs, target)
    names = parametrised_layers(model) if layers is None else list(layers)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing or not names:
        raise ValueError(f"unknown layers {missing}; layers with parameters: {parametrised_layers(model)}")
    stages, per_stage = [], []
    if mode == "cascading":
        work = copy.deepcopy(model)
        work_modules = dict(work.named_modules())
        for i, name in enumerate(reversed(names)):
            randomise_layer(work_modules[name], seed + i)
            per_stage.append(_compare(original, run(work, x, t), similarities, absolute, topk))
            stages.append(name)
    else:
        for i, name in enumerate(names):
            work = copy.deepcopy(model)
            randomise_layer(dict(work.named_modules())[name], seed + i)
            per_stage.append(_compare(original, run(work, x, t), similarities, absolute, topk))
            stages.append(name)
    scores = {k: np.stack([s[k] for s in per_stage]) for k in similarities}
    rho = scores["spearman"].mean(axis=1)
    passed, deciding, reason, top = _verdict(mode, stages, rho, threshold, top_layers)
    return SanityResult(_method(explainer), mode, stages, scores, threshold, passed, deciding, reason=reason,
                        top_layers=top)


def label_randomisation(explainer: Any, model: torch.nn.Module, inputs, train_fn: Callable, X_train, y_train,
                        target=None, *, similarities=SIMILARITIES, absolute: bool = True, topk: float = 0.1,
                        threshold: float = 0.5, seed: int = 0) -> SanityResult:
    """Data randomisation test (Adebayo et al. 2018): a deep copy of ``model`` with every
    layer re-initialised is trained by ``train_fn(copy, X_train, permuted_y)`` (which
    returns the trained model, or None to mean the copy) on labels permuted with ``seed``;
    its explanations are compared with the original model's."""
    _check_similarities(similarities)
    run, x, t, original = _prepare(explainer, model, inputs, target)
    work = copy.deepcopy(model)
    for i, name in enumerate(parametrised_layers(work)):
        randomise_layer(dict(work.named_modules())[name], seed + i)
    y_perm = np.random.default_rng(seed).permutation(np.asarray(y_train))
    trained = train_fn(work, X_train, y_perm)
    trained = work if trained is None else trained
    scores = {k: v[None] for k, v in _compare(original, run(trained, x, t), similarities, absolute, topk).items()}
    passed, deciding, reason, _ = _verdict("label", ["label_randomised"], scores["spearman"].mean(axis=1), threshold,
                                           None)
    return SanityResult(_method(explainer), "label", ["label_randomised"], scores, threshold, passed, deciding,
                        reason=reason)


@metric("randomisation_spearman", "sanity", higher_is_better=False, needs="explainer")
def randomisation_spearman(explainer: Any, model: torch.nn.Module, inputs, target=None, *, absolute: bool = True,
                           seed: int = 0) -> np.ndarray:
    """Per-input Spearman correlation between the explanation of the model and of a deep
    copy with every layer randomised (the last cascading stage); lower is better."""
    res = model_randomisation(explainer, model, inputs, target, mode="cascading", similarities=("spearman",),
                              absolute=absolute, seed=seed)
    return res.scores["spearman"][-1]
