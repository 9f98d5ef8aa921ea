"""``evaluate``: every explainer x every metric on one batch, as a tidy table."""
from __future__ import annotations

from typing import Any

import numpy as np

from lumos.core.validate import as_array
from lumos.metrics import axioms, epc, faithfulness, localisation, robustness, sanity
from lumos.metrics import complexity, conservation, localisation_masks, stability
from lumos.metrics import faithfulness_quantus
from lumos.metrics._base import explain_fn, method_name, per_sample, scorer

METRICS = {fn.info.name: fn for fn in (
    faithfulness.region_perturbation, faithfulness.pixel_flipping, faithfulness.abpc, faithfulness.deletion,
    faithfulness.insertion, axioms.completeness_error, axioms.conservation_error, axioms.sensitivity_n,
    robustness.infidelity, robustness.max_sensitivity, robustness.sparseness, robustness.entropy,
    localisation.relevance_mass_accuracy, localisation.relevance_rank_accuracy, localisation.pointing_game,
    epc.explainability_performance, sanity.randomisation_spearman, sanity.efficient_mprt, sanity.random_logit,
)}
# Robustness, complexity, localisation and axiom families equal to Quantus (issue 18 item 2).
METRICS.update({fn.info.name: fn for fn in (
    complexity.effective_complexity, stability.continuity, stability.local_lipschitz_estimate,
    stability.relative_input_stability, stability.relative_output_stability,
    stability.relative_representation_stability, stability.consistency, conservation.non_sensitivity,
    conservation.completeness_residual, conservation.absorbed_relevance, localisation_masks.focus,
    localisation_masks.top_k_intersection, localisation_masks.attribution_localisation,
)})
# Faithfulness family equal to Quantus (issue 18 item 2).
METRICS.update({fn.info.name: fn for fn in (
    faithfulness_quantus.road, faithfulness_quantus.irof, faithfulness_quantus.monotonicity,
    faithfulness_quantus.monotonicity_correlation, faithfulness_quantus.faithfulness_correlation,
    faithfulness_quantus.faithfulness_estimate, faithfulness_quantus.selectivity, faithfulness_quantus.sufficiency,
)})
DEFAULT_METRICS = ("region_perturbation", "deletion", "insertion", "sparseness", "entropy")


#: Names users know a metric by (Quantus's class names, papers' short names) -> lumos's name.
ALIASES = {
    "aopc": "region_perturbation", "morf": "region_perturbation", "regionperturbation": "region_perturbation",
    "pixelflipping": "pixel_flipping", "mprt": "randomisation_spearman",
    "model_parameter_randomisation": "randomisation_spearman", "modelparameterrandomisation": "randomisation_spearman",
    "cascading_randomisation": "randomisation_spearman", "emprt": "efficient_mprt", "efficientmprt": "efficient_mprt",
    "randomlogit": "random_logit", "road": "road", "gini": "sparseness", "complexity": "entropy",
    "relevance_mass": "relevance_mass_accuracy", "relevancemassaccuracy": "relevance_mass_accuracy",
    "relevance_rank": "relevance_rank_accuracy", "relevancerankaccuracy": "relevance_rank_accuracy",
    "pointinggame": "pointing_game", "maxsensitivity": "max_sensitivity", "sensitivityn": "sensitivity_n",
    "completeness": "completeness_error", "conservation": "conservation_error",
    "explainability_performance_coefficient": "epc", "deletion_auc": "deletion", "insertion_auc": "insertion",
}


def metric_function(name: str):
    """The metric registered as ``name`` in :data:`METRICS` or known by an alias in
    :data:`ALIASES` (case, spaces and hyphens ignored); an unknown name raises a
    ``ValueError`` suggesting the closest names."""
    import difflib

    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    for candidate in (key, ALIASES.get(key), ALIASES.get(key.replace("_", ""))):
        if candidate in METRICS:
            return METRICS[candidate]
    known = sorted(set(METRICS) | {a for a, n in ALIASES.items() if n in METRICS})
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown metric {name!r}{hint} Available: {', '.join(sorted(METRICS))}")


COLUMNS = ("method", "metric", "mean", "sem", "n", "higher_is_better", "category")
#: What :meth:`EvaluationTable.save` writes, by the file's suffix.
TABLE_FORMATS = (".csv", ".json", ".md")


def mean_pm_sem(mean: float, sem: float, digits: int = 4) -> str:
    """``mean ± sem`` as results are reported: the standard error to two significant digits and
    the mean to the same decimal place (``0.0497 ± 0.0070``, ``3673 ± 66``); scientific
    notation below 1e-6 (``2.86e-07 ± 8.9e-08``); ``digits`` significant digits for a mean
    without a finite s.e. (one input) and for a zero s.e."""
    mean, sem = float(mean), float(sem)
    if not np.isfinite(mean) or not np.isfinite(sem):
        return f"{mean:.{digits}g}"
    if sem == 0:
        return f"{mean:.{digits}g} ± 0"
    decimals = 1 - int(np.floor(np.log10(sem)))
    if decimals > 7:
        return f"{mean:.{max(digits - 2, 1)}e} ± {sem:.1e}"
    decimals = max(decimals, 0)
    return f"{mean:.{decimals}f} ± {sem:.{decimals}f}"


