"""Timing harness: the same call made by lumos and by a peer library, in one process,
with interleaved repeats, median wall time, peak resident memory above the baseline,
the wall-time ratio lumos/peer and the numerical agreement of the results."""
from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class PeakRSS:
    """Context manager sampling the resident set size every ``interval`` seconds."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self.base = 0

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        gc.collect()
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def to_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "values") and isinstance(getattr(out, "values"), np.ndarray):  # lumos Explanation
        return out.values
    if hasattr(out, "detach"):
        return out.detach().cpu().numpy()
    if isinstance(out, (tuple, list)) and out and hasattr(out[0], "detach"):
        return out[0].detach().cpu().numpy()
    return np.asarray(out)


@dataclass
class Row:
    family: str
    name: str
    setting: str
    peer: str
    lumos_s: float
    peer_s: float | None
    ratio: float | None
    target: str
    lumos_mb: float
    peer_mb: float | None
    max_abs_diff: float | None
    rel_diff: float | None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def met(self) -> str:
        return self.extra.get("met", "")


def _peak_memory(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Peak RSS growth (MB) during one call, and the call's output. Not a timing: the
    watcher wakes every 2 ms and takes the GIL."""
    with PeakRSS() as mem:
        out = fn()
    return mem.delta_mb, out


def _clock(fn: Callable[[], Any]) -> float:
    """Wall time of one call with nothing else running (no RSS watcher)."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Harness:
    """Collects comparison rows for one run of the benchmarks."""

    def __init__(self, repeats: int = 5, quick: bool = False):
        self.repeats = 2 if quick else repeats
        self.quick = quick
        self.rows: list[Row] = []

    def compare(self, family: str, name: str, lumos_fn: Callable[[], Any], peer_fn: Callable[[], Any] | None,
                peer: str, setting: str = "", max_ratio: float | None = None, repeats: int | None = None,
                agreement: Callable[[Any, Any], tuple[float, float]] | None = None, note: str = "") -> Row:
        """Time ``lumos_fn`` against ``peer_fn`` (interleaved) and record a row.

        ``agreement(lumos_out, peer_out) -> (max_abs_diff, rel_diff)``; by default the
        outputs are turned into arrays and compared elementwise (relative to max |peer|).
        ``max_ratio`` is the issue's target for lumos/peer wall time.
        """
        repeats = repeats or self.repeats
        m_l, out_l = _peak_memory(lumos_fn)  # warm-up: yields the outputs and the peak memory
        m_p = out_p = None
        if peer_fn is not None:
            m_p, out_p = _peak_memory(peer_fn)
        times_l, times_p = [], []
        for _ in range(repeats):
            times_l.append(_clock(lumos_fn))
            if peer_fn is not None:
                times_p.append(_clock(peer_fn))
        med_l = statistics.median(times_l)
        med_p = statistics.median(times_p) if times_p else None
        diff = rel = None
        if peer_fn is not None:
            if agreement is not None:
                diff, rel = agreement(out_l, out_p)
            else:
                a, b = to_numpy(out_l).astype(np.float64), to_numpy(out_p).astype(np.float64)
                if a.shape != b.shape and a.size == b.size:
                    b = b.reshape(a.shape)
                diff = float(np.max(np.abs(a - b)))
                rel = diff / max(float(np.max(np.abs(b))), 1e-30)
        ratio = med_l / med_p if med_p else None
        target = f"<= {max_ratio}" if max_ratio is not None else ""
        row = Row(family, name, setting, peer, med_l, med_p, ratio, target, m_l, m_p, diff, rel, note)
        if max_ratio is not None and ratio is not None:
            row.extra["met"] = "yes" if ratio <= max_ratio else "NO"
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    def record(self, family: str, name: str, seconds: float, setting: str = "", note: str = "",
               mem_mb: float = 0.0, met: str = "") -> Row:
        """A row without a peer (throughput, a bound to meet)."""
        row = Row(family, name, setting, "-", seconds, None, None, "", mem_mb, None, None, None, note)
        if met:
            row.extra["met"] = met
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    @staticmethod
    def format_row(r: Row) -> str:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        return (f"| {r.name} | {r.setting} | {r.peer} | {f(r.lumos_s, '.4f')} | {f(r.peer_s, '.4f')} | "
                f"{f(r.ratio, '.2f')} | {r.target} {r.met} | {f(r.lumos_mb, '.0f')} | {f(r.peer_mb, '.0f')} | "
                f"{f(r.max_abs_diff, '.2e')} | {f(r.rel_diff, '.2e')} | {r.note} |")

    def to_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.rows]
