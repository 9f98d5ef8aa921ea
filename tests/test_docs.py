"""The documentation site builds with warnings as errors, its reference pages are generated
from the code (every registered method and metric appears), and the getting-started code
runs as printed (issue 20, item 5)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
pytest.importorskip("sphinx", reason="the docs need the test extra (sphinx, myst-parser)")
pytest.importorskip("myst_parser", reason="the docs need the test extra (sphinx, myst-parser)")

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = sorted((DOCS / "guide").glob("*.md"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    doctrees = tmp_path_factory.mktemp("doctrees")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
                          str(doctrees), str(DOCS), str(out)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert run.returncode == 0, f"sphinx-build -W failed:\n{run.stderr[-6000:]}"
    return out


def test_site_builds_with_warnings_as_errors(site):
    for page in ("index", "methods", "evaluation", "cli", "benchmarks", "api", "guide/models", "guide/tabular",
                 "guide/images", "guide/timeseries", "guide/text", "guide/transformers"):
        assert (site / f"{page}.html").exists(), page


def test_reference_pages_cover_the_registry(site):
    import lumos
    from lumos.metrics.evaluate import METRICS

    for page in ("methods", "evaluation", "cli", "guide/models"):  # generated reST rendered, not shown as text
        text = (site / f"{page}.html").read_text(encoding="utf-8")
        assert ".. list-table::" not in text and ".. code-block::" not in text and ":class:`" not in text, page
    methods = (site / "methods.html").read_text(encoding="utf-8")
    assert "<table" in methods and 'href="api.html#lumos.methods.gradient.integrated_gradients.IntegratedGradients"' \
        in methods  # the class column links into the API reference
    for name in lumos.list_methods():
        assert f">{name}<" in methods, f"method {name} missing from the method table"
    metrics = (site / "evaluation.html").read_text(encoding="utf-8")
    for name in METRICS:
        assert f">{name}<" in metrics, f"metric {name} missing from the metric table"
    api = (site / "api.html").read_text(encoding="utf-8")
    assert "lumos.methods.gradient.integrated_gradients.IntegratedGradients" in api
    formats = (site / "guide" / "models.html").read_text(encoding="utf-8")
    assert "onnxruntime" in formats and "TorchScript / torch.export" in formats
    cli = (site / "cli.html").read_text(encoding="utf-8")
    assert "lumos explain" in cli and "--model" in cli


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_getting_started_code_runs_as_printed(page, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    monkeypatch.chdir(tmp_path)
    for k, code in enumerate(blocks):
        exec(compile(code, f"{page}:block {k}", "exec"), {"__name__": "__docs__"})
    matplotlib.pyplot.close("all")
