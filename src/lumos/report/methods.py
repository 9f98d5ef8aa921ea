"""Run every registered method that applies to a model and a data layout.

Applicability is read from what each registered explainer declares
(:meth:`lumos.methods.base.Explainer.applicability`: gradients need a torch model, the CAM
family a layer over space or time, attention a model returning its weights, each method
its input layouts), so families that land later are picked up automatically. A global
method (``scope = "global"``: permutation importance) runs once on labelled data.

A method that fails is recorded with its error message instead of stopping the report.
Options that speed a method up for a report (fewer LIME / SHAP samples, a background
set, the seed) are passed only when the method declares them
(:func:`lumos.core.registry.options_of`).
"""
from __future__ import annotations

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
    "leverage_shap": {"n_samples": 1024, "n_background": 10},
    "regression_msr": {"n_samples": 1024, "n_background": 10, "surrogate": "linear"},
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
    explainer: object = None  # the configured explainer (the evaluation re-runs LRP to book absorbed relevance)
    call: dict = field(default_factory=dict)  # the call options it was explained with (lumos evaluate re-runs it)

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.error is None

    def explain_fn(self, x: np.ndarray):
        """The method as ``fn(inputs, target, model=...)`` for :func:`lumos.evaluate`: its
        explainer with the call options it ran with, rebound to the model a metric passes (a
        randomised copy); asked about ``x`` and the explained targets (its first explanation)
        on the model itself, it returns the explanation already computed."""
        explainer, call, done = self.explainer, dict(self.call), self.explanations[0]

        def explain(inputs, target, model=None):
            same = model is None or model is explainer.model
            if (same and np.shape(inputs) == x.shape and np.array_equal(inputs, x)
                    and np.array_equal(np.asarray(target).reshape(-1), np.asarray(done.target).reshape(-1))):
                return done.values
            return (explainer if same else explainer.with_model(model)).explain(inputs, target=target, **call)

        explain.__name__ = self.name
        return explain


def family_of(cls: type) -> str:
    parts = cls.__module__.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" else parts[-1]


def is_global(cls: type) -> bool:
    return getattr(cls, "scope", "local") == "global"


def applicability(cls: type, model, layout: str) -> str | None:
    """None when the method applies, else the reason it does not (the class's own declaration)."""
    return cls.applicability(model, layout)


def method_options(cls: type, seed: int, background: np.ndarray | None) -> dict:
    accepted = set(registry.options_of(cls))
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
        config = {n for n, o in registry.options_of(cls).items() if o.where == "config"}
        init = {k: v for k, v in opts.items() if k in config}
        call = {k: v for k, v in opts.items() if k not in init}
        run.call = call
        start = time.perf_counter()
        try:
            explainer = cls(model, **init)
            run.explainer = explainer
            if is_global(cls):
                if y_eval is None:
                    run.skipped = "global method: needs labelled data"
                    continue
                run.global_explanation = explainer.explain(x_eval, y_eval, **call)
            else:
                for r in range(targets.shape[1]):
                    run.explanations.append(explainer.explain(x, target=targets[:, r], **call))
        except Exception as err:  # noqa: BLE001 - a failing method becomes a note in the report
            run.error = _message(err)
            run.explanations = []
        run.seconds = time.perf_counter() - start
    return runs
