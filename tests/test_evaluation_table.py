"""lumos.evaluate's one table type, metric aliases with did-you-mean, and each metric's
direction and needs from its MetricInfo."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from lumos import GradientXInput, Saliency
from lumos.metrics import METRICS, evaluate
from lumos.metrics.evaluate import ALIASES, COLUMNS, EvaluationTable, metric_function


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(6, 3)).double()
    return lin, np.random.default_rng(0).normal(size=(8, 6))


def _table(lin, x):
    return evaluate(lin, x, 0, {"saliency": Saliency(lin), "gxi": GradientXInput(lin)},
                    ["aopc", "sparseness", ("deletion", {"n_steps": 4})], progress=False)


def test_same_type_with_and_without_pandas(linear, monkeypatch):
    lin, x = linear
    table = _table(lin, x)
    assert isinstance(table, EvaluationTable) and len(table) == 6
    assert [r["metric"] for r in table][:3] == ["region_perturbation", "sparseness", "deletion"]
    assert table["method"] == ["saliency"] * 3 + ["gxi"] * 3 and table[0]["higher_is_better"] is True
    md = table.to_markdown()
    assert md.splitlines()[0] == "| method | region_perturbation ↑ | sparseness ↑ | deletion ↓ |"
    assert len(md.splitlines()) == 4 and "±" in md
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pandas", None)
        bare = _table(lin, x)
        assert isinstance(bare, EvaluationTable) and bare == table.rows
        with pytest.raises(ImportError, match="pip install pandas"):
            bare.to_pandas()
    pd = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns[:7]) == list(table.columns[:7])
    assert set(frame.attrs["curves"]) == {"region_perturbation", "deletion"}


def test_aliases_and_did_you_mean(linear):
    lin, x = linear
    assert metric_function("aopc") is METRICS["region_perturbation"]
    assert metric_function("MPRT") is METRICS["randomisation_spearman"]
    assert metric_function("Pixel-Flipping") is METRICS["pixel_flipping"]
    assert metric_function("RegionPerturbation") is METRICS["region_perturbation"]
    assert metric_function("eMPRT") is METRICS["efficient_mprt"]
    for alias, name in ALIASES.items():
        if name in METRICS:
            assert metric_function(alias) is METRICS[name]
    with pytest.raises(ValueError, match="did you mean 'sparseness'"):
        metric_function("sparsness")
    with pytest.raises(ValueError, match="unknown metric 'zzz' Available: "):
        metric_function("zzz")


def test_every_metric_says_its_direction_and_needs():
    for name, fn in METRICS.items():
        info = fn.info
        assert info.direction in ("higher is better", "lower is better", "no better direction")
        assert info.requires and set(info.requires) <= {"model", "attributions", "explainer", "mask", "labels"}
        assert info.describe().startswith(f"{name} (") and info.direction in info.describe()
    assert METRICS["relevance_mass_accuracy"].info.requires == ("attributions", "mask")
    assert METRICS["random_logit"].info.describe() == "random_logit (sanity): lower is better; needs model, explainer"


def test_sanity_scores_are_rows_of_the_same_table(linear, monkeypatch):
    """Random logit, efficient MPRT and cascading MPRT land in the one EvaluationTable (not a
    result object, a DataFrame or a list depending on pandas), each with its direction."""
    lin, x = linear
    metrics = ["randomlogit", "eMPRT", "mprt"]
    table = evaluate(lin, x, None, {"saliency": Saliency(lin)}, metrics, progress=False)
    assert isinstance(table, EvaluationTable)
    assert table["metric"] == ["random_logit", "efficient_mprt", "randomisation_spearman"]
    assert table["higher_is_better"] == [False, True, False] and set(table["category"]) == {"sanity"}
    assert all(np.isfinite(r["mean"]) and r["n"] == len(x) for r in table)
    assert table.to_markdown().splitlines()[0] == \
        "| method | random_logit ↓ | efficient_mprt ↑ | randomisation_spearman ↓ |"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pandas", None)
        assert evaluate(lin, x, None, {"saliency": Saliency(lin)}, metrics, progress=False) == table.rows


def test_save_concat_and_failed_rows(linear, tmp_path):
    import csv
    import json

    lin, x = linear
    ok = _table(lin, x)
    bad = EvaluationTable.failure("broken", ["aopc", "sparseness", "deletion"], "ValueError: no gradient")
    both = EvaluationTable.concat([ok, bad])
    assert len(both) == 9 and both.attrs["curves"] == ok.attrs["curves"]
    assert [r["metric"] for r in bad] == ["region_perturbation", "sparseness", "deletion"]
    assert all(np.isnan(r["mean"]) and r["n"] == 0 for r in bad)
    md = both.to_markdown()
    assert "| broken | failed | failed | failed |" in md and md.endswith("- broken failed: ValueError: no gradient")
    assert md.splitlines()[0] == "| method | region_perturbation ↑ | sparseness ↑ | deletion ↓ |"
    assert both.save(tmp_path / "t.md").read_text(encoding="utf-8") == md + "\n"
    with open(both.save(tmp_path / "t.csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS) + ["error"] and rows[0]["error"] == "" and rows[-1]["error"]
    assert float(rows[0]["mean"]) == pytest.approx(ok[0]["mean"], rel=1e-12)
    records = json.loads(both.save(tmp_path / "t.json").read_text(encoding="utf-8"))  # strict JSON: NaN as null
    assert records[0] == ok[0] and records[-1]["mean"] is None and records[-1]["error"]
    with pytest.raises(ValueError, match=r"\.csv, \.json, \.md"):
        both.save(tmp_path / "t.txt")


def test_cells_give_the_standard_error_two_significant_digits_and_the_mean_its_decimals():
    from lumos.metrics.evaluate import mean_pm_sem

    assert mean_pm_sem(0.0497, 0.00703) == "0.0497 ± 0.0070"
    assert mean_pm_sem(0.54, 0.0721) == "0.540 ± 0.072"
    assert mean_pm_sem(3673.2, 66.4) == "3673 ± 66"
    assert mean_pm_sem(2.86e-7, 8.92e-8) == "2.86e-07 ± 8.9e-08"
    assert mean_pm_sem(0.1, 0.0) == "0.1 ± 0"
    assert mean_pm_sem(0.123456, float("nan")) == "0.1235"
