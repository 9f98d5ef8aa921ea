"""The ``lumos`` command line (``lumos ...`` or ``python -m lumos ...``).

    lumos demo                         # train/load a model on bundled data, explain, evaluate, write a report
    lumos methods                      # the registered methods
    lumos explain  --model M --data D --method ig [--target 3] [--out exp.npz]
    lumos evaluate --model M --data D [--methods ig,saliency] [--metrics aopc,mprt]   (or --explanation exp.npz)
    lumos report   --model M --data D [--out report.html]
    lumos explain-dataset M D --method ig --out ig.zarr

Every command reads its model and data with :mod:`lumos.cli.loaders`: a TorchScript file,
a ``torch.export`` archive (``.pt2``), an ONNX file, or a state dict plus ``--factory
module:callable``; a whole pickled module, a Keras file or a pickled scikit-learn model only
with ``--trust-model`` (that may execute code from the file). No code from a model or data
file runs otherwise. ``-O KEY=VALUE`` passes method options on every command that runs
methods; ``--target`` is ``predicted`` (``pred``), a class index or a class name. User mistakes end with one
``lumos: error:`` line and exit code 2; set ``LUMOS_DEBUG=1`` to see tracebacks.
"""
from __future__ import annotations

import os

import click

from lumos.cli.commands import cli
from lumos.cli.common import USER_ERRORS, UserError, first_line
from lumos.cli.loaders import load_data, load_factory, load_model
from lumos.cli.options import parse_option

__all__ = ["main", "cli", "UserError", "load_model", "load_data", "load_factory", "parse_option"]


def main(argv=None) -> int:
    """Run the command line; the exit code: 0, 1 (aborted) or 2 (a user mistake or a usage
    error: one ``lumos: error:`` line)."""
    try:
        cli.main(args=argv, prog_name="lumos", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("lumos: aborted", err=True)
        return 1
    except click.UsageError as err:  # one line, not click's usage block
        command = err.ctx.command_path if err.ctx is not None else "lumos"
        message = " ".join(err.format_message().split())
        takes_o = err.ctx is not None and any(p.name == "method_options" for p in err.ctx.command.params)
        if isinstance(err, click.NoSuchOption) and takes_o:
            message += f" Method options go as -O KEY=VALUE (-O {err.option_name.lstrip('-').replace('-', '_')}=...)."
        click.echo(f"lumos: error: {message} (see '{command} --help')", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except USER_ERRORS as err:
        if os.environ.get("LUMOS_DEBUG"):
            raise
        click.echo(f"lumos: error: {first_line(err)}", err=True)
        return 2
    return 0

