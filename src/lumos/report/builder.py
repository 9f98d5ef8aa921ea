"""Assemble the report: pick inputs, explain them with every applicable method for their
top classes, evaluate the explanations, render figures, write one HTML file."""
from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lumos.core.model import ModelAdapter
from lumos.metrics.evaluate import RANDOM_ROW, EvaluationTable, evaluate, random_order, score_row
from lumos.report import evaluation as ev
from lumos.plot import panels as figures
from lumos.report import series
from lumos.report.html import render_page
from lumos.report.methods import MethodRun, run_methods


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("lumos-xai")
    except Exception:  # noqa: BLE001
        import lumos

        return getattr(lumos, "__version__", "unknown")


@dataclass
class Report:
    """A built report: the HTML text plus what went into it."""

    html: str
    runs: list[MethodRun]
    evaluation: EvaluationTable
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            path = path.with_suffix(".html")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html, encoding="utf-8")
        return path


def infer_layout(x: np.ndarray) -> str:
    return {2: "tabular", 3: "timeseries", 4: "image"}.get(x.ndim) or _bad_layout(x)


def _bad_layout(x):
    raise ValueError(f"inputs must be (N, d), (N, C, T) or (N, C, H, W); got shape {x.shape}")


def ranked_classes(probs: np.ndarray, class_names, n_classes: int):
    """``(class names, n_ranks, targets)``: the names checked against the model's outputs and
    the top ``n_ranks`` classes of each input by probability, ``(N, n_ranks)``."""
    k = probs.shape[1]
    class_names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for a model with {k} outputs")
    n_ranks = max(1, min(n_classes, k))
    return class_names, n_ranks, np.argsort(-probs, axis=1, kind="stable")[:, :n_ranks]


