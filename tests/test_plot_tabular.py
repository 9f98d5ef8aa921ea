"""shap-style waterfall / beeswarm / bar plots, ``Explanation.plot()`` returning the Figure and
Jupyter's ``_repr_html_`` (issue 20, item 3), drawn on a real explanation and read back."""
from __future__ import annotations

import html
import subprocess
import sys
import textwrap

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401 - imread of the saved figures

import lumos  # noqa: E402
from lumos.core.explanation import Explanation  # noqa: E402
from lumos.methods.agnostic.shapley import ExactShapley  # noqa: E402
from lumos.plot import bar, beeswarm, waterfall  # noqa: E402

NAMES = [f"feature {i}" for i in range(12)]


@pytest.fixture(scope="module")
def shap_explanation():
    rng = np.random.default_rng(0)
    w = np.linspace(-2, 3, 12)
    model = lambda a: np.stack([-(a @ w), a @ w], 1)  # noqa: E731 - a linear scorer, two classes
    x = rng.normal(size=(40, 12))
    background = rng.normal(size=(16, 12))
    exp = ExactShapley(model, background=background).explain(x[:, :12], target=1, feature_names=NAMES)
    return exp


def _bars(ax):
    return [p for p in ax.patches if p.get_width() != 0]


def test_waterfall_walks_from_the_base_value_to_the_score(shap_explanation):
    exp = shap_explanation
    fig = waterfall(exp, 3, max_display=6)
    ax = fig.axes[0]
    bars = _bars(ax)
    assert len(bars) == 6  # five features and "7 other features"
    labels = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: p[0])]
    assert labels[0] == "7 other features"  # bottom row: the folded features, as in shap
    assert all(" = " in label for label in labels[1:])  # "name = value"
    x3 = exp.inputs[3]
    top = int(np.argmax(np.abs(exp.values[3])))
    assert labels[-1] == f"{NAMES[top]} = {x3[top]:.3g}"
    # the walk: first bar starts at E[f(X)], the last ends at f(x), summing exactly (efficiency)
    start = bars[0].get_x()
    end = bars[-1].get_x() + bars[-1].get_width()
    assert start == pytest.approx(float(exp.base_value[3]), abs=1e-9)
    assert end == pytest.approx(float(exp.prediction[3, 1]), abs=1e-9)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "E[f(X)]" in texts and "f(x) =" in texts


def test_beeswarm_rows_sorted_by_mean_abs_and_coloured_by_value(shap_explanation):
    exp = shap_explanation
    fig = beeswarm(exp, max_display=5)
    ax = fig.axes[0]
    labels = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: -p[0])]
    order = np.argsort(-np.abs(exp.values).mean(0))
    assert labels[:4] == [NAMES[i] for i in order[:4]] and labels[-1] == "8 other features"  # top to bottom
    dots = ax.collections
    assert len(dots) == 5 and all(len(c.get_offsets()) == len(exp) for c in dots)
    assert len(fig.axes) == 2  # the feature-value colour bar


def test_bar_of_local_and_global(shap_explanation):
    exp = shap_explanation
    ax = bar(exp, max_display=4).axes[0]
    widths = [p.get_width() for p in _bars(ax)]
    expected = np.sort(np.abs(exp.values).mean(0))[::-1][:4]
    assert np.allclose(sorted(widths, reverse=True), expected)
    assert "4 of 12 shown" in ax.get_xlabel()
    glob = Explanation(values=np.array([0.3, -0.1, 0.2]), method="permutation_importance", scope="global",
                       feature_names=["a", "b", "c"], extras={"std": np.array([0.01, 0.02, 0.03])})
    ax = bar(glob).axes[0]
    ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: p[0])
    assert [t.get_text() for _, t in ticks] == ["b", "c", "a"]  # bottom-up: smallest |value| first


