"""The ``lumos`` command line.

    lumos demo                         # train/load a model on bundled data, explain, evaluate, write a report
    lumos methods                      # the registered methods
    lumos explain  --model M --data D --method ig [--target 3] [--out exp.npz]
    lumos evaluate --model M --data D [--methods ig,saliency]   (or --explanation exp.npz)
    lumos report   --model M --data D [--out report.html]

``--model`` is a TorchScript file, or a state dict plus ``--factory module:callable`` (a
Python entry point returning the ``nn.Module``; ``path/to/file.py:callable`` also works).
``--data`` is ``.npz`` (``X`` or ``X_test``, optional ``y``, ``class_names``, ``ch_names``/
``feature_names``, ``sfreq``, ``times``), ``.npy``, ``.csv`` (numeric, header row) or a
UCR/UEA file (``.tsv``, ``.ts``, ``.arff``). User mistakes end with one ``lumos: error:``
line and exit code 2; set ``LUMOS_DEBUG=1`` to see tracebacks.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

import click
import numpy as np

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError, KeyError, OSError, RuntimeError)


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"lumos: error: {self.format_message()}", err=True)


def _say(ctx: click.Context, message: str) -> None:
    if not ctx.obj.get("quiet"):
        click.echo(message, err=True)


# -- loading the user's model and data -------------------------------------------------
def load_factory(spec: str):
    """``module:callable`` or ``path/to/file.py:callable`` -> the callable."""
    if ":" not in spec:
        raise ValueError(f"--factory must look like 'module:callable', got {spec!r}")
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.exists():
            raise FileNotFoundError(f"factory file {path} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            raise ImportError(f"cannot import {target!r} for --factory ({err})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ValueError(f"{target} has no callable named {attr!r}")
    return fn


def load_model(path: str, factory: str | None = None, device: str = "cpu"):
    """A TorchScript archive, or a state dict loaded into ``factory()``; in eval mode."""
    import torch

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file {p} does not exist")
    if factory is None:
        try:
            return torch.jit.load(str(p), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{p} is not a TorchScript archive ({str(err).splitlines()[0][:120]}); "
                             "for a state dict give --factory module:callable that builds the model") from None
    model = load_factory(factory)()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"--factory {factory} returned {type(model).__name__}, expected a torch.nn.Module")
    try:
        state = torch.load(str(p), map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a user-file problem
        raise ValueError(f"cannot read {p} as a state dict ({str(err).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{p} holds {type(state).__name__}, expected a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the weights in {p} do not fit the model from {factory}: "
                         f"{str(err).splitlines()[0][:200]}") from None
    return model.to(device).eval()


def load_data(path: str) -> dict:
    """Inputs and optional labels and names from a file (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {p} does not exist")
    suffix = p.suffix.lower()
    out: dict = {"y": None, "class_names": None, "feature_names": None, "sfreq": None, "times": None}
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as d:
            key = next((k for k in ("X", "x", "X_test", "inputs") if k in d.files), None)
            if key is None:
                raise ValueError(f"{p} has no array named X, x, X_test or inputs (found {d.files})")
            out["X"] = d[key]
            ykey = {"X": "y", "x": "y", "X_test": "y_test", "inputs": "y"}[key]
            if ykey in d.files:
                out["y"] = d[ykey].astype(np.int64)
            for src, dst in (("class_names", "class_names"), ("ch_names", "feature_names"),
                             ("feature_names", "feature_names")):
                if src in d.files:
                    out[dst] = [str(v) for v in d[src]]
            if "sfreq" in d.files:
                out["sfreq"] = float(d["sfreq"])
            if "times" in d.files:
                out["times"] = d["times"]
    elif suffix == ".npy":
        out["X"] = np.load(p, allow_pickle=False)
    elif suffix == ".csv":
        import csv

        with p.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        try:
            out["X"] = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float32)
        except ValueError:
            raise ValueError(f"{p}: every column must be numeric (header row, then numbers)") from None
        out["feature_names"] = rows[0]
    elif suffix in (".tsv", ".ts", ".arff", ".txt"):
        from lumos.data.ucr import read_series

        X, labels = read_series(p)
        out["X"] = X
    else:
        raise ValueError(f"unknown data format {suffix!r}; use .npz, .npy, .csv, .tsv, .ts or .arff")
    X = np.asarray(out["X"])
    if X.dtype.kind not in "fiu":
        raise ValueError(f"{p}: inputs must be numeric, got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):
        raise ValueError(f"{p}: inputs must be (N, d), (N, C, T) or (N, C, H, W); got shape {X.shape}")
    out["X"] = X.astype(np.float32)
    return out


def _target(value: str | None, n: int):
    if value is None or value in ("pred", "predicted"):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--target must be a class index or 'pred', got {value!r}") from None


def _check_device(device: str) -> str:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return device


# -- commands -----------------------------------------------------------------------------
def _override(ctx: click.Context, param: click.Parameter, value):
    """Callback of a run option given after the command (``lumos demo --seed 3``): it
    replaces the group's value (``lumos --seed 3 demo``) in the shared ``ctx.obj``."""
    if value is not None and value is not False:
        ctx.ensure_object(dict)[param.name] = value


def run_options(fn):
    """``--seed``, ``--device`` and ``--quiet`` on a command as well as on the group."""
    for opt in (click.option("--quiet", "-q", is_flag=True, default=False, expose_value=False, callback=_override,
                             help="No progress bars or messages; only results."),
                click.option("--device", default=None, expose_value=False, callback=_override,
                             help="Torch device: cpu, cuda, cuda:N (default: the group's, cpu)."),
                click.option("--seed", default=None, type=int, expose_value=False, callback=_override,
                             help="Seed for training and stochastic methods (default: the group's, 0).")):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for training and stochastic methods.")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu, cuda, cuda:N.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages; only results.")
