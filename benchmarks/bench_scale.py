"""explain_dataset throughput and memory.

1. IG (32 steps) over MNIST test images with a small CNN: the local engine against a
   hand-written loop over the same explainer (target: >= 0.9x its throughput).
2. The Dask engine with 2 one-thread workers against a 1-thread local run (target:
   >= 1.6x its throughput). The cluster is started before timing.
3. Peak RSS of the local engine on memory-mapped tables of 10k and 100k rows (target:
   within 10%).

``LUMOS_BENCH_SCALE_ROWS`` sets the number of MNIST images (default 2000 of the 10,000).
GPU rows are added when torch sees CUDA.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from lumos.core.batching import chunk_slices
from lumos.data import find_data_dir
from lumos.methods.gradient import IntegratedGradients
from lumos.models.reference import CNN2d
from lumos.scale import explain_dataset

BATCH = 128


def _mnist(tmp: Path, n: int) -> np.ndarray:
    with np.load(find_data_dir("mnist.npz") / "mnist.npz", allow_pickle=False) as d:
        X = (d["X_test"][:n].astype(np.float32) / 255.0)[:, None]
    np.save(tmp / "mnist.npy", X)
    return np.load(tmp / "mnist.npy", mmap_mode="r")


def _hand_loop(model, X):
    ig = IntegratedGradients(model, n_steps=32)
    out = np.empty(X.shape, dtype=np.float32)
    for sl in chunk_slices(len(X), BATCH):
        out[sl] = ig.explain(np.asarray(X[sl])).values
    return out


def _local(model, X, out, **kw):
    return explain_dataset(model, X, "integrated_gradients", out=out, chunk_rows=BATCH, n_steps=32,
                           overwrite=True, progress=False, **kw)[:].values


def _agree(a, b):
    diff = float(np.max(np.abs(a - b)))
    return diff, diff / max(float(np.max(np.abs(b))), 1e-30)


def run(h):
    n = int(os.environ.get("LUMOS_BENCH_SCALE_ROWS", "2000"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread per process is the fair, stable setting
    try:
        _run(h, n)
    finally:
        torch.set_num_threads(threads)


def _run(h, n):
    tmp = Path(tempfile.mkdtemp(prefix="lumos-bench-scale-"))
    try:
        torch.manual_seed(0)
        model = CNN2d(1, 10, channels=(8, 16))
        X = _mnist(tmp, n)
        setting = f"IG 32 steps, {n} MNIST test images, CNN(8,16), batch {BATCH}, torch threads {torch.get_num_threads()}"
        row = h.compare("scale", "explain_dataset local", lambda: _local(model, X, tmp / "a.zarr"),
                        lambda: _hand_loop(model, X), "hand-written loop", setting=setting, max_ratio=round(1 / 0.9, 3),
                        repeats=2, agreement=_agree)
        h.record("scale", "local throughput", row.lumos_s, setting=setting, note=f"{n / row.lumos_s:.0f} inputs/s")
        _dask_vs_one_thread(h, model, X, tmp, n)
        if torch.cuda.is_available():
            gpu = h.compare("scale", "explain_dataset local cuda", lambda: _local(model, X, tmp / "g.zarr", device="cuda"),
                            lambda: _hand_loop(model.cuda(), X), "hand-written loop cuda", setting=setting,
                            repeats=2, agreement=_agree)
            model.cpu()
            h.record("scale", "GPU throughput", gpu.lumos_s, setting=setting, note=f"{n / gpu.lumos_s:.0f} inputs/s")
        _rss(h, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dask_vs_one_thread(h, model, X, tmp, n):
    import distributed

    def one_thread():
        return _local(model, X, tmp / "b.zarr")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        client.run(lambda: __import__("lumos.scale"))  # imports done before timing, as on a running cluster
        t0 = time.perf_counter()
        _local(model, X[:BATCH * 2], tmp / "warm.zarr", engine="dask", client=client)
        warm = time.perf_counter() - t0
        row = h.compare("scale", "explain_dataset dask 2 workers", lambda: _local(model, X, tmp / "c.zarr", engine="dask",
                        client=client), one_thread, "local engine, 1 thread",
                        setting=f"IG 32 steps, {n} MNIST images, 2 workers x 1 thread (cluster started before timing)",
                        max_ratio=round(1 / 1.6, 3), repeats=2, agreement=_agree,
                        note=f"first call on a fresh cluster (2 chunks) {warm:.1f}s")
        h.record("scale", "dask speed-up over 1 thread", row.lumos_s, note=f"{row.peer_s / row.lumos_s:.2f}x "
                 f"({n / row.lumos_s:.0f} vs {n / row.peer_s:.0f} inputs/s); target >= 1.6x",
                 met="yes" if row.peer_s / row.lumos_s >= 1.6 else "NO")


_CHILD = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from lumos.methods.gradient import Saliency
from lumos.models.reference import MLP
from lumos.scale import explain_dataset
torch.manual_seed(0)
model = MLP(256, 10, hidden=(64,))
data = np.load(sys.argv[1], mmap_mode="r")
base = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
t0 = time.perf_counter()
explain_dataset(None, data, Saliency(model), out=sys.argv[2], chunk_rows=256, progress=False)
dt = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]  # peak RSS of this process image
print(json.dumps({"base_mb": base, "peak_mb": int(hwm) / 1024, "s": dt}))
"""


def _rss(h, tmp):
    """Each size in a fresh process: peak RSS of the whole process (VmHWM; ru_maxrss would carry the parent's peak across exec) and its
    increase over the RSS after imports and model creation."""
    import json
    import subprocess
    import sys

    peaks = {}
    for rows in (10_000, 100_000):
        path = tmp / f"table{rows}.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 256))
        for sl in chunk_slices(rows, 10_000):
            mm[sl] = np.random.default_rng(sl.start).normal(size=(sl.stop - sl.start, 256))
        mm.flush()
        del mm
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp / f"rss{rows}.zarr")],
                             capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        res = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[rows] = res["peak_mb"]
        h.record("scale", f"peak RSS, memmap {rows} rows", res["s"], mem_mb=res["peak_mb"],
                 setting="saliency, MLP(256-64-10), batch 256, float32 memmap, fresh process",
                 note=f"{rows / res['s']:.0f} inputs/s; file {rows * 256 * 4 / 2**20:.0f} MB; "
                      f"peak {res['peak_mb']:.0f} MB = {res['base_mb']:.0f} MB after imports + "
                      f"{res['peak_mb'] - res['base_mb']:.0f} MB")
        shutil.rmtree(tmp / f"rss{rows}.zarr", ignore_errors=True)
        path.unlink()
    ratio = peaks[100_000] / peaks[10_000]
    h.record("scale", "peak RSS 100k / 10k rows", 0.0, note=f"{ratio:.3f} ({peaks[10_000]:.0f} MB vs "
             f"{peaks[100_000]:.0f} MB whole-process peak); target within 10%",
             met="yes" if abs(ratio - 1) <= 0.10 else "NO")
