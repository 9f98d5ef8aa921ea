"""What every command shares: the one-line error, the run options (``--seed``,
``--device``, ``--quiet``) and the model options (``--factory``, ``--trust-model``)."""
from __future__ import annotations

import contextlib
import os

import click

#: Exceptions that are the user's mistake (a bad file, option or value): one line, exit 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError, KeyError, OSError, RuntimeError)


class UserError(click.ClickException):
    """Shown as one ``lumos: error: ...`` line; exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"lumos: error: {self.format_message()}", err=True)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = str(err.args[0])
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def user_errors():
    """Turn a user mistake raised inside into a :class:`UserError` (``LUMOS_DEBUG=1``: the
    original exception and its traceback)."""
    try:
        yield
    except click.ClickException:
        raise
    except USER_ERRORS as err:
        if os.environ.get("LUMOS_DEBUG"):
            raise
        raise UserError(first_line(err)) from err


def say(ctx: click.Context, message: str) -> None:
    """A progress message on stderr, unless ``--quiet``."""
    obj = ctx.find_root().obj
    if not (isinstance(obj, dict) and obj.get("quiet")):
        click.echo(message, err=True)


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


FACTORY_HELP = ("module:callable (or path/to/file.py:callable) returning the torch.nn.Module that the state "
                "dict in the model file is loaded into; the current directory is importable.")
TRUST_HELP = ("Also load whole pickled modules (torch.save(model)). This EXECUTES CODE FROM THE MODEL FILE: "
              "use it only for files you trust. Also needed for Keras (.keras) and pickled scikit-learn "
              "(.joblib, .pkl) files; not for state dicts, TorchScript, torch.export or ONNX files.")
MODEL_HELP = ("TorchScript (.pt), torch.export (.pt2), ONNX (.onnx), a state dict with --factory; with "
              "--trust-model also a whole pickled module, Keras (.keras) or scikit-learn (.joblib, .pkl).")


def model_file_options(fn):
    """``--factory`` and ``--trust-model``: how the model file is read (the same on every command)."""
    fn = click.option("--trust-model", is_flag=True, default=False, help=TRUST_HELP)(fn)
    fn = click.option("--factory", default=None, metavar="MODULE:CALLABLE", help=FACTORY_HELP)(fn)
    return fn


def check_device(device: str) -> str:
    """``device`` if torch knows it and it is present on this machine."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return device


OPTION_HELP = ("Method option KEY=VALUE, value read as JSON when it parses, a .npy/.npz file as an array "
               "(e.g. -O n_steps=32 -O background=bg.npy); with several methods it goes to each method that "
               "takes KEY, or to one with -O METHOD.KEY=VALUE (-O ig.n_steps=64).")


def method_options_flag(fn):
    """``-O/--option KEY=VALUE`` (repeatable), the same on every command that runs methods."""
    return click.option("--option", "-O", "method_options", multiple=True, metavar="KEY=VALUE",
                        help=OPTION_HELP)(fn)


def label_column_flag(fn):
    """``--label-column NAME``: the labels of a .csv table."""
    return click.option("--label-column", default=None, metavar="NAME",
                        help="The .csv column holding the labels (numbers or class names); it is not an input.")(fn)