def test_plot_kinds_return_the_figure_and_errors_name_the_fix(shap_explanation, tmp_path):
    exp = shap_explanation
    for kind in ("auto", "waterfall", "beeswarm", "bar"):
        fig = exp.plot(1, kind=kind)
        assert isinstance(fig, matplotlib.figure.Figure)
        fig.savefig(tmp_path / f"{kind}.png", dpi=60)  # saved as a user would, and read back
        image = matplotlib.pyplot.imread(tmp_path / f"{kind}.png")
        assert image.shape[0] > 100 and image.shape[1] > 200 and image[..., :3].std() > 0.05  # not blank
    with pytest.raises(ValueError, match="did you mean 'waterfall'"):
        exp.plot(kind="waterfal")
    image = Explanation(values=np.zeros((1, 1, 4, 4)), method="saliency")
    with pytest.raises(ValueError, match="tabular"):
        waterfall(image)
    with pytest.raises(IndexError, match="out of range"):
        waterfall(exp, 99)


def test_user_strings_drawn_literally():
    exp = Explanation(values=np.array([[1.0, -2.0]]), method="x", feature_names=["$\\alpha$ cost", "b"],
                      inputs=np.array([[1.0, 2.0]]), base_value=np.array([0.0]))
    fig = waterfall(exp)
    fig.canvas.draw()  # mathtext would fail or render "α"; escaped it stays literal
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any(label.startswith("\\$\\alpha\\$ cost") for label in labels)


def test_repr_html_escapes_and_embeds_the_figure(shap_explanation):
    exp = Explanation(values=shap_explanation.values[:2], method="<script>x</script>",
                      feature_names=["<b>"] + NAMES[1:], inputs=shap_explanation.inputs[:2],
                      target=np.array([1, 1]), delta=np.array([0.0, 1e-9]))
    out = exp._repr_html_()
    assert "<script>" not in out and html.escape("<script>x</script>") in out
    assert "data:image/png;base64," in out and "completeness error" in out


def test_plot_shows_when_run_as_a_script_with_an_interactive_backend(tmp_path):
    """The README's quick start ends in ``.plot()``: as a script it must show the figure."""
    script = tmp_path / "quick.py"
    script.write_text(textwrap.dedent("""
        import matplotlib
        import matplotlib.pyplot as plt
        shown = []
        plt.show = lambda *a, **k: shown.append(True)
        import lumos, lumos.plot.display as display, numpy as np
        display._interactive_backend = lambda: True   # as TkAgg/QtAgg on a desktop
        exp = lumos.Explanation(values=np.ones((1, 3)), method="saliency")
        fig = exp.plot()
        assert shown == [True], shown
        shown.clear(); exp.plot(show=False); assert shown == []
        fig, ax = plt.subplots(); exp.plot(ax=ax); assert shown == []
        print("ok")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_lumos_plot_owns_all_drawing():
    """The report embeds figures that lumos.plot draws: no report module imports matplotlib."""
    from pathlib import Path

    import lumos.report

    folder = Path(lumos.report.__file__).parent
    drawing = [p.name for p in folder.glob("*.py") if "matplotlib" in p.read_text(encoding="utf-8")]
    assert drawing == [], f"report modules that draw themselves: {drawing}"


def test_image_heatmap_over_the_rgb_image_and_series_amplitude_axis():
    rng = np.random.default_rng(0)
    image = Explanation(values=rng.normal(size=(1, 3, 8, 8)), inputs=rng.random((1, 3, 8, 8)), method="ig",
                        target=np.array([1]), meta={"class_names": ["cat", "dog"]})
    ax = image.plot().axes[0]
    assert len(ax.images) == 2 and ax.images[0].get_array().shape == (8, 8, 3)  # the photo, then the heatmap
    assert ax.get_title() == "ig (class dog)"
    one = Explanation(values=rng.normal(size=(1, 1, 50)), inputs=rng.normal(size=(1, 1, 50)), method="saliency")
    assert one.plot().axes[0].get_ylabel() == "amplitude"
    three = Explanation(values=rng.normal(size=(1, 3, 50)), inputs=rng.normal(size=(1, 3, 50)), method="saliency",
                        feature_names=["I", "II", "V1"])
    ax = three.plot().axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["I", "II", "V1"]
    assert any(t.get_text().strip() for t in ax.texts)  # the amplitude scale bar's length
