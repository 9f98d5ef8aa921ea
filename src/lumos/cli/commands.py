"""The ``lumos`` group and its commands demo, methods, explain, evaluate and report
(``explain-dataset`` is in :mod:`lumos.cli.explain_dataset`)."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from lumos.cli.common import (MODEL_HELP, check_device, first_line, label_column_flag, method_options_flag,
                              model_file_options, run_options, say)
from lumos.cli.bench import bench_group
from lumos.cli.explain_dataset import explain_dataset_command
from lumos.cli.loaders import DATA_FORMATS, load_data, load_model
from lumos.cli.options import TARGET_HELP, options_per_method, parse_options, parse_target
from lumos.metrics.evaluate import DEFAULT_METRICS, RANDOM_ROW


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for training and stochastic methods.")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu, cuda, cuda:N.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages; only results.")
@click.version_option(package_name="lumos-xai", prog_name="lumos", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, seed: int, device: str, quiet: bool) -> None:
    """lumos: explain what neural networks decide (saliency, IG, LRP, CAM, SHAP, LIME ...)."""
    ctx.obj = {"seed": seed, "device": device, "quiet": quiet}


def _is_global(cls) -> bool:
    return getattr(cls, "scope", "local") == "global"


@cli.command()
def methods() -> None:
    """List the registered explanation methods with what each needs and supports."""
    import lumos
    from lumos.report.methods import family_of

    short = {"tabular": "tab", "timeseries": "series", "image": "image"}
    rows = []
    for name, cls in lumos.list_methods().items():
        caps = cls.capabilities()
        needs = ["torch" if caps["needs_gradients"] else "any model"]
        needs += [what for what, key in (("layer", "needs_layer"), ("background", "needs_background"),
                                         ("labels", "needs_labels"), ("attention", "needs_attention")) if caps[key]]
        flags = ("seed " if caps["stochastic"] else "") + ("" if caps["torchscript"] else "no-TorchScript")
        layouts = "/".join(short[k] for k in caps["layouts"])
        rows.append((name, family_of(cls), caps["scope"], ",".join(needs), layouts, flags.strip(),
                     _summary(cls.__doc__, 60)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    header = ("method", "family", "scope", "needs", "inputs", "notes")
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row[:6], widths)) + "  " + row[6])


def _summary(doc: str | None, limit: int = 90) -> str:
    """The docstring's first sentence (its first paragraph, joined), shortened to ``limit``."""
    import re

    para = " ".join((doc or "").strip().split("\n\n")[0].split())
    first = re.split(r"(?<=\.)\s(?=[A-Z])", para, maxsplit=1)[0]  # not at "et al. 2016"
    return first if len(first) <= limit else first[:limit - 1].rsplit(" ", 1)[0] + " …"


@cli.command()
@run_options
@click.option("--dataset", type=click.Choice(["digits", "breast_cancer"]), default="digits", show_default=True,
              help="Bundled scikit-learn set (no download).")
@click.option("--out", default="lumos-demo.html", show_default=True, type=click.Path(dir_okay=False))
@click.option("--n-samples", default=6, show_default=True, type=click.IntRange(1, 50))
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--methods", "method_list", default=None, help="Comma-separated method names (default: all applicable).")
@click.option("--no-cache", is_flag=True, help="Retrain instead of loading cached weights.")
@method_options_flag
@click.pass_context
def demo(ctx, dataset, out, n_samples, epochs, method_list, no_cache, method_options) -> None:
    """Train (or load) a model on bundled data, explain a few inputs with every applicable
    method, evaluate them and write the HTML report."""
    import torch

    from lumos import data
    from lumos.models.cache import train_reference
    from lumos.report import report_for_dataset

    start = time.perf_counter()
    quiet, seed = ctx.obj["quiet"], ctx.obj["seed"]
    device = check_device(ctx.obj["device"])
    torch.manual_seed(seed)
    ds = data.load_digits(seed=seed) if dataset == "digits" else data.load_breast_cancer(seed=seed)
    say(ctx, f"data: {ds}")
    model, acc = train_reference(ds, epochs=epochs, seed=seed, progress=not quiet, cache=not no_cache)
    info = model.lumos_cache
    say(ctx, f"model: {type(model).__name__}, test accuracy {acc:.3f} "
             f"({'loaded from' if info['hit'] else 'trained in %.1f s, cached at' % info['seconds']} {info['path']})")
    model = model.to(device)
    names = method_list.split(",") if method_list else None
    report = report_for_dataset(model, ds, n_samples, seed=seed, methods=names, progress=not quiet,
                                options=_per_method(method_options, names),
                                model_info={"test accuracy": f"{acc:.3f}", "training": f"{epochs} epochs, Adam, seed {seed}"})
    path = report.save(out)
    done = [r.name for r in report.runs if r.ok]
    say(ctx, f"explained {n_samples} inputs with {len(done)} methods ({', '.join(done)}) "
             f"in {time.perf_counter() - start:.1f} s")
    click.echo(str(path.resolve()))


