"""The report's evaluation: lumos.evaluate's EvaluationTable (the metric names, ↑/↓, mean ± s.e.
and values of lumos.evaluate on the explanations the report holds), MetricInfo's direction, needs
and the options in each column's tooltip (escaped), the deletion curves readable with many methods (the 5 best in colour), and
CAM maps at the layer's resolution labelled on their panel (and only there: no footnote repeats it)."""
from __future__ import annotations

import re

import numpy as np
import torch

from lumos.plot import panels as figures
from lumos.report.html import _eval_table


def _table():
    from lumos.metrics import deletion, relevance_mass_accuracy, sparseness
    from lumos.metrics.evaluate import RANDOM_ROW, EvaluationTable, score_row

    rows = [score_row("a<b>", "deletion", deletion, np.array([0.2, 0.4])),
            score_row("a<b>", "sparseness", sparseness, np.array([0.3, 0.5])),
            score_row("a<b>", "relevance_mass_accuracy", relevance_mass_accuracy, np.array([0.7, 0.9])),
            score_row("c", "deletion", deletion, np.array([0.1, 0.1])),
            score_row(RANDOM_ROW, "deletion", deletion, np.array([0.05, 0.05]))]
    return EvaluationTable(rows, {"metric_functions": {"deletion": deletion, "sparseness": sparseness,
                                                       "relevance_mass_accuracy": relevance_mass_accuracy},
                                  "metric_options": {"deletion": {"n_steps": 20, "baseline": np.zeros(3)}},
                                  "methods": {"a<b>": {"family": "x<y>", "seconds": 1.5}, "c": {"family": "z",
                                                                                              "seconds": 2.0}}})


def test_tooltips_carry_direction_needs_and_options_escaped():
    html = _eval_table(_table())
    assert "title='deletion AUC (Petsiuk et al. 2018): area under" in html
    assert ("Lower is better; needs model, attributions (lumos.metrics.deletion(n_steps=20, baseline=per feature))'"
            in html)
    assert "Higher is better; needs attributions, mask (lumos.metrics.relevance_mass_accuracy())" in html
    assert "a&lt;b&gt;" in html and "x&lt;y&gt;" in html and "<b>a<b>" not in html and "x<y>" not in html


def test_the_report_table_has_the_names_and_cells_of_lumos_evaluate():
    """Headings and cells as EvaluationTable.to_markdown writes them (name ↑/↓, mean ± s.e.), the
    best method of each column in bold (the reference row aside), the reference row last."""
    table = _table()
    html = _eval_table(table)
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert heads == ["method", "family", "deletion ↓", "sparseness ↑", "relevance_mass_accuracy ↑", "time (s)"]
    assert heads[2:5] == table.to_markdown(3).splitlines()[0].strip("| ").split(" | ")[1:]
    assert f"<td class='num'>{table.cell('a<b>', 'deletion', 3)}</td>" in html  # 0.30 ± 0.10
    assert table.cell("a<b>", "deletion", 3) == "0.30 ± 0.10"
    assert "<td class='num best'>0.1 ± 0</td>" in html  # c: the lowest deletion; the random row's 0.05 is no rival
    body = html.split("</tr>")
    assert "random order (reference)" in body[-2] and "class='ref'" in body[-2]


def test_methods_tied_with_the_best_within_two_standard_errors_are_bold_too():
    from lumos.metrics import deletion
    from lumos.metrics.evaluate import EvaluationTable, score_row

    rows = [score_row("best", "deletion", deletion, np.array([0.10, 0.12, 0.11, 0.13])),
            score_row("tie", "deletion", deletion, np.array([0.11, 0.13, 0.12, 0.12])),
            score_row("worse", "deletion", deletion, np.array([0.50, 0.52, 0.51, 0.53]))]
    html = _eval_table(EvaluationTable(rows, {"metric_functions": {"deletion": deletion}}))
    bold = re.findall(r"<tr><td>([^<]*)</td><td>[^<]*</td><td class='num best'>", html)
    assert bold == ["best", "tie"]


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
    table = report.evaluation
    got = {(r["method"], r["metric"]): r["mean"] for r in table}
    assert got[("lrp", "absorbed_relevance")] > 1e-3  # the biases keep relevance: by design
    assert got[("lrp", "completeness_residual")] < 1e-4  # the real error
    assert ("saliency", "absorbed_relevance") not in got and ("saliency", "completeness_residual") not in got
    assert "absorbed_relevance" in report.html and "not an error" in report.html


def test_report_rows_equal_lumos_evaluate_on_the_same_explanation():
    """The report's table is lumos.evaluate's: the same metric names, directions and values (mean and
    s.e.) as lumos.evaluate with the report's options on the explanations the report holds; the
    completeness residual equals the registered metric re-running the explainer; the reference row
    is lumos.evaluate on random_order(seed); the deletion figure uses the table's deletion curves."""
    from lumos.data import load_digits
    from lumos.metrics import completeness_residual, evaluate
    from lumos.metrics.evaluate import RANDOM_ROW, random_order
    from lumos.models import CNN2d
    from lumos.report.builder import build_report, report_metrics

    torch.manual_seed(0)
    ds = load_digits()
    model = CNN2d(1, 10, channels=(4, 8)).eval()
    x = ds.X_test[:3]
    report = build_report(model, x, layout="image", methods=["integrated_gradients", "saliency"], n_classes=1,
                          seed=2)
    table = report.evaluation
    assert table.methods == ["integrated_gradients", "saliency", RANDOM_ROW]
    run = next(r for r in report.runs if r.name == "integrated_gradients")
    exp = run.explanations[0]
    metrics = report_metrics(0.0, np.shape(x)[1:])
    api = evaluate(model, x, exp.target, {"integrated_gradients": lambda i, t: exp.values}, metrics, progress=False)
    mine = {r["metric"]: r for r in table if r["method"] == "integrated_gradients"}
    for r in api:
        for key in ("mean", "sem", "n", "higher_is_better", "category"):
            assert mine[r["metric"]][key] == r[key], (r["metric"], key)
    residual = completeness_residual(run.explainer, model, x, exp.target, relative=False)
    np.testing.assert_allclose(mine["completeness_residual"]["mean"], residual.scores.mean(), rtol=1e-6)
    ref = evaluate(model, x, exp.target, {RANDOM_ROW: random_order(2)}, metrics, progress=False)
    assert [r["mean"] for r in ref] == [r["mean"] for r in table if r["method"] == RANDOM_ROW]
    assert set(table.attrs["curves"]["deletion"]) == {"integrated_gradients", "saliency", RANDOM_ROW}
    assert "(lumos.metrics.deletion(n_steps=20, baseline=0))" in report.html


def test_the_reports_aopc_replaces_a_fifth_of_the_regions():
    """Samek et al.'s L = 100 regions is about a sixth of a 224 x 224 image; the report replaces
    the first fifth of an input's regions (an 8 x 8 digit: 13 steps), at most 100."""
    from lumos.report.builder import report_metrics

    assert report_metrics(0.0, (1, 8, 8))["region_perturbation"][1] == {"n_steps": 13}
    assert report_metrics(0.0, (3, 224, 224))["region_perturbation"][1] == {"n_steps": 100}
    assert report_metrics(0.0, (30,))["region_perturbation"][1] == {"n_steps": 6}
    assert report_metrics(0.0)["region_perturbation"][1] == {}