def pick_samples(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices covering the classes in turn (one per class first), reproducibly."""
    rng = np.random.default_rng(seed)
    pools = {c: list(rng.permutation(np.where(y == c)[0])) for c in np.unique(y)}
    out: list[int] = []
    while len(out) < min(n, len(y)):
        for c in list(pools):
            if pools[c] and len(out) < n:
                out.append(int(pools[c].pop()))
    return np.array(sorted(out))


def time_window_importance(sample_shape, times=None, sfreq=None, n_windows: int = 16) -> dict:
    """Permutation importance options for series: ``n_windows`` time windows across all
    channels (one value per sample is noisy and hard to read), named by their time span."""
    from lumos.methods.agnostic import group_names, window_groups

    n_t = sample_shape[-1]
    width = -(-n_t // min(n_windows, n_t))
    groups, n = window_groups(sample_shape, (None, width))
    axis, unit = figures.time_axis(n_t, times, sfreq)
    spans = [(axis[k * width], axis[min(n_t, (k + 1) * width) - 1]) for k in range(n)]
    if "ms" in unit:
        names = [f"{a:.0f} to {b:.0f} ms" for a, b in spans]
    elif "(s)" in unit:
        names = [f"{a:.3g} to {b:.3g} s" for a, b in spans]
    else:  # sample indices: "t 0–5", as permutation importance names windows itself
        names = group_names(groups, n)
    return {"groups": groups, "feature_names": names}


def _bar(items, progress: bool, label: str, unit: str):
    """``items`` under a tqdm bar when ``progress`` (shown after a second, removed when done)."""
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=label, unit=unit, leave=False)


AOPC_SHARE = 0.2
"""Share of the regions the report's region perturbation replaces (its AOPC's L): Samek et al.
2017 take L = 100 regions of 9 x 9 pixels, about a sixth of a 224 x 224 image; lumos.evaluate's
default L = min(100, regions) replaces every region of a small input (an 8 x 8 digit), where the
curves of every order, random included, end in the same noise and AOPC barely separates them
(digits CNN: best method 0.71, random order 0.58 at L = 64; 0.38 against 0.09-0.20 at L = 13)."""


def report_metrics(baseline, sample_shape=None) -> dict:
    """The report's metrics as :func:`lumos.evaluate` takes them (label -> (metric, options)):
    region perturbation (MoRF AOPC, single features, uniform noise) over the first
    :data:`AOPC_SHARE` of the regions of a ``sample_shape`` input (at most Samek et al.'s 100),
    Petsiuk et al.'s deletion (to the report's ``baseline``) and insertion AUC in 20 steps, and
    the Gini sparseness."""
    from lumos.metrics import deletion, insertion, region_perturbation, sparseness
    from lumos.metrics._base import region_map

    base = baseline if baseline is not None and np.ndim(baseline) > 0 else float(baseline or 0.0)
    aopc = {}
    if sample_shape is not None:
        regions = int(region_map(tuple(sample_shape)).max()) + 1
        aopc = {"n_steps": max(1, min(100, int(np.ceil(AOPC_SHARE * regions))))}
    return {"region_perturbation": (region_perturbation, aopc),
            "deletion": (deletion, {"n_steps": 20, "baseline": base}),
            "insertion": (insertion, {"n_steps": 20}),
            "sparseness": (sparseness, {})}


def completeness_rows(run, model, x, notes: list) -> EvaluationTable:
    """Completeness of a method that records it (``delta``): ``completeness_residual`` (absolute:
    ``|f(x) - base - sum Phi - absorbed|``) and, for LRP, ``absorbed_relevance``, the relevance its
    rules keep at biases and stabilisers by design (Bach et al. 2015), so that an LRP gap of 0.86
    beside Deep Taylor's 1e-5 comes with its reason. Other methods absorb nothing: their residual
    is ``|delta|`` of the explanation held (no second explain pass)."""
    from lumos.metrics.conservation import absorbed_relevance, completeness_residual, relevance_budget

    exp = run.explanations[0]
    options = {"completeness_residual": {"relative": False}}
    if run.family == "relevance" and run.explainer is not None:
        try:
            budget = relevance_budget(run.explainer, model, x, exp.target, relative=False)
        except (ValueError, TypeError, RuntimeError) as err:
            notes.append(f"{run.name}: absorbed relevance not booked ({err})")
        else:
            options["absorbed_relevance"] = {"relative": False}
            rows = [score_row(run.name, "completeness_residual", completeness_residual, budget.scores),
                    score_row(run.name, "absorbed_relevance", absorbed_relevance, budget.absorbed)]
            return EvaluationTable(rows, {"metric_functions": {"completeness_residual": completeness_residual,
                                                               "absorbed_relevance": absorbed_relevance},
                                          "metric_options": options})
    residual = np.abs(np.asarray(exp.delta, dtype=np.float64).reshape(-1))
    return EvaluationTable([score_row(run.name, "completeness_residual", completeness_residual, residual)],
                           {"metric_functions": {"completeness_residual": completeness_residual},
                            "metric_options": options})


def mass_rows(name: str, values, masks, n: int) -> EvaluationTable:
    """Relevance mass accuracy (Arras et al. 2022) over the inputs that hold ground truth."""
    from lumos.metrics import relevance_mass_accuracy

    has = masks.reshape(n, -1).any(1)
    if not has.any():
        return EvaluationTable()
    row = score_row(name, "relevance_mass_accuracy", relevance_mass_accuracy,
                    relevance_mass_accuracy(np.asarray(values)[has], masks[has]))
    return EvaluationTable([row], {"metric_functions": {"relevance_mass_accuracy": relevance_mass_accuracy},
                                   "metric_options": {"relevance_mass_accuracy": {}}})


def _evaluate(model, x, runs, baseline, seed, masks, notes, progress: bool = False) -> EvaluationTable:
    """The report's evaluation as one :class:`~lumos.metrics.evaluate.EvaluationTable` (the type
    ``lumos.evaluate`` and ``lumos evaluate`` give, with their metric names and mean ± s.e.):
    :func:`report_metrics` run by :func:`lumos.evaluate` on each method's explanation of the
    predicted class (not recomputed), its completeness and relevance mass, and the random
    order as the reference row last; ``attrs["methods"]`` holds each method's family and time."""
    metrics = report_metrics(baseline, np.shape(x)[1:])
    tables, info, target = [], {}, None
    for run in _bar(list(runs) + [None], progress, "evaluating", "method"):  # None: the random reference
        if run is None:
            if target is not None:
                tables.append(evaluate(model, x, target, {RANDOM_ROW: random_order(seed)}, metrics, progress=False))
                if masks is not None and masks.any():
                    tables.append(mass_rows(RANDOM_ROW, random_order(seed)(x, target), masks, len(x)))
                info[RANDOM_ROW] = {"family": "", "seconds": None}
            continue
        if not run.ok or not run.explanations:
            continue
        exp = run.explanations[0]
        target = exp.target
        info[run.name] = {"family": run.family, "seconds": run.seconds}
        values = ev.relevance_map(exp.values, x.shape)  # CAM maps (N, 1, h, w) broadcast over the channels
        held = lambda inputs, t, _v=values: _v  # noqa: E731 - the explanation already computed, for x only
        try:
            tables.append(evaluate(model, x, target, {run.name: held}, metrics, progress=False))
        except ValueError as err:
            notes.append(f"{run.name}: not evaluated ({err})")
            tables.append(EvaluationTable.failure(run.name, metrics, str(err)))
        if exp.delta is not None:
            tables.append(completeness_rows(run, model, x, notes))
        if masks is not None and masks.any():
            tables.append(mass_rows(run.name, values, masks, len(x)))
    table = EvaluationTable.concat(tables)
    table.attrs["methods"] = info
    return table