class EvaluationTable:
    """The result of :func:`evaluate`, the same type whether or not pandas is installed:
    one row per method x metric (``dict`` rows with :data:`COLUMNS`), iterable and indexable
    like a list of rows, with ``attrs`` (``attrs["curves"]``, as a DataFrame's).

    ``to_pandas()`` gives a DataFrame (``attrs`` copied), ``to_markdown()`` a Markdown table,
    ``save(path)`` writes it as .csv, .json or .md, ``column(name)`` one column,
    ``info(metric)`` the :class:`MetricInfo` of a row's metric. A row may carry an ``error``
    (a method that could not be evaluated: :meth:`failure`; NaN scores); :meth:`concat` joins
    tables. The command line's ``lumos evaluate`` prints and writes this table.
    """

    def __init__(self, rows=(), attrs: dict | None = None):
        self.rows: list[dict] = [dict(r) for r in rows]
        self.attrs: dict = dict(attrs or {})

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, str):
            return self.column(i)
        if isinstance(i, slice):
            return EvaluationTable(self.rows[i], self.attrs)
        return self.rows[i]

    def __eq__(self, other) -> bool:
        rows = other.rows if isinstance(other, EvaluationTable) else other
        return isinstance(rows, list) and self.rows == rows

    @property
    def columns(self) -> list[str]:
        names = list(COLUMNS)
        for r in self.rows:
            names += [k for k in r if k not in names]
        return names

    def column(self, name: str) -> list:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.columns)}")
        return [r.get(name) for r in self.rows]

    @property
    def methods(self) -> list[str]:
        """The methods in the order of their first row."""
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def metrics(self) -> list[str]:
        """The metric labels in the order of their first row."""
        return list(dict.fromkeys(r["metric"] for r in self.rows))

    def heading(self, metric: str) -> str:
        """A metric's column heading: its label and direction (↑ higher is better, ↓ lower)."""
        better = next((r["higher_is_better"] for r in self.rows if r["metric"] == metric), None)
        return metric + {True: " ↑", False: " ↓"}.get(better, "")

    def cell(self, method: str, metric: str, digits: int = 4) -> str:
        """``mean ± sem`` of a method's metric (see :func:`mean_pm_sem`; ``digits`` significant
        where there is no s.e.), ``failed`` for a row with an error, empty where the method has
        no such row."""
        r = next((r for r in self.rows if r["method"] == method and r["metric"] == metric), None)
        if r is None:
            return ""
        if r.get("error"):
            return "failed"
        return mean_pm_sem(r["mean"], r["sem"], digits)

    def info(self, metric: str):
        """The :class:`MetricInfo` of ``metric`` (a row's metric label or a metric name)."""
        fn = self.attrs.get("metric_functions", {}).get(metric)
        return fn.info if fn is not None else metric_function(metric).info

    @classmethod
    def concat(cls, tables) -> "EvaluationTable":
        """One table of the rows of ``tables`` in order, their curves and metric functions merged."""
        rows, curves, functions, options = [], {}, {}, {}
        for table in tables:
            rows += table.rows
            for metric, per_method in table.attrs.get("curves", {}).items():
                curves.setdefault(metric, {}).update(per_method)
            functions.update(table.attrs.get("metric_functions", {}))
            options.update(table.attrs.get("metric_options", {}))
        return cls(rows, {"curves": curves, "metric_functions": functions, "metric_options": options})

    @classmethod
    def failure(cls, method: str, metrics, error: str) -> "EvaluationTable":
        """The rows of a method that could not be evaluated: one per metric (names, aliases or
        metric functions), NaN scores, ``n = 0`` and the ``error``."""
        chosen = _metrics(metrics)
        rows = [{"method": method, "metric": label, "mean": float("nan"), "sem": float("nan"), "n": 0,
                 "higher_is_better": fn.info.higher_is_better, "category": fn.info.category, "error": str(error)}
                for label, (fn, _) in chosen.items()]
        return cls(rows, {"curves": {}, "metric_functions": {k: fn for k, (fn, _) in chosen.items()},
                          "metric_options": {k: options for k, (_, options) in chosen.items()}})

    def save(self, path):
        """Write the table, by the suffix of ``path``: ``.csv`` (a row per method x metric,
        :data:`COLUMNS` first, then ``error`` where a row has one), ``.json`` (the list of rows;
        NaN as null) or ``.md`` (:meth:`to_markdown`). Returns the path."""
        import csv
        import json
        from pathlib import Path

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in TABLE_FORMATS:
            raise ValueError(f"{path}: the table is written as {', '.join(TABLE_FORMATS)}; give one of these suffixes")
        if suffix == ".md":
            path.write_text(self.to_markdown() + "\n", encoding="utf-8")
        elif suffix == ".json":
            rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
                    for r in self.rows]
            path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        else:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns, restval="")
                writer.writeheader()
                writer.writerows(self.rows)
        return path

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("EvaluationTable.to_pandas needs pandas: pip install pandas "
                              "(or read the rows: iterate the table or call to_markdown())") from err
        frame = pd.DataFrame(self.rows, columns=self.columns)
        frame.attrs.update(self.attrs)
        return frame

    def to_markdown(self, digits: int = 4) -> str:
        """Methods as rows, metrics as columns, ``mean ± sem`` cells; each metric's header
        carries its direction (↑ higher is better, ↓ lower is better). A method that could
        not be evaluated shows ``failed`` in its cells, its error in a list under the table."""
        head = ["method"] + [self.heading(m) for m in self.metrics]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in self.methods:
            lines.append("| " + " | ".join([name] + [self.cell(name, m, digits) for m in self.metrics]) + " |")
        errors = dict.fromkeys(f"- {r['method']} failed: {r['error']}" for r in self.rows if r.get("error"))
        return "\n".join(lines + ([""] + list(errors) if errors else []))

    def __repr__(self) -> str:
        return f"EvaluationTable({len(self)} rows)\n" + self.to_markdown()

    def _repr_html_(self) -> str:
        return self.to_pandas()._repr_html_() if _has_pandas() else "<pre>" + self.to_markdown() + "</pre>"


