"""The report's evaluation: MetricInfo's direction and needs in each column's tooltip
(escaped), the deletion curves readable with many methods (the 5 best in colour), and
CAM maps at the layer's resolution labelled on their panel (and only there: no footnote repeats it)."""
from __future__ import annotations

import numpy as np
import torch

from lumos.plot import panels as figures
from lumos.report.html import _eval_table


def test_tooltips_carry_direction_and_needs_escaped():
    rows = [{"method": "a<b>", "family": "x", "aopc": 0.5, "aopc_sd": 0.1, "gini": 0.3, "mass": 0.7,
             "metrics.deletion AUC ↓": 0.2}]
    html = _eval_table(rows)
    assert "title='area over the deletion curve" in html
    assert "Higher is better; needs model, attributions (lumos.metrics.pixel_flipping)'" in html
    assert "needs attributions, mask (lumos.metrics.relevance_mass_accuracy)" in html
    assert "lower is better. needs model, attributions (lumos.metrics.deletion)" in html  # direction said once
    assert "a&lt;b&gt;" in html and "<b>a<b>" not in html


def test_deletion_curves_highlight_the_best_five(monkeypatch):
    monkeypatch.setattr(figures, "to_png", lambda fig: fig)
    steps = np.linspace(0, 1, 11)
    curves = {f"m{k}": np.tile(np.exp(-steps * (k + 1)), (3, 1)) for k in range(18)}
    curves["random"] = np.tile(1 - steps, (3, 1))
    fig = figures.render_curves(curves, "deletion")
    ax = fig.axes[0]
    wide = [ln for ln in ax.lines if ln.get_linewidth() == 2.0 and ln.get_linestyle() == "-"]
    grey = [ln for ln in ax.lines if ln.get_color() == "0.7"]
    assert len(wide) == 5 and len(grey) == 13 and len(ax.lines) == 19
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "13 other methods (grey)" and labels[1].startswith("m17 (AOPC") and labels[-1] == "random"
    assert "the 5 best of 18 methods" in ax.get_title()
    few = figures.render_curves({k: curves[k] for k in ("m0", "m1", "random")}, "deletion")
    assert [t.get_text() for t in few.axes[0].get_legend().get_texts()] == ["m0", "m1", "random"]


def test_cam_panels_say_they_are_layer_resolution(monkeypatch):
    from lumos.models import CNN2d
    from lumos.report import build_report

    torch.manual_seed(0)
    model = CNN2d(1, 3, channels=(4, 8)).eval()
    seen = []
    real = figures.render_row

    def spy(x, panels, layout, **kw):
        seen.append([t for t, _ in panels])
        return real(x, panels, layout, **kw)

    monkeypatch.setattr(figures, "render_row", spy)
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    report = build_report(model, x, methods=["grad_cam", "saliency"], n_classes=1)
    titles = seen[0]
    cam = [t for t in titles if t.startswith("grad_cam")][0]
    assert cam == "grad_cam\n[4 × 4 layer map, upsampled]"  # the label says it: no footnote repeats it
    assert "saliency" in titles
    assert not any("layer's resolution" in n or "coarse by design" in n for n in report.notes)
    assert "coarse by design" not in report.html


def test_lrp_completeness_gap_is_explained_as_absorbed_relevance():
    """The demo report showed LRP with |δ| = 0.86 beside Deep Taylor's 1e-5 and no word why: the
    report now splits it into the relevance LRP's rules keep at biases (by design) and the residual."""
    from lumos.data import load_digits
    from lumos.models import CNN2d
    from lumos.report.builder import build_report

    torch.manual_seed(0)
    ds = load_digits()
    model = CNN2d(1, 10, channels=(4, 8)).eval()
    report = build_report(model, ds.X_test[:3], y=ds.y_test[:3], layout="image", methods=["lrp", "saliency"],
                          n_classes=1, x_eval=ds.X_test[:20], y_eval=ds.y_test[:20])
    rows = {r["method"]: r for r in report.evaluation}
    lrp = rows["lrp"]
    assert lrp["abs_delta"] > 1e-3  # the biases keep relevance
    assert abs(lrp["absorbed"] - lrp["abs_delta"]) < 1e-4 and lrp["residual"] < 1e-4
    assert "absorbed" not in rows["saliency"]
    assert "absorbed by rules" in report.html and "not an error" in report.html
