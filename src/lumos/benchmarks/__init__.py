"""Benchmarks that ship with lumos (``lumos bench ...``): :mod:`lumos.benchmarks.timeseries`,
the time-series explanations measured against an exact ground truth (#16). The peer
comparisons and timings of the other families live in the source checkout's ``benchmarks/``."""
