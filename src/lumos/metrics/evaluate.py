"""``evaluate``: every explainer x every metric on one batch, as a tidy table."""
from __future__ import annotations

from typing import Any

import numpy as np

from lumos.core.validate import as_array
from lumos.metrics import axioms, epc, faithfulness, localisation, robustness, sanity
from lumos.metrics._base import explain_fn, method_name, per_sample, scorer

METRICS = {fn.info.name: fn for fn in (
    faithfulness.region_perturbation, faithfulness.pixel_flipping, faithfulness.abpc, faithfulness.deletion,
    faithfulness.insertion, axioms.completeness_error, axioms.conservation_error, axioms.sensitivity_n,
    robustness.infidelity, robustness.max_sensitivity, robustness.sparseness, robustness.entropy,
    localisation.relevance_mass_accuracy, localisation.relevance_rank_accuracy, localisation.pointing_game,
    epc.explainability_performance, sanity.randomisation_spearman, sanity.efficient_mprt, sanity.random_logit,
)}
DEFAULT_METRICS = ("region_perturbation", "deletion", "insertion", "sparseness", "entropy")


class Records(list):
    """A list of row dicts with an ``attrs`` dict (like a DataFrame's), used when pandas
    is not installed."""

    def __init__(self, rows=()):
        super().__init__(rows)
        self.attrs: dict = {}


def _explainers(explainers) -> dict[str, Any]:
    if isinstance(explainers, dict):
        items = dict(explainers)
    elif isinstance(explainers, (list, tuple)):
        items = {method_name(e) if not isinstance(e, str) else e: e for e in explainers}
    else:
        items = {method_name(explainers): explainers}
    if not items:
        raise ValueError("give at least one explainer")
    return items


def _metrics(metrics) -> dict[str, tuple[Any, dict]]:
    metrics = DEFAULT_METRICS if metrics is None else metrics
    if isinstance(metrics, (str,)) or callable(metrics):
        metrics = [metrics]
    items = metrics.items() if isinstance(metrics, dict) else [(None, m) for m in metrics]
    out = {}
    for label, spec in items:
        fn, options = (spec if isinstance(spec, tuple) else (spec, {}))
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ValueError(f"unknown metric {fn!r}; available: {', '.join(sorted(METRICS))}")
            fn = METRICS[fn]
        if not hasattr(fn, "info"):
            raise TypeError(f"a metric must be a name or a lumos metric function (with .info), got {fn!r}")
        out[label or fn.info.name] = (fn, dict(options))
    return out


def evaluate(model, inputs, targets=None, explainers=None, metrics=None, *, labels=None, mask=None,
             progress: bool = True):
    """Evaluate explainers with metrics on one batch.

    Parameters
    ----------
    model : torch.nn.Module or callable
    inputs : array (N, ...)
    targets : None, int or sequence
        Explained output per input (None: the predicted class), the same for every method.
    explainers : dict name -> explainer, list, or one explainer
        Explainer objects (``.explain(inputs, target=...)``), explainer classes, registry
        names (``"saliency"``) or callables ``fn(inputs, target)``.
    metrics : list or dict
        Metric names (see ``METRICS``), lumos metric functions, or ``(metric, options)``
        pairs; a dict gives the row labels. Default: region perturbation (MoRF AOPC),
        deletion, insertion, sparseness, entropy.
    labels : array (N,), optional
        True labels, needed by ``"epc"``.
    mask : array, optional
        Ground-truth masks, needed by the localisation metrics.

    Returns
    -------
    pandas.DataFrame (or :class:`Records` without pandas) with one row per method x metric:
    ``method, metric, mean, sem, n, higher_is_better, category`` where ``sem`` is the
    standard error ``std(ddof=1)/sqrt(n)`` over inputs (NaN for dataset-level scores such
    as EPC). ``attrs["curves"][metric][method] = (fractions, mean curve)`` holds the
    perturbation curves, drawn by :func:`lumos.metrics.plot_curves`.
    """
    if explainers is None:
        raise ValueError("give the explainers to evaluate")
    x = as_array(inputs)
    methods = _explainers(explainers)
    chosen = _metrics(metrics)
    with scorer(model, x[0].size) as adapter:
        t = adapter.targets(targets, adapter.scores(x))
    rows, curves = [], {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(methods) * (len(chosen) + 1), desc="evaluate", unit="step")
    try:
        for mname, explainer in methods.items():
            if isinstance(explainer, str):
                from lumos.core import registry
                import lumos.methods  # noqa: F401

                explainer = registry.get(explainer)
            run = explain_fn(explainer)
            values = np.asarray(run(model, x, t))
            if bar is not None:
                bar.set_postfix_str(f"{mname}: explain")
                bar.update()
            for label, (fn, options) in chosen.items():
                if bar is not None:
                    bar.set_postfix_str(f"{mname}: {label}")
                result = _call(fn, explainer, model, x, values, t, labels, mask, options)
                if hasattr(result, "epc"):
                    mean, sem, n = float(result.epc), float("nan"), len(x)
                else:
                    s = per_sample(result)
                    n = int(np.isfinite(s).sum())
                    mean = float(np.nanmean(s))
                    sem = float(np.nanstd(s, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
                if hasattr(result, "curve"):
                    curves.setdefault(label, {})[mname] = (result.fractions, result.mean_curve)
                rows.append({"method": mname, "metric": label, "mean": mean, "sem": sem, "n": n,
                             "higher_is_better": fn.info.higher_is_better, "category": fn.info.category})
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    try:
        import pandas as pd
    except ImportError:
        table = Records(rows)
    else:
        table = pd.DataFrame(rows)
    table.attrs["curves"] = curves
    return table


def _call(fn, explainer, model, x, values, target, labels, mask, options):
    needs = fn.info.needs
    if needs == "attributions":
        return fn(model, x, values, target, **options)
    if needs == "explainer":
        return fn(explainer, model, x, target, **options)
    if needs == "attributions_only":
        return fn(values, **options)
    if needs == "mask":
        if mask is None:
            raise ValueError(f"metric {fn.info.name!r} needs a ground-truth mask: pass mask=")
        return fn(values, mask, **options)
    if needs == "labels":
        if labels is None:
            raise ValueError(f"metric {fn.info.name!r} needs the true labels: pass labels=")
        return fn(model, x, values, labels, **options)
    raise ValueError(f"metric {fn.info.name!r} declares an unknown need {needs!r}")
