"""Run every registered method that applies to a model and a data layout.

Applicability is decided from the registry, not from a hard-coded list, so families that
land later (relevance, CAM, model-agnostic) are picked up automatically:

- a method with ``needs_gradients`` needs a torch model;
- CAM-like methods (name containing ``cam``) need a convolutional or recurrent layer and
  inputs with a spatial or temporal axis;
- attention methods need a module whose class name contains ``Attention``;
- a global method (``scope = "global"``: permutation importance) runs once on labelled data.

A method that fails is recorded with its error message instead of stopping the report.
Options that speed a method up for a report (fewer LIME / SHAP samples, a background
set, the seed) are passed only when the method's signature names them.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

from lumos.core import registry
from lumos.core.explanation import Explanation

#: Per-method settings that keep a report fast; applied only where the method accepts them.
FAST_OPTIONS: dict[str, dict] = {
    "integrated_gradients": {"n_steps": 32},
    "smoothgrad": {"n_samples": 32},
    "lime": {"n_samples": 1000},
    # Shapley values: a k-means summary of 10 background rows (weighted; Lundberg & Lee's
    # shap.kmeans), which costs a tenth of the 50-row background the report is given.
    "kernel_shap": {"n_samples": 1024, "n_background": 10},
    "sampling_shapley": {"n_permutations": 16, "n_background": 10},
    "exact_shapley": {"n_background": 10},
    "permutation_importance": {"n_repeats": 5},
}


@dataclass
class MethodRun:
    """The outcome of one method: its explanations per explained class rank, or why not."""

    name: str
    family: str
    explanations: list[Explanation] = field(default_factory=list)
    global_explanation: Explanation | None = None
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.error is None


def family_of(cls: type) -> str:
    parts = cls.__module__.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" else parts[-1]


def _explicit_params(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        for attr in ("__init__", "explain", "_explain"):
            fn = vars(klass).get(attr)
            if fn is None:
                continue
            for p in inspect.signature(fn).parameters.values():
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    names.add(p.name)
    return names - {"self", "model", "inputs", "x", "target", "scores"}


def is_global(cls: type) -> bool:
    return getattr(cls, "scope", "local") == "global"


def _has_positions(model) -> bool:
    import torch

    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.RNNBase)
    return any(isinstance(m, kinds) for m in model.modules())


def applicability(cls: type, model, layout: str) -> str | None:
    """None when the method applies, else the reason it does not."""
    import torch

    name = getattr(cls, "name", cls.__name__).lower()
    is_torch = isinstance(model, torch.nn.Module)
    if getattr(cls, "needs_gradients", False) and not is_torch:
        return "needs a torch model (gradients)"
    if "cam" in name:
        if not is_torch:
            return "needs a torch model with a convolutional layer"
        if layout == "tabular" or not _has_positions(model):
            return "needs a convolutional or recurrent layer over space or time"
    if "attention" in name and not (is_torch and any("attention" in type(m).__name__.lower() for m in model.modules())):
        return "needs a model with an attention layer"
    return None


def method_options(cls: type, seed: int, background: np.ndarray | None) -> dict:
    accepted = _explicit_params(cls)
    wanted = dict(FAST_OPTIONS.get(getattr(cls, "name", ""), {}))
    wanted.update(seed=seed, random_state=seed)
    if background is not None:
        wanted["background"] = background
    return {k: v for k, v in wanted.items() if k in accepted}


#: Exact Shapley enumerates 2^players coalitions: images and series are split into at most
#: this many patches / time segments (tables keep their features and are refused above 16).
EXACT_SHAPLEY_PLAYERS = 8


def player_groups(sample_shape: tuple[int, ...], layout: str, max_players: int = EXACT_SHAPLEY_PLAYERS):
    """``(group map, description)`` for exact Shapley on one sample, or ``(None, None)``
    when every element can be its own player (or the layout is tabular)."""
    from lumos.methods.agnostic import window_groups

    size = int(np.prod(sample_shape))
    if size <= max_players or layout == "tabular":
        return None, None
    if layout == "image":  # (C, H, W): 2 rows x 4 columns of patches over all channels
        c, h, w = sample_shape
        window = (c, -(-h // 2), -(-w // (max_players // 2)))
        groups, n = window_groups(sample_shape, window)
        return groups, f"{n} patches of {window[1]}x{window[2]} pixels"
    c, t = sample_shape  # time series: consecutive segments over all channels
    window = (c, -(-t // max_players))
    groups, n = window_groups(sample_shape, window)
    return groups, f"{n} time segments of {window[1]} samples"


def _message(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:300]


def run_methods(model, x: np.ndarray, targets: np.ndarray, layout: str, *, names=None, y_eval=None,
                x_eval=None, background=None, seed: int = 0, progress: bool = False,
                options: dict | None = None) -> list[MethodRun]:
    """Explain ``x`` for each column of ``targets`` (N, R) with every applicable method.

    ``names`` restricts the methods (registry names or aliases). Global methods run once
    on ``(x_eval, y_eval)``. ``options`` maps a method name to extra options.
    """
    import lumos.methods  # noqa: F401  (registers the families)

    available = registry.available()
    if names is None:
        chosen = list(available)
    else:
        chosen = []
        for n in names:
            key = registry.get(n).name  # raises a clear ValueError on an unknown name
            if key not in chosen:
                chosen.append(key)
    runs: list[MethodRun] = []
    iterator = chosen
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(chosen, desc="explaining", unit="method")
    for name in iterator:
        cls = available[name]
        run = MethodRun(name=name, family=family_of(cls))
        runs.append(run)
        reason = applicability(cls, model, layout)
        if reason:
            run.skipped = reason
            continue
        opts = {**method_options(cls, seed, background), **(options or {}).get(name, {})}
        run.options = {k: v for k, v in opts.items() if k not in ("background", "groups")}
        if name == "exact_shapley" and "groups" not in opts:
            groups, players = player_groups(x.shape[1:], layout)
            if groups is not None:
                opts["groups"] = groups
                run.options["players"] = players
        init = {k: v for k, v in opts.items() if k in _init_only(cls)}
        call = {k: v for k, v in opts.items() if k not in init}
        start = time.perf_counter()
        try:
            explainer = cls(model, **init)
            if is_global(cls):
                if y_eval is None:
                    run.skipped = "global method: needs labelled data"
                    continue
                run.global_explanation = explainer.explain(x_eval, y=y_eval, **call)
            else:
                for r in range(targets.shape[1]):
                    run.explanations.append(explainer.explain(x, target=targets[:, r], **call))
        except Exception as err:  # noqa: BLE001 - a failing method becomes a note in the report
            run.error = _message(err)
            run.explanations = []
        run.seconds = time.perf_counter() - start
    return runs


def _init_only(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        fn = vars(klass).get("__init__")
        if fn is not None:
            names |= {p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names - {"self", "model"}
