"""``python -m benchmarks.timeseries [--quick | --scale ...]``: the source checkout's entry to the
time-series ground-truth benchmark, whose code is in the package (:mod:`lumos.benchmarks.timeseries`,
also ``lumos bench timeseries``). Here the tables go to ``benchmarks/timeseries_tables/``."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from lumos.benchmarks import timeseries as _core
from lumos.benchmarks.timeseries import *  # noqa: F401,F403  the tests and older scripts import names from here
from lumos.benchmarks.timeseries import masked_accuracy_drop, road_morf, which_to_trust  # noqa: F401

TABLE_DIR = Path(__file__).resolve().parent / "timeseries_tables"


def run(scale="quick", out_dir=None, **kwargs) -> dict:
    """:func:`lumos.benchmarks.timeseries.run`, writing to :data:`TABLE_DIR` by default."""
    return _core.run(scale, TABLE_DIR if out_dir is None else out_dir, **kwargs)


def render(out_dir=None) -> dict:
    return _core.render(TABLE_DIR if out_dir is None else out_dir)


def main(argv=None) -> int:
    return _core.main(argv, prog="python -m benchmarks.timeseries", default_out=TABLE_DIR)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
