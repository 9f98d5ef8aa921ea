"""Timing harness: the same call made by lumos and by a peer library, in one process,
with interleaved repeats, median wall time, peak resident memory above the baseline,
the wall-time ratio lumos/peer and the numerical agreement of the results.

A row can also carry a *floor* (:mod:`benchmarks.floors`): the model passes the method
needs as one plain PyTorch loop at its fastest chunk size, timed in the same interleaved
repeats; ``lumos / floor`` is then what lumos adds to the model's own time.

On a GPU (``Harness(device="cuda")``) every clock is stopped after
``torch.cuda.synchronize()`` and the memory columns are the GPU's peak allocation above
what was allocated before the call."""
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
    floor_s: float | None = None
    floor_ratio: float | None = None

    @property
    def met(self) -> str:
        return self.extra.get("met", "")

    @property
    def floor_target(self) -> str:
        t = self.extra.get("floor_target")
        return "" if t is None else f"<= {t} {self.extra.get('floor_met', '')}"


def _device_type(device) -> str:
    import torch

    return torch.device(device).type


def _is_cuda(device) -> bool:
    return device is not None and _device_type(device) == "cuda"


def _sync(device) -> None:
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize()


def _peak_memory(fn: Callable[[], Any], device=None) -> tuple[float, Any]:
    """Peak RSS growth (MB) during one call, and the call's output; on CUDA the peak GPU
    allocation above the memory allocated before the call. Not a timing: the RSS watcher
    wakes every 2 ms and takes the GIL."""
    if _is_cuda(device):
        import torch

        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20, out
    with PeakRSS() as mem:
        out = fn()
    return mem.delta_mb, out


def _clock(fn: Callable[[], Any], device=None, cpu: list | None = None) -> float:
    """Wall time of one call with nothing else running (no RSS watcher); on CUDA the
    clock stops after the device has finished. The process's CPU time of the call is
    appended to ``cpu`` when given."""
    gc.collect()
    _sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    _sync(device)
    t = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return t


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


