"""``lumos bench``: the benchmarks that ship with the package.

    lumos bench timeseries --quick            # tables in ./timeseries_tables
    lumos bench timeseries --scale medium --out tables/ --settings hmm,rare

The options are those of :func:`lumos.benchmarks.timeseries.main` (``lumos bench timeseries -h``).
"""
from __future__ import annotations

import click


@click.group("bench")
def bench_group() -> None:
    """Benchmarks against a ground truth (see `lumos bench timeseries -h`)."""


@bench_group.command("timeseries", add_help_option=False,
                     context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def timeseries_command(args) -> None:
    """Time-series methods against the true masks (HMM, rare feature/time, Ismail et al.):
    one markdown table per setting, published values beside lumos's (and tint's where it is
    installed), and which ground-truth-free score picks the right method. Options: --quick,
    --scale, --out, --methods, --settings, --seeds, --no-cache, --render; -h for details."""
    from lumos.benchmarks.timeseries import main

    code = main(list(args))  # argparse's -h and usage errors end the process (SystemExit 0 / 2)
    if code:
        raise SystemExit(code)