def _deletion_figure(table: EvaluationTable) -> str | None:
    """The mean deletion curves of the table's ``deletion`` metric, each method named with its
    deletion AUC as the table gives it (the 5 lowest in colour), the random order dashed."""
    held = table.attrs.get("curves", {}).get("deletion", {})
    if not held:
        return None
    curves = {("random" if name == RANDOM_ROW else name): np.asarray(curve)[None] for name, (_, curve) in held.items()}
    auc = {r["method"]: r["mean"] for r in table if r["metric"] == "deletion"}
    return figures.render_curves(curves, "deletion curves (mean over the inputs, predicted class)",
                                 scores={k: auc[k] for k in held if k != RANDOM_ROW}, score_name="deletion AUC",
                                 higher_is_better=False)


def build_report(model, x, *, y=None, layout: str | None = None, class_names=None, feature_names=None,
                 times=None, sfreq=None, methods=None, n_classes: int = 3, x_eval=None, y_eval=None,
                 background=None, baseline=0.0, masks=None, title: str = "lumos report",
                 model_info: dict | None = None, data_info: dict | None = None, raw_values=None, seed: int = 0,
                 progress: bool = False, options: dict | None = None, modality: str | None = "auto") -> Report:
    """Explain ``x`` (a handful of inputs) with every applicable registered method and
    build the self-contained HTML report.

    Parameters
    ----------
    model : torch.nn.Module or callable
    x : array (N, ...)
        The inputs shown in the report (keep N small: 4–10).
    y : array (N,), optional
        Their true labels.
    n_classes : int
        How many classes per input can be selected (the top predicted ones).
    x_eval, y_eval : arrays, optional
        Labelled data for global methods (permutation importance).
    background : array, optional
        Reference rows for Shapley-type methods (passed where a method accepts it).
    masks : bool array like x, optional
        Ground-truth evidence; adds the relevance-mass column.
    raw_values : array like x, optional
        Tables: the unstandardised feature values, shown beside the bars.
    modality : {"auto", "ecg", "eeg", "series"}
        Series: ECG printouts over each method's relevance (:func:`lumos.plot.plot_ecg`),
        EEG channel x time maps (:func:`lumos.plot.eeg_heatmap`) or the generic line panels;
        ``"auto"`` reads the channel names (:func:`lumos.report.series.infer_modality`).
    """
    start = time.perf_counter()
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    layout = layout or infer_layout(x)
    modality = series.resolve_modality(modality, layout, feature_names)
    adapter = ModelAdapter(model, output="softmax")
    probs = adapter.scores(x)
    class_names, n_ranks, targets = ranked_classes(probs, class_names, n_classes)
    pfi = None
    if layout == "tabular" and feature_names is not None:  # images: pixels named by position
        pfi = {"feature_names": list(feature_names)}
    elif layout == "timeseries" and x.ndim == 3:
        pfi = time_window_importance(x.shape[1:], times, sfreq)
    if pfi is not None:
        options = {**(options or {})}
        options["permutation_importance"] = {**pfi, **options.get("permutation_importance", {})}
    runs = run_methods(model, x, targets, layout, names=methods, x_eval=x_eval, y_eval=y_eval,
                       background=background, seed=seed, progress=progress, options=options)
    notes: list[str] = [
        "Evaluation: lumos.evaluate's table (the metric names, ↑ / ↓ and mean ± standard error over the inputs "
        "of lumos.evaluate and `lumos evaluate`) on each method's explanation of the predicted class: region "
        "perturbation (AOPC over the first fifth of the features, Samek et al.'s uniform noise), deletion AUC to the baseline value "
        f"{baseline if np.isscalar(baseline) else '(per feature)'} and insertion AUC in 20 steps (Petsiuk et al. "
        "2018), sparseness, completeness and relevance mass (Arras et al. 2022); a random attribution is the "
        "reference row."]
    coarse = {}
    for run in runs:
        if run.ok and run.explanations and "layer_map" in run.explanations[0].extras:
            coarse.setdefault(tuple(run.explanations[0].extras["layer_map"].shape[1:]), []).append(run.name)
    evaluation = _evaluate(model, x, runs, baseline, seed, masks, notes, progress)
    ok = [r for r in runs if r.ok and r.explanations]
    titles = {name: (f"{name}\n[guided × {' × '.join(map(str, shape))} CAM]" if "guided" in name else
                     f"{name}\n[{' × '.join(map(str, shape))} layer map, upsampled]")
              for shape, names in coarse.items() for name in names}  # a visible label on the coarse panels
    rows = []
    for i in _bar(range(len(x)), progress, "drawing", "input"):
        for r in range(n_ranks):
            c = int(targets[i, r])
            panels = [(titles.get(run.name, run.name), run.explanations[r].values[i]) for run in ok]
            true = f", true: {class_names[int(y[i])]}" if y is not None else ""
            if modality in ("ecg", "eeg"):
                png = figures.render_series_row(x[i], panels, modality, input_title=f"input{true}",
                                                feature_names=feature_names, times=times, sfreq=sfreq)
            else:
                png = figures.render_row(x[i], panels, layout, input_title=f"input{true}",
                                         feature_names=feature_names, times=times, sfreq=sfreq,
                                         raw_values=None if raw_values is None else raw_values[i])
            rows.append({"sample": i, "rank": r, "class": class_names[c], "prob": float(probs[i, c]), "png": png})
    samples = [{"index": i, "true": None if y is None else class_names[int(y[i])],
                "pred": class_names[int(targets[i, 0])], "prob": float(probs[i, targets[i, 0]]),
                "classes": [(class_names[int(t)], float(probs[i, t])) for t in targets[i]]} for i in range(len(x))]
    globals_ = [(run.name, figures.render_global(run.global_explanation, run.name))
                for run in runs if run.ok and run.global_explanation is not None]
    curve_png = _deletion_figure(evaluation)
    import lumos

    info = {
        "lumos version": _version() if hasattr(lumos, "__version__") else "unknown",
        "model": type(getattr(model, "__wrapped__", model)).__name__,
        **({"parameters": f"{sum(p.numel() for p in model.parameters()):,}"} if hasattr(model, "parameters") else {}),
        **(model_info or {}),
        "inputs": f"{len(x)} × {' × '.join(map(str, x.shape[1:]))} ({layout}"
                  + (f", drawn as {modality.upper()}" if modality in ("ecg", "eeg") else "") + ")",
        **(data_info or {}),
        "seed": seed,
        "created": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
    }
    html = render_page(title=title, info=info, samples=samples, rows=rows, runs=runs, evaluation=evaluation,
                       globals_=globals_, curve_png=curve_png, notes=notes, n_ranks=n_ranks)
    return Report(html=html, runs=runs, evaluation=evaluation, notes=notes, seconds=time.perf_counter() - start)


