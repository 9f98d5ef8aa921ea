"""The README's quick start runs as printed (copied from the page, not rewritten here)."""
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_quick_start_runs(tmp_path):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the snippet saves ig.npz in the working directory
    try:
        namespace: dict = {}
        exec(compile(code, str(README) + ":quick start", "exec"), namespace)
    finally:
        os.chdir(cwd)
        matplotlib.pyplot.close("all")
    ig, lrp, x = namespace["ig"], namespace["lrp"], namespace["x"]
    assert ig.values.shape == x.shape and lrp.values.shape == x.shape
    assert abs(ig.delta).max() < 0.05  # 64 steps: completeness holds to a few percent of the logit
    assert (tmp_path / "ig.npz").exists()