class Harness:
    """Collects comparison rows for one run of the benchmarks."""

    def __init__(self, repeats: int = 5, quick: bool = False, device=None, only=None):
        self.repeats = 2 if quick else repeats
        self.quick = quick
        self.only = set(only) if only else None
        """Row names to run (``benchmarks.run --only``); None: every row. A benchmark may ask
        :meth:`wants` before building a row's inputs and floor; :meth:`compare` and
        :meth:`record` skip (return None for) the rows not asked for in any case."""
        self.device = None if device is None or _device_type(device) == "cpu" else str(device)
        """None (the CPU: nothing moves, lumos gets ``device=None`` as before) or the torch
        device the benchmarks move models and inputs to and pass to lumos
        (``benchmarks.run --device cuda``)."""
        self.rows: list[Row] = []

    def wants(self, name: str) -> bool:
        """Whether the row ``name`` is to be run (``--only``)."""
        return self.only is None or name in self.only

    def to(self, obj):
        """A model or tensor on the harness's device (the object itself on the CPU)."""
        return obj if self.device is None else obj.to(self.device)

    def compare(self, family: str, name: str, lumos_fn: Callable[[], Any], peer_fn: Callable[[], Any] | None,
                peer: str, setting: str = "", max_ratio: float | None = None, repeats: int | None = None,
                agreement: Callable[[Any, Any], tuple[float, float]] | None = None, note: str = "",
                floor_fn: Callable[[], Any] | None = None, floor_target: float | None = None) -> Row:
        """Time ``lumos_fn`` against ``peer_fn`` and ``floor_fn`` (interleaved: each once per
        repeat, the first of them rotating) and record a row.

        ``agreement(lumos_out, peer_out) -> (max_abs_diff, rel_diff)``; by default the
        outputs are turned into arrays and compared elementwise (relative to max |peer|).
        ``max_ratio`` is the issue's target for lumos/peer wall time. ``floor_fn`` is the
        plain PyTorch loop of the model passes the method needs (a
        :class:`benchmarks.floors.Floor`, whose ``label`` is recorded), ``floor_target``
        the target for lumos/floor.
        """
        if not self.wants(name):
            return None
        repeats = repeats or self.repeats
        dev = self.device
        m_l, out_l = _peak_memory(lumos_fn, dev)  # warm-up: yields the outputs and the peak memory
        m_p = out_p = None
        if peer_fn is not None:
            m_p, out_p = _peak_memory(peer_fn, dev)
        if floor_fn is not None:
            floor_fn()  # warm-up
        times_l, times_p, times_f = [], [], []
        cpu = {"lumos": [], "peer": [], "floor": []}
        calls = [(lumos_fn, times_l, cpu["lumos"])] + [
            (fn, ts, cpu[k]) for fn, ts, k in ((peer_fn, times_p, "peer"), (floor_fn, times_f, "floor")) if fn is not None]
        for i in range(repeats):
            k = i % len(calls)  # rotate who goes first, so that no call always follows the same one
            for fn, ts, c in calls[k:] + calls[:k]:
                ts.append(_clock(fn, dev, c))
        med_l = statistics.median(times_l)
        med_p = statistics.median(times_p) if times_p else None
        med_f = statistics.median(times_f) if times_f else None
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
        if med_f is not None:
            self._set_floor(row, med_f, getattr(floor_fn, "label", ""), floor_target)
        # best-of-repeats ratios: on a shared machine the fastest call is the least disturbed one
        row.extra["min_s"] = {"lumos": min(times_l), "peer": min(times_p) if times_p else None,
                              "floor": min(times_f) if times_f else None}
        # CPU time of the process (medians): with one torch thread on the CPU it is the work
        # itself, whatever else the machine runs (wall time also counts waiting for a core)
        row.extra["threads"] = _torch_threads()
        if dev is None:
            row.extra["cpu_s"] = {k: statistics.median(v) if v else None for k, v in cpu.items()}
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    @staticmethod
    def _set_floor(row: Row, floor_s: float, label: str, target: float | None) -> None:
        row.floor_s = floor_s
        row.floor_ratio = row.lumos_s / floor_s if floor_s > 0 else None
        if label:
            row.extra["floor"] = label
        if target is not None and row.floor_ratio is not None:
            row.extra["floor_target"] = target
            row.extra["floor_met"] = "yes" if row.floor_ratio <= target else "NO"

    def record(self, family: str, name: str, seconds: float, setting: str = "", note: str = "",
               mem_mb: float = 0.0, met: str = "", floor_s: float | None = None, floor_label: str = "",
               floor_target: float | None = None) -> Row:
        """A row without a peer (throughput, a bound to meet), with its floor when given."""
        if not self.wants(name):
            return None
        row = Row(family, name, setting, "-", seconds, None, None, "", mem_mb, None, None, None, note)
        if met:
            row.extra["met"] = met
        if floor_s is not None:
            self._set_floor(row, floor_s, floor_label, floor_target)
        self.rows.append(row)
        print(self.format_row(row), flush=True)
        return row

    def time_once(self, fn: Callable[[], Any]) -> float:
        """Wall time of one call (synchronised on CUDA)."""
        return _clock(fn, self.device)

    @staticmethod
    def format_row(r: Row) -> str:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        note = r.note
        parts = [note] if note else []
        mins = r.extra.get("min_s") or {}
        best = [f"lumos/{k} {mins['lumos'] / mins[k]:.2f}" for k in ("peer", "floor") if mins.get(k)]
        if best:
            parts.append(f"best of repeats: {', '.join(best)}")
        cpu = r.extra.get("cpu_s") or {}
        if r.extra.get("threads") == 1 and cpu.get("lumos"):
            ratios = [f"lumos/{k} {cpu['lumos'] / cpu[k]:.2f}" for k in ("peer", "floor") if cpu.get(k)]
            if ratios:
                parts.append(f"CPU time: {', '.join(ratios)}")
        if r.extra.get("run_alone"):
            parts.append(f"re-run alone {r.extra['run_alone']} (--only)")
        note = "; ".join(parts)
        if r.extra.get("floor"):
            note = f"{note}; floor: {r.extra['floor']}" if note else f"floor: {r.extra['floor']}"
        return (f"| {r.name} | {r.setting} | {r.peer} | {f(r.lumos_s, '.4f')} | {f(r.peer_s, '.4f')} | "
                f"{f(r.floor_s, '.4f')} | {f(r.ratio, '.2f')} | {r.target} {r.met} | {f(r.floor_ratio, '.2f')} | "
                f"{r.floor_target} | {f(r.lumos_mb, '.0f')} | {f(r.peer_mb, '.0f')} | "
                f"{f(r.max_abs_diff, '.2e')} | {f(r.rel_diff, '.2e')} | {note} |")

    def to_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.rows]


def one_thread(run_fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A family's ``run(h)`` on one torch thread (the peers compared are single-threaded there),
    the caller's thread count restored afterwards, also when the run fails."""

    def run(h):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run_fn(h)
        finally:
            torch.set_num_threads(threads)

    run.__doc__ = run_fn.__doc__
    return run