def report_for_dataset(model, dataset, n_samples: int = 6, *, seed: int = 0, model_info: dict | None = None,
                       **kwargs) -> Report:
    """:func:`build_report` on ``n_samples`` test inputs of a :class:`lumos.data.Dataset`
    (covering the classes), with its names, time axis and ground-truth masks."""
    idx = pick_samples(dataset.y_test, n_samples, seed)
    n_eval = min(len(dataset.X_test), 300)
    rng = np.random.default_rng(seed)
    bg = dataset.X_train[rng.choice(len(dataset.X_train), min(50, len(dataset.X_train)), replace=False)]
    masks = dataset.mask_test[idx] if dataset.mask_test is not None else None
    data_info = {"dataset": f"{dataset.name}: {len(dataset.X_train)} train / {len(dataset.X_test)} test, "
                            f"classes {', '.join(dataset.class_names)}"}
    if dataset.sfreq:
        data_info["sampling rate"] = f"{dataset.sfreq:g} Hz"
    kwargs.setdefault("title", f"lumos report: {dataset.name}")
    if dataset.layout == "tabular" and "mean" in dataset.extra and "std" in dataset.extra:
        kwargs.setdefault("raw_values", dataset.X_test[idx] * dataset.extra["std"] + dataset.extra["mean"])
    return build_report(model, dataset.X_test[idx], y=dataset.y_test[idx], layout=dataset.layout,
                        class_names=dataset.class_names, feature_names=dataset.feature_names, times=dataset.times,
                        sfreq=dataset.sfreq, x_eval=dataset.X_test[:n_eval], y_eval=dataset.y_test[:n_eval],
                        background=bg, masks=masks, seed=seed, model_info=model_info, data_info=data_info, **kwargs)