@click.version_option(package_name="lumos-xai", prog_name="lumos", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, seed: int, device: str, quiet: bool) -> None:
    """lumos: explain what neural networks decide (saliency, IG, LRP, CAM, SHAP, LIME ...)."""
    ctx.obj = {"seed": seed, "device": device, "quiet": quiet}


@cli.command()
def methods() -> None:
    """List the registered explanation methods."""
    import lumos

    rows = []
    for name, cls in lumos.list_methods().items():
        from lumos.report.methods import family_of, is_global

        doc = _summary(cls.__doc__)
        kind = "global" if is_global(cls) else "local"
        needs = "torch" if getattr(cls, "needs_gradients", False) else "any model"
        rows.append((name, family_of(cls), kind, needs, doc))
    width = max(len(r[0]) for r in rows)
    for name, family, kind, needs, doc in rows:
        click.echo(f"{name:<{width}}  {family:<10} {kind:<6} {needs:<9}  {doc}")


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
@click.pass_context
def demo(ctx, dataset, out, n_samples, epochs, method_list, no_cache) -> None:
    """Train (or load) a model on bundled data, explain a few inputs with every applicable
    method, evaluate them and write the HTML report."""
    import torch

    from lumos import data
    from lumos.models.cache import train_reference
    from lumos.report import report_for_dataset

    start = time.perf_counter()
    quiet, seed = ctx.obj["quiet"], ctx.obj["seed"]
    torch.manual_seed(seed)
    ds = data.load_digits(seed=seed) if dataset == "digits" else data.load_breast_cancer(seed=seed)
    _say(ctx, f"data: {ds}")
    model, acc = train_reference(ds, epochs=epochs, seed=seed, progress=not quiet, cache=not no_cache)
    info = model.lumos_cache
    _say(ctx, f"model: {type(model).__name__}, test accuracy {acc:.3f} "
              f"({'loaded from' if info['hit'] else 'trained in %.1f s, cached at' % info['seconds']} {info['path']})")
    model = model.to(ctx.obj["device"])
    names = method_list.split(",") if method_list else None
    report = report_for_dataset(model, ds, n_samples, seed=seed, methods=names, progress=not quiet,
                                model_info={"test accuracy": f"{acc:.3f}", "training": f"{epochs} epochs, Adam, seed {seed}"})
    path = report.save(out)
    done = [r.name for r in report.runs if r.ok]
    _say(ctx, f"explained {n_samples} inputs with {len(done)} methods ({', '.join(done)}) "
              f"in {time.perf_counter() - start:.1f} s")
    click.echo(str(path.resolve()))


def _model_and_data(ctx, model, factory, data_path):
    device = _check_device(ctx.obj["device"])
    m = load_model(model, factory, device)
    d = load_data(data_path)
    return m, d


_model_opts = [
    click.option("--model", "model_path", required=True, help="TorchScript file, or a state dict with --factory."),
    click.option("--factory", default=None, help="module:callable building the model for a state dict."),
    click.option("--data", "data_path", required=True, help=".npz, .npy, .csv, .tsv, .ts or .arff inputs."),
    click.option("--limit", default=None, type=click.IntRange(1), help="Use only the first N inputs."),
]


def model_options(fn):
    for opt in reversed(_model_opts):
        fn = opt(fn)
    return fn


@cli.command()
@run_options
@model_options
@click.option("--method", required=True, help="Registered method name (see `lumos methods`).")
@click.option("--target", default=None, help="Class index to explain, or 'pred' (default).")
@click.option("--out", default="explanation.npz", show_default=True, type=click.Path(dir_okay=False))
@click.option("--option", "-O", "method_options", multiple=True, metavar="KEY=VALUE",
              help="Method option, value read as JSON when it parses, a .npy/.npz file as an array "
                   "(e.g. -O n_steps=32 -O background=bg.npy).")
