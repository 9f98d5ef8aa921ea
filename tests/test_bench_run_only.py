"""``python -m benchmarks.run FAMILY --only NAME``: which rows are asked for, and where the re-run rows go."""
from benchmarks.run import merge_rows, split_names


def test_a_comma_inside_parentheses_belongs_to_the_name():
    assert split_names("GradientShap (50 samples, 10 background rows),DeepLift (zero reference)") == [
        "GradientShap (50 samples, 10 background rows)", "DeepLift (zero reference)"]
    assert split_names("saliency,lrp") == ["saliency", "lrp"]


def test_rerun_rows_replace_the_row_of_the_same_name_and_setting():
    stored = {"date": "d", "rows": [{"name": "IG", "setting": "MLP", "lumos_s": 1.0},
                                    {"name": "IG", "setting": "CNN", "lumos_s": 2.0},
                                    {"name": "Saliency", "setting": "CNN", "lumos_s": 3.0}]}
    merged = merge_rows(stored, [{"name": "IG", "setting": "CNN", "lumos_s": 0.5},
                                 {"name": "IG", "setting": "LSTM", "lumos_s": 0.7}], "today")
    rows = [(d["name"], d["setting"], d["lumos_s"]) for d in merged["rows"]]
    assert rows == [("IG", "MLP", 1.0), ("IG", "CNN", 0.5), ("Saliency", "CNN", 3.0), ("IG", "LSTM", 0.7)]
    assert merged["rows"][1]["extra"]["run_alone"] == "today" and "extra" not in merged["rows"][0]
    assert merged["date"] == "d"
