"""The HTML report: content, applicability, failures as notes, evaluation maths, and a
real headless-browser check (chromium) with a kept screenshot."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

import lumos
import pytest
import torch

from lumos.core import registry
from lumos.data import load_breast_cancer, make_bump_series
from lumos.methods.base import Explainer
from lumos.models.reference import CNN1d, MLP
from lumos.report import aopc, build_report, deletion_curves, gini, mass_in_mask
from lumos.report.methods import applicability
from tests.conftest import assert_same_state, model_state


@pytest.fixture(scope="module")
def tabular():
    ds = load_breast_cancer()
    torch.manual_seed(0)
    model = MLP(30, 2, hidden=(16,))
    from lumos.models.train import fit

    fit(model, ds.X_train, ds.y_train, epochs=15, seed=0)
    return ds, model


def test_report_contains_every_part(tabular, tmp_path):
    ds, model = tabular
    before = model_state(model)
    rep = build_report(model, ds.X_test[:3], y=ds.y_test[:3], class_names=ds.class_names,
                       feature_names=ds.feature_names, methods=["saliency", "ig"], title="T")
    assert_same_state(before, model_state(model))
    html = rep.html
    assert html.count("data:image/png;base64,") == 3 * 2 + 1  # 3 inputs x 2 classes + deletion curves
    assert "http://" not in html and "https://" not in html and "<link" not in html  # self-contained
    for part in ("Evaluation", "Methods and parameters", "lumos version", "n_steps", "integrated_gradients",
                 "confidence", "random order (reference)"):
        assert part in html, part
    samples = json.loads(re.search(r'id="lumos-samples">(.*?)</script>', html, re.S).group(1))
    assert len(samples) == 3 and all(abs(sum(p for _, p in s["classes"]) - 1) < 1e-5 for s in samples)
    path = rep.save(tmp_path / "r")
    assert path.suffix == ".html" and path.read_text() == html


def test_global_importance_is_labelled_with_the_feature_names(tabular):
    ds, model = tabular
    rep = build_report(model, ds.X_test[:2], feature_names=ds.feature_names, methods=["permutation_importance"],
                       x_eval=ds.X_test[:40], y_eval=ds.y_test[:40])
    (run,) = [r for r in rep.runs if r.name == "permutation_importance"]
    assert list(run.global_explanation.feature_names) == list(ds.feature_names)


def test_series_importance_over_named_time_windows():
    from lumos.models import CNN1d
    from lumos.report.builder import time_window_importance

    opts = time_window_importance((8, 231), times=np.linspace(-0.1, 0.8, 231))
    assert len(opts["feature_names"]) == 16 and opts["feature_names"][0] == "-100 to -45 ms"
    assert opts["groups"].shape == (8, 231) and (opts["groups"][0] == opts["groups"][7]).all()  # across channels
    assert time_window_importance((1, 5))["feature_names"] == ["t 0", "t 1", "t 2", "t 3", "t 4"]
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(30, 2, 48)).astype(np.float32)
    rep = build_report(CNN1d(2, 2, channels=(4,)), x[:2], methods=["permutation_importance"], x_eval=x,
                       y_eval=np.arange(30) % 2, sfreq=100.0)
    (run,) = [r for r in rep.runs if r.name == "permutation_importance"]
    assert run.global_explanation.values.shape == (16,) and run.global_explanation.feature_names[1] == "0.03 to 0.05 s"


class _Broken(Explainer):
    needs_gradients = True

    def attribute_chunk(self, x, targets, state):
        raise RuntimeError("boom inside the method")


def test_failing_and_inapplicable_methods_become_notes(tabular):
    ds, model = tabular
    registry.register("zz_broken_for_test")(_Broken)
    try:
        rep = build_report(model, ds.X_test[:2], methods=["saliency", "zz_broken_for_test"])
        by = {r.name: r for r in rep.runs}
        assert by["saliency"].ok and "boom inside the method" in by["zz_broken_for_test"].error
        assert "failed: RuntimeError: boom inside the method" in rep.html
        rep = build_report(lambda x: np.stack([x[:, 0], -x[:, 0]], 1), ds.X_test[:2], methods=["saliency"])
        assert rep.runs[0].skipped == "needs a torch model (gradients)"
        assert "not applicable" in rep.html
    finally:
        registry._REGISTRY.pop("zz_broken_for_test", None)


def test_applicability_is_read_from_what_a_method_declares():
    # names no longer matter: a class that calls itself "grad_cam" but declares nothing applies anywhere
    plain = type("Plain", (Explainer,), {"name": "grad_cam"})
    assert applicability(plain, MLP(3, 2), "tabular") is None
    cam = type("LayerNeeding", (Explainer,), {"name": "x", "needs_gradients": True, "needs_layer": True,
                                              "layouts": ("timeseries", "image")})
    att = type("Att", (Explainer,), {"name": "y", "needs_attention": True})
    assert "not tabular" in applicability(cam, MLP(3, 2), "tabular")
    assert applicability(cam, CNN1d(1, 2), "timeseries") is None
    assert "layer" in applicability(cam, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)), "timeseries")
    assert "attention" in applicability(att, CNN1d(1, 2), "timeseries")
    scripted = torch.jit.script(CNN1d(1, 2))
    assert "TorchScript" in applicability(lumos.GradCAM, scripted, "timeseries")
    assert applicability(lumos.Saliency, scripted, "timeseries") is None


def test_deletion_curve_and_aopc_exact_on_linear_model():
    w = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    model = torch.nn.Linear(4, 1, bias=False)
    model.weight.data = w
    two = torch.nn.Sequential(model, _Cat())
    x = np.ones((1, 4), dtype=np.float32)
    curves = deletion_curves(two, x, np.array([[3.0, 1.0, 0.0, -1.0]]), np.array([0]), n_steps=4)
    logits = np.array([3.0, 0.0, -1.0, -1.0, 0.0])  # deleting features 0, 1, 2, 3 in turn
    np.testing.assert_allclose(curves[0], 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_allclose(aopc(curves), [np.mean(curves[0, 0] - curves[0])])
    np.testing.assert_allclose(gini(np.array([[0, 0, 0, 5.0]])), [0.75])  # (d-1)/d for one non-zero of d=4
    np.testing.assert_allclose(gini(np.ones((1, 4))), [0.0], atol=1e-12)
    v = np.array([[1.0, -2.0, 3.0, 0.0]])
    np.testing.assert_allclose(mass_in_mask(v, np.array([[True, True, False, False]])), [0.25])


class _Cat(torch.nn.Module):
    def forward(self, z):  # logit z for class 0 against 0 for class 1: softmax = sigmoid(z)
        return torch.cat([z, torch.zeros_like(z)], 1)


def test_ground_truth_mass_column_for_synthetic_series():
    ds = make_bump_series(n_samples=120, length=48, width=2.0, amplitude=3.0, noise=0.3, seed=0)
    torch.manual_seed(0)
    model = CNN1d(1, 2, channels=(8, 8))
    from lumos.models.train import fit

    fit(model, ds.X_train, ds.y_train, epochs=15, lr=3e-3, seed=0)
    idx = np.where(ds.y_test == 1)[0][:4]
    rep = build_report(model, ds.X_test[idx], y=ds.y_test[idx], masks=ds.mask_test[idx], methods=["gxi"],
                       class_names=ds.class_names)
    mass = {r["method"]: r["mean"] for r in rep.evaluation if r["metric"] == "relevance_mass_accuracy"}
    assert 0 <= mass["gradient_x_input"] <= 1 and "relevance_mass_accuracy ↑" in rep.html


# -- a real browser ------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); browser test skipped")


def _run(browser, args, tmp_path):
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_in_headless_chromium(tmp_path):
    browser = _chromium()
    from lumos.data import load_digits
    from lumos.models.cache import train_reference

    ds = load_digits()
    model, _ = train_reference(ds, epochs=10, progress=False, cache=False)
    path = build_report(model, ds.X_test[:4], y=ds.y_test[:4], class_names=ds.class_names).save(
        tmp_path / "report.html")
    out = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", f"file://{path}#selftest"], tmp_path)
    m = re.search(r'<pre id="lumos-selftest">(.*?)</pre>', out.stdout, re.S)
    assert m, f"the page's self-test did not run; chromium said: {out.stderr[-500:]}"
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == [], result["errors"]
    assert result["images"] == 4 * 3 + 1 and result["broken"] == 0
    assert result["before"] == ["0:0"] and result["after_sample"] == ["1:0"] and result["after_class"] == ["1:1"]
    assert "Input 2 of 4" in result["summary"]
    shot = tmp_path / "report_screenshot.png"  # under pytest's tmp path: tests write nowhere else
    _run(browser, [f"--screenshot={shot}", "--window-size=1400,2000", f"file://{path}"], tmp_path)
    assert shot.exists() and shot.stat().st_size > 20_000  # a page with figures, not a blank one


# -- user strings never become markup or script --------------------------------------------------
PAYLOAD = "<img src=x onerror=\"document.title='XSS'\">"
SCRIPT_BREAK = "</script><script>document.title='XSS2'</script>"


def _payload_report(tmp_path, class_names_option: bool):
    """``lumos report`` on a 3-class model whose class names (from --class-names or from the
    .npz), feature names and data file name carry markup."""
    from lumos.cli import main

    torch.manual_seed(0)
    model = MLP(4, 3, hidden=(8,)).eval()
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    names = [PAYLOAD, "b" + SCRIPT_BREAK, "c\u2028&amp;<!--"]
    data = tmp_path / "d<b onmouseover=alert(1)>.npz"
    np.savez(data, X=x, y=np.arange(6) % 3, feature_names=np.array(["<i>f0</i>", "f$1$", "f2", "f3"]),
             **({} if class_names_option else {"class_names": np.array(names)}))
    out = tmp_path / "r.html"
    args = ["-q", "report", "--model", str(tmp_path / "m.pt"), "--data", str(data), "--methods", "saliency",
            "--n-samples", "3", "--out", str(out)]
    if class_names_option:
        args += ["--class-names", ",".join(names)]
    assert main(args) == 0
    return out, names


def _elements(html: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every element of a page as (tag, sorted attribute names), in document order, ignoring
    the select's options and the per-input rows (their number depends on the data)."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in ("option", "div", "img", "button", "tr", "td", "th", "li", "b"):
                found.append((tag, tuple(sorted(name for name, _ in attrs))))
            elif any(name.startswith("on") for name, _ in attrs):
                found.append((tag, tuple(sorted(name for name, _ in attrs))))

    Collect().feed(html)
    return found


def test_user_strings_are_escaped_and_the_policy_allows_only_the_page_scripts(tmp_path):
    import base64
    import hashlib

    path, names = _payload_report(tmp_path, class_names_option=True)
    html = path.read_text()
    assert "<img src=x" not in html and "<b onmouseover" not in html and "<i>f0" not in html
    assert SCRIPT_BREAK not in html
    block = re.search(r'id="lumos-samples">(.*?)</script>', html, re.S).group(1)
    assert not set("<>&\u2028\u2029") & set(block)  # nothing in the data can close the element
    assert _elements(html) == _elements(build_report(MLP(4, 3, hidden=(8,)), np.zeros((3, 4), np.float32),
                                                     methods=["saliency"]).html)  # the markup is the page's own
    samples = json.loads(block)
    assert [c for c, _ in samples[0]["classes"]] and set(c for c, _ in samples[0]["classes"]) <= set(names)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html).group(1)
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "unsafe-inline" not in script_src
    scripts = [m.group(2) for m in re.finditer(r"<script( [^>]*)?>(.*?)</script>", html, re.S)
               if "application/json" not in (m.group(1) or "")]
    assert len(scripts) == 2
    for src in scripts:
        digest = base64.b64encode(hashlib.sha256(src.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert html.index("Content-Security-Policy") < html.index("<script")


@pytest.mark.parametrize("class_names_option", [True, False], ids=["--class-names", "npz"])
def test_markup_in_names_does_not_run_in_chromium(tmp_path, class_names_option):
    browser = _chromium()
    path, names = _payload_report(tmp_path, class_names_option)
    out = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", f"file://{path}#selftest"], tmp_path)
    m = re.search(r'<pre id="lumos-selftest">(.*?)</pre>', out.stdout, re.S)
    assert m, f"the page's self-test did not run; chromium said: {out.stderr[-500:]}"
    import html as htmllib

    result = json.loads(htmllib.unescape(m.group(1)))
    assert result["errors"] == [], result["errors"]  # no script blocked by the policy, none failed
    title = re.search(r"<title>(.*?)</title>", out.stdout, re.S).group(1)
    assert htmllib.unescape(title) == "lumos report: d<b onmouseover=alert(1)>.npz"  # not 'XSS'
    tags = _elements(out.stdout)
    assert not [t for t in tags if any(a.startswith("on") for a in t[1])], "an element got an event handler"
    assert [t for t in tags if t[0] == "script"] == [("script", ()), ("script", ("id", "type")), ("script", ())]
    sources = re.findall(r'<img[^>]* src="([^"]*)"', out.stdout)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    buttons = [htmllib.unescape(b) for b in re.findall(r'<button[^>]*data-rank="\d"[^>]*>(.*?)</button>', out.stdout)]
    assert buttons and all(any(b.startswith(n.replace("\u2028", " ")) or b.startswith(n) for n in names)
                           for b in buttons), buttons
    assert PAYLOAD in result["summary"] or "b" + SCRIPT_BREAK in result["summary"]  # shown as text


def test_the_policy_blocks_inline_handlers_even_if_markup_slipped_in(tmp_path):
    browser = _chromium()
    path, _ = _payload_report(tmp_path, class_names_option=True)
    injected = ("<img src=\"data:,\" onerror=\"document.title='XSS1'\"><script>document.title='XSS2'</script>"
                "<img src=\"https://example.invalid/x.png\">")
    page = path.read_text().replace("<main>", "<main>" + injected, 1)
    path.write_text(page)
    out = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", f"file://{path}#selftest"], tmp_path)
    assert re.search(r"<title>lumos report: .*</title>", out.stdout), "the injected script or handler ran"
    m = re.search(r'<pre id="lumos-selftest">(.*?)</pre>', out.stdout, re.S)
    assert m, out.stderr[-500:]  # the page's own script still runs
    import html as htmllib

    errors = json.loads(htmllib.unescape(m.group(1)))["errors"]
    blocked = {e.rsplit(": ", 1)[1] for e in errors if "content security policy" in e}
    assert {"script-src-elem", "img-src"} <= blocked, errors
    # the control: without the policy the same injected markup does run
    path.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page))
    out = _run(browser, ["--virtual-time-budget=5000", "--dump-dom", f"file://{path}"], tmp_path)
    assert re.search(r"<title>XSS[12]</title>", out.stdout), out.stdout[:300]