def _has_pandas() -> bool:
    import importlib.util

    return importlib.util.find_spec("pandas") is not None


#: The reference row of ``lumos evaluate`` and of the report: a random attribution.
RANDOM_ROW = "random order (reference)"


def random_order(seed: int):
    """Uniform random attributions as ``fn(inputs, target, model=None)`` (seeded; the same map
    for inputs of the same shape, whatever the model): the row a method has to beat."""
    def random_order(inputs, target, model=None):  # takes the model (sanity metrics pass copies), ignores it
        return np.random.default_rng(seed).random(np.shape(inputs))

    return random_order


#: The table type's former name (a list of rows without pandas).
Records = EvaluationTable


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
            fn = metric_function(fn)
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
        Metric names (see ``METRICS``; also the names in ``ALIASES``, e.g. ``"aopc"`` for
        region perturbation, ``"mprt"``), lumos metric functions, or ``(metric, options)``
        pairs; a dict gives the row labels. Default: region perturbation (MoRF AOPC),
        deletion, insertion, sparseness, entropy.
    labels : array (N,), optional
        True labels, needed by ``"epc"``.
    mask : array, optional
        Ground-truth masks, needed by the localisation metrics.

    Each method explains ``inputs`` once; the metrics that re-run the explainer and take
    Phi(x) (``attributions=``: max-sensitivity and the stability metrics) are given that
    explanation and explain only their perturbed copies.

    Returns
    -------
    :class:`EvaluationTable` (``.to_pandas()``, ``.to_markdown()``, iterable rows; the same
    type with or without pandas) with one row per method x metric:
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
                if hasattr(result, "curve"):
                    curves.setdefault(label, {})[mname] = (result.fractions, result.mean_curve)
                rows.append(score_row(mname, label, fn, result, len(x)))
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    return EvaluationTable(rows, {"curves": curves, "metric_functions": {k: fn for k, (fn, _) in chosen.items()},
                                  "metric_options": {k: options for k, (_, options) in chosen.items()}})


def score_row(method: str, label: str, fn, result, n_inputs: int | None = None) -> dict:
    """One row of the table: a metric's ``result`` for ``method`` (per-input scores, a curve,
    or EPC's dataset-level value over ``n_inputs``) as ``mean``, ``sem = std(ddof=1)/sqrt(n)``
    over the inputs with a finite score, and ``n``, with the direction and category of ``fn``."""
    if hasattr(result, "epc"):
        mean, sem, n = float(result.epc), float("nan"), int(n_inputs or 0)
    else:
        s = per_sample(result)
        n = int(np.isfinite(s).sum())
        mean = float(np.nanmean(s)) if n else float("nan")
        sem = float(np.nanstd(s, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"method": method, "metric": label, "mean": mean, "sem": sem, "n": n,
            "higher_is_better": fn.info.higher_is_better, "category": fn.info.category}


def _call(fn, explainer, model, x, values, target, labels, mask, options):
    needs = fn.info.needs
    if needs == "attributions":
        return fn(model, x, values, target, **options)
    if needs == "explainer":
        if "attributions" not in options and _takes_attributions(fn):  # Phi(x) held: no second pass over x
            options = {**options, "attributions": values}
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


def _takes_attributions(fn) -> bool:
    """Whether an explainer metric takes Phi(x) computed beforehand (``attributions=``: the
    stability metrics and max-sensitivity), so :func:`evaluate` passes the explanation it holds."""
    import inspect

    return "attributions" in inspect.signature(fn).parameters