def model_options(fn):
    """``--model``, ``--factory``, ``--trust-model``, ``--data``, ``--label-column`` and ``--limit``."""
    fn = click.option("--limit", default=None, type=click.IntRange(1), help="Use only the first N inputs.")(fn)
    fn = label_column_flag(fn)
    fn = click.option("--data", "data_path", required=True, help=f"Inputs: {DATA_FORMATS}.")(fn)
    fn = model_file_options(fn)
    fn = click.option("--model", "model_path", required=True, help=MODEL_HELP)(fn)
    return fn


def _model_and_data(ctx, model_path, factory, trust_model, data_path, label_column=None):
    device = check_device(ctx.obj["device"])
    model = load_model(model_path, factory, trust_model=trust_model, device=device)
    return model, load_data(data_path, label_column=label_column)


def _per_method(texts, names) -> dict:
    """The ``-O`` options of a command running several methods, per method name."""
    import lumos.methods  # noqa: F401  (registers the families)
    from lumos.core import registry

    options = parse_options(texts)
    if not options:
        return {}
    chosen = [registry.get(n).name for n in names] if names else list(registry.available())
    return options_per_method(options, {n: registry.get(n) for n in chosen})


def _class_target(target, model, d):
    """A class name given as --target, checked against the class names there are."""
    if not isinstance(target, str):
        return target, {}
    from lumos.core.model import ModelAdapter

    names = d["class_names"] or ModelAdapter(model).class_names
    if not names:
        raise ValueError(f"--target must be a class index, a class name or 'predicted', got {target!r} (neither the "
                         "data nor the model has class names)")
    return target, {"class_names": names}


@cli.command()
@run_options
@model_options
@click.option("--method", required=True, help="Registered method name (see `lumos methods`).")
@click.option("--target", default=None, help=TARGET_HELP + ".")
@click.option("--out", default="explanation.npz", show_default=True, type=click.Path(dir_okay=False))
@method_options_flag
@click.pass_context
def explain(ctx, model_path, factory, trust_model, data_path, label_column, limit, method, target, out,
            method_options) -> None:
    """Explain the inputs of --data with one method and save the Explanation (.npz)."""
    import lumos
    import lumos.methods  # noqa: F401  (registers the families)
    from lumos.core import registry

    cls = registry.get(method)  # unknown names fail before the model loads
    target = parse_target(target, names=True)
    options = parse_options(method_options)
    model, d = _model_and_data(ctx, model_path, factory, trust_model, data_path, label_column)
    x = d["X"][:limit]
    from lumos.cli.text import echo_words, text_inputs

    x, text_options = text_inputs(model, x, data_path, limit)  # token ids (and tokens, mask) for text
    options = {**text_options, **options}
    target, named = _class_target(target, model, d)
    options = {**named, **options}
    if "seed" in registry.options_of(cls):
        options.setdefault("seed", ctx.obj["seed"])
    if (d["feature_names"] and x.ndim == 2 and len(d["feature_names"]) == x.shape[1]
            and "feature_names" in registry.options_of(cls) and not options.get("groups")):
        options.setdefault("feature_names", d["feature_names"])  # methods that name their features
    if _is_global(cls):
        if d["y"] is None:
            raise ValueError(f"{method} is a global method and needs labels: store 'y' in the .npz, "
                             "or name the .csv column with --label-column")
        options["y"] = d["y"][:limit]
    start = time.perf_counter()
    exp = lumos.explain(model, x, method=method, target=target, **options)
    if d["feature_names"] and exp.feature_names is None:
        exp.feature_names = d["feature_names"]
    path = exp.save(out)
    say(ctx, f"{exp!r} in {time.perf_counter() - start:.2f} s")
    if exp.meta.get("layout") == "text":
        echo_words(exp)
    click.echo(str(path.resolve()))


