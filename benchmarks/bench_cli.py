"""`lumos demo` end to end, as on a fresh machine (issue 8 target: under 3 minutes).

Runs the installed command in a fresh process with an empty weight cache, so the time
includes importing lumos, training the CNN on the bundled digits, explaining with every
applicable method, evaluating and writing the HTML report; then once more with the
cache filled (what a second run costs).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAMILY = "cli"


def _demo(cache: Path, out: Path) -> float:
    env = {**os.environ, "LUMOS_CACHE": str(cache)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lumos.cli", "--quiet", "demo", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"lumos demo failed: {done.stderr.strip()[-500:]}")
    return seconds


def run(h):
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "demo.html"
        cold = _demo(cache, out)
        size = out.stat().st_size / 1e6
        h.record(FAMILY, "lumos demo, empty cache", cold, setting="bundled digits, CNN trained, 6 inputs, every method",
                 note=f"report {size:.1f} MB; target < 180 s", met="yes" if cold < 180 else "NO")
        warm = _demo(cache, out)
        h.record(FAMILY, "lumos demo, cached weights", warm, setting="second run, weights loaded from the cache")