@click.pass_context
def explain(ctx, model_path, factory, data_path, limit, method, target, out, method_options) -> None:
    """Explain the inputs of --data with one method and save the Explanation (.npz)."""
    import lumos
    from lumos.core import registry
    from lumos.scale.cli import parse_option

    import lumos.methods  # noqa: F401

    registry.get(method)  # unknown names fail before the model loads
    model, d = _model_and_data(ctx, model_path, factory, data_path)
    x = d["X"][:limit]
    options = dict(parse_option(o) for o in method_options)
    cls = registry.get(method)
    from lumos.report.methods import _explicit_params, is_global

    if "seed" in _explicit_params(cls):
        options.setdefault("seed", ctx.obj["seed"])
    if is_global(cls):
        if d["y"] is None:
            raise ValueError(f"{method} is a global method and needs labels: store 'y' in the .npz")
        options["y"] = d["y"][:limit]
    start = time.perf_counter()
    exp = lumos.explain(model, x, method=method, target=_target(target, len(x)), **options)
    if d["feature_names"] and exp.feature_names is None:
        exp.feature_names = d["feature_names"]
    path = exp.save(out)
    _say(ctx, f"{exp!r} in {time.perf_counter() - start:.2f} s")
    click.echo(str(path.resolve()))


@cli.command()
@run_options
@model_options
@click.option("--methods", "method_list", default=None, help="Comma-separated methods (default: all applicable).")
@click.option("--explanation", default=None, type=click.Path(dir_okay=False),
              help="Evaluate a saved explanation instead of computing new ones (needs --model only).")
@click.pass_context
def evaluate(ctx, model_path, factory, data_path, limit, method_list, explanation) -> None:
    """Deletion curve (AOPC, most relevant first) and sparseness of each method."""
    from lumos.core.explanation import Explanation
    from lumos.report import aopc, deletion_curves, gini
    from lumos.report.methods import run_methods

    model, d = _model_and_data(ctx, model_path, factory, data_path)
    x = d["X"][:limit]
    results = []
    if explanation:
        exp = Explanation.load(explanation)
        if exp.inputs is None or exp.scope != "local":
            raise ValueError(f"{explanation} holds no inputs or is global; evaluate needs a local explanation")
        results.append((exp.method, exp.inputs, exp.values, exp.target, None))
    else:
        from lumos.core.model import ModelAdapter
        from lumos.report.builder import infer_layout

        target = ModelAdapter(model).scores(x).argmax(1)[:, None]
        names = method_list.split(",") if method_list else None
        for run in run_methods(model, x, target, infer_layout(x), names=names, seed=ctx.obj["seed"],
                               progress=not ctx.obj["quiet"]):
            if run.ok and run.explanations:
                e = run.explanations[0]
                results.append((run.name, x, e.values, e.target, None))
            elif run.error:
                results.append((run.name, None, None, None, run.error))
    click.echo(f"{'method':<24} {'AOPC (MoRF)':>14} {'sparseness':>11}")
    rand = None
    for name, xi, values, target, error in results:
        if error:
            click.echo(f"{name:<24} failed: {error}")
            continue
        a = aopc(deletion_curves(model, xi, values, target))
        click.echo(f"{name:<24} {a.mean():>8.3f} ± {a.std():.3f} {gini(np.broadcast_to(values, xi.shape)).mean():>11.3f}")
        rand = (xi, target)
    if rand is not None:
        a = aopc(deletion_curves(model, rand[0], None, rand[1], seed=ctx.obj["seed"]))
        click.echo(f"{'random order':<24} {a.mean():>8.3f} ± {a.std():.3f}")


@cli.command()
@run_options
@model_options
@click.option("--methods", "method_list", default=None, help="Comma-separated methods (default: all applicable).")
@click.option("--out", default="lumos-report.html", show_default=True, type=click.Path(dir_okay=False))
@click.option("--n-samples", default=6, show_default=True, type=click.IntRange(1, 50))
@click.option("--class-names", default=None, help="Comma-separated class names.")
@click.pass_context
def report(ctx, model_path, factory, data_path, limit, method_list, out, n_samples, class_names) -> None:
    """Write the HTML report for the first --n-samples inputs of --data."""
    from lumos.report import build_report

    model, d = _model_and_data(ctx, model_path, factory, data_path)
    x = d["X"][:limit]
    y = d["y"][:limit] if d["y"] is not None else None
    names = class_names.split(",") if class_names else d["class_names"]
    rep = build_report(model, x[:n_samples], y=None if y is None else y[:n_samples], class_names=names,
                       feature_names=d["feature_names"], times=d["times"], sfreq=d["sfreq"],
                       methods=method_list.split(",") if method_list else None, x_eval=x if y is not None else None,
                       y_eval=y, background=x[:50], seed=ctx.obj["seed"], progress=not ctx.obj["quiet"],
                       title=f"lumos report: {Path(data_path).name}")
    click.echo(str(rep.save(out).resolve()))


from lumos.scale.cli import explain_dataset_command  # noqa: E402  (zarr/dask imported only when run)

cli.add_command(explain_dataset_command)


def main(argv=None) -> int:
    """Entry point: click's own errors keep their messages; user mistakes become one line."""
    try:
        cli.main(args=argv, prog_name="lumos", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("lumos: aborted", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except USER_ERRORS as err:
        if os.environ.get("LUMOS_DEBUG"):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        click.echo(f"lumos: error: {msg}", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