@cli.command()
@run_options
@model_options
@click.option("--methods", "method_list", default=None, help="Comma-separated methods (default: all applicable).")
@click.option("--metrics", "metric_list", default=",".join(DEFAULT_METRICS), show_default=True,
              help="Comma-separated metrics: lumos.evaluate's names or aliases (aopc, mprt, PixelFlipping ...).")
@click.option("--explanation", default=None, type=click.Path(dir_okay=False),
              help="Evaluate a saved explanation instead of computing new ones (with --model and --data).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Also write the table: .csv, .json (a record per method and metric) or .md.")
@method_options_flag
@click.pass_context
def evaluate(ctx, model_path, factory, trust_model, data_path, label_column, limit, method_list, metric_list,
             explanation, out, method_options) -> None:
    """Evaluate each method with lumos.evaluate's metrics and print its table (methods x
    metrics, mean ± standard error over the inputs, ↑ / ↓ the better direction), a random
    attribution as the reference row last."""
    from lumos.core.explanation import Explanation
    from lumos.metrics.evaluate import TABLE_FORMATS, EvaluationTable, random_order
    from lumos.metrics.evaluate import evaluate as evaluate_table
    from lumos.report.methods import run_methods

    names = method_list.split(",") if method_list else None
    per_method = _per_method(method_options, names)
    metrics = _metric_names(metric_list, saved=bool(explanation))
    if out is not None and Path(out).suffix.lower() not in TABLE_FORMATS:
        raise ValueError(f"--out {out}: write the table as {', '.join(TABLE_FORMATS)}")
    model, d = _model_and_data(ctx, model_path, factory, trust_model, data_path, label_column)
    x = d["X"][:limit]
    explainers = {}  # name -> what lumos.evaluate runs, or the error of a method that failed
    if explanation:
        exp = Explanation.load(explanation)
        if exp.inputs is None or exp.scope != "local":
            raise ValueError(f"{explanation} holds no inputs or is global; evaluate needs a local explanation")
        x, target = exp.inputs, np.asarray(exp.target).reshape(-1)
        explainers[exp.method] = _saved(exp)
    else:
        from lumos.core.model import ModelAdapter
        from lumos.report.builder import infer_layout

        target = ModelAdapter(model).scores(x).argmax(1)
        for run in run_methods(model, x, target[:, None], infer_layout(x), names=names, seed=ctx.obj["seed"],
                               background=x[:50], progress=not ctx.obj["quiet"], options=per_method,
                               x_eval=x if d["y"] is not None else None, y_eval=d["y"]):
            if run.ok and run.explanations:
                explainers[run.name] = run.explain_fn(x)
            elif run.error:
                explainers[run.name] = run.error
    labels = d["y"][:limit] if d["y"] is not None and len(d["y"][:limit]) == len(x) else None
    _check_needs(metrics, labels)
    explainers[RANDOM_ROW] = random_order(ctx.obj["seed"])
    tables = []
    for name in _progress(ctx, list(explainers), "evaluating"):
        if isinstance(explainers[name], str):  # the method failed: its error
            tables.append(EvaluationTable.failure(name, metrics, explainers[name]))
            continue
        try:
            tables.append(evaluate_table(model, x, target, {name: explainers[name]}, metrics, labels=labels,
                                         progress=False))
        except Exception as err:  # noqa: BLE001 - a method failing a metric becomes its row, not the end
            tables.append(EvaluationTable.failure(name, metrics, f"{type(err).__name__}: {first_line(err)}"))
    table = EvaluationTable.concat(tables)
    click.echo(table.to_markdown())
    if out is not None:
        say(ctx, f"table written to {table.save(out).resolve()}")


def _metric_names(text: str, saved: bool) -> list[str]:
    """``--metrics`` as lumos's metric names (aliases resolved; an unknown name gets a did-you-mean)."""
    from lumos.metrics.evaluate import metric_function

    names = []
    for word in (w.strip() for w in str(text).split(",")):
        if not word:
            continue
        fn = metric_function(word)
        if saved and fn.info.needs == "explainer":
            raise ValueError(f"metric {fn.info.name!r} re-runs the explainer, which a saved explanation cannot: "
                             "give --methods instead of --explanation")
        if fn.info.needs == "mask":
            raise ValueError(f"metric {fn.info.name!r} needs ground-truth masks, which the command line does not "
                             "read: call lumos.evaluate(..., mask=masks) in Python")
        if fn.info.name not in names:
            names.append(fn.info.name)
    if not names:
        raise ValueError("--metrics names no metric: give comma-separated names, e.g. --metrics aopc,sparseness")
    return names


def _check_needs(metrics: list[str], labels) -> None:
    from lumos.metrics.evaluate import metric_function

    for name in metrics:
        if metric_function(name).info.needs == "labels" and labels is None:
            raise ValueError(f"metric {name!r} needs the true labels of the inputs: store 'y' in the .npz, or name "
                             "the .csv column with --label-column")


def _saved(exp):
    """A saved explanation as ``fn(inputs, target)``: its values, for its own inputs only."""
    def saved(inputs, target):
        if np.shape(inputs) != exp.inputs.shape or not np.array_equal(inputs, exp.inputs):
            raise ValueError("a saved explanation explains its own inputs only")
        return exp.values

    saved.__name__ = exp.method
    return saved


def _progress(ctx, items, label: str):
    """``items`` under a progress bar on a terminal (not under --quiet)."""
    import sys

    if ctx.obj["quiet"] or not sys.stderr.isatty() or len(items) < 2:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=label, unit="method", leave=False)


@cli.command()
@run_options
@model_options
@click.option("--methods", "method_list", default=None, help="Comma-separated methods (default: all applicable).")
@click.option("--out", default="lumos-report.html", show_default=True, type=click.Path(dir_okay=False))
@click.option("--n-samples", default=6, show_default=True, type=click.IntRange(1, 50))
@click.option("--class-names", default=None, help="Comma-separated class names.")
@click.option("--modality", type=click.Choice(["auto", "ecg", "eeg", "series"]), default="auto", show_default=True,
              help="Series: ECG printouts, EEG channel x time maps or line panels (auto: from the channel names).")
@method_options_flag
@click.pass_context
def report(ctx, model_path, factory, trust_model, data_path, label_column, limit, method_list, out, n_samples,
           class_names, modality, method_options) -> None:
    """Write the HTML report for the first --n-samples inputs of --data."""
    from lumos.report import build_report

    per_method = _per_method(method_options, method_list.split(",") if method_list else None)
    model, d = _model_and_data(ctx, model_path, factory, trust_model, data_path, label_column)
    x = d["X"][:limit]
    y = d["y"][:limit] if d["y"] is not None else None
    names = class_names.split(",") if class_names else d["class_names"]
    rep = build_report(model, x[:n_samples], y=None if y is None else y[:n_samples], class_names=names,
                       feature_names=d["feature_names"], times=d["times"], sfreq=d["sfreq"],
                       methods=method_list.split(",") if method_list else None, x_eval=x if y is not None else None,
                       y_eval=y, background=x[:50], seed=ctx.obj["seed"], progress=not ctx.obj["quiet"],
                       title=f"lumos report: {Path(data_path).name}", modality=modality, options=per_method)
    click.echo(str(rep.save(out).resolve()))


cli.add_command(explain_dataset_command)
cli.add_command(bench_group)
