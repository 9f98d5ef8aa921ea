"""One consistent command line (#20 item 4), driven as a user drives it: through
``python -m lumos`` in a subprocess. -O on every command that runs methods, labels from a
.csv column, evaluate --out, one target vocabulary, every error one ``lumos: error:`` line
with "did you mean", the batch-axis hint, and progress bars on a terminal."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from lumos.cli import main
from lumos.core.explanation import Explanation
from lumos.models.reference import MLP


def lumos(*args, cwd, tty: bool = False):
    """``python -m lumos ARGS`` -> (exit code, stdout, stderr lines); ``tty``: stderr is a terminal."""
    cmd = [sys.executable, "-m", "lumos", *map(str, args)]
    env = {**os.environ, "COLUMNS": "120"}
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
        return proc.returncode, proc.stdout, [ln for ln in proc.stderr.strip().splitlines() if ln]
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 wide
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode()
    proc.wait(timeout=300)
    os.close(leader)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = MLP(4, 2, hidden=(8,)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model).save(str(tmp / "mlp.pt"))
        cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(2 * 6 * 6, 3)).eval()
        torch.jit.script(cnn).save(str(tmp / "cnn.pt"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    np.savez(tmp / "data.npz", X=X, y=y, class_names=np.array(["no", "yes"]))
    with open(tmp / "table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "diagnosis", "b", "c", "d"])
        for row, label in zip(X, y):
            writer.writerow([row[0], ["benign", "malignant"][label], *row[1:]])
    np.save(tmp / "one_image.npy", rng.normal(size=(1, 8, 8)).astype(np.float32))  # no batch axis
    return tmp, model, X, y


def test_evaluate_takes_options_and_writes_its_table(work):
    """Shapley methods in evaluate get report's background; -O to all or to one method; --out."""
    tmp, _, _, _ = work
    code, out, err = lumos("-q", "evaluate", "--model", "mlp.pt", "--data", "data.npz", "--methods",
                           "kernel_shap,ig", "-O", "n_samples=64", "-O", "ig.n_steps=8", "--out", "results.csv",
                           cwd=tmp)
    assert code == 0, err
    assert "failed" not in out and "background is required" not in out
    from lumos.metrics.evaluate import COLUMNS, DEFAULT_METRICS

    with open(tmp / "results.csv") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS  # lumos.evaluate's table, a row per method x metric
    assert [r["method"] for r in rows[::len(DEFAULT_METRICS)]] == ["kernel_shap", "integrated_gradients",
                                                                   "random order (reference)"]
    assert [r["metric"] for r in rows[:len(DEFAULT_METRICS)]] == list(DEFAULT_METRICS)
    assert all(np.isfinite(float(r["mean"])) and int(r["n"]) == 12 for r in rows)
    assert main(["-q", "evaluate", "--model", str(tmp / "mlp.pt"), "--data", str(tmp / "data.npz"),
                 "--methods", "saliency", "--out", str(tmp / "results.json")]) == 0
    records = json.loads((tmp / "results.json").read_text())
    assert records[0]["method"] == "saliency" and set(records[0]) == set(COLUMNS)


def test_evaluate_prints_the_evaluation_table_of_the_api(work, capsys):
    """The command's table is lumos.evaluate's EvaluationTable: the same metric names (aliases
    resolved), directions and numbers, printed as to_markdown() and written as .md unchanged."""
    import lumos as lm
    from lumos.cli.commands import RANDOM_ROW

    tmp, _, X, _ = work
    scripted = torch.jit.load(str(tmp / "mlp.pt"))
    assert main(["-q", "evaluate", "--model", str(tmp / "mlp.pt"), "--data", str(tmp / "data.npz"), "--methods",
                 "saliency", "--metrics", "aopc,Gini,mprt", "--out", str(tmp / "table.md")]) == 0
    out = capsys.readouterr().out
    api = lm.evaluate(scripted, X, None, {"saliency": lm.Saliency(scripted)}, ["aopc", "Gini", "mprt"],
                      progress=False).to_markdown().splitlines()
    lines = out.strip().splitlines()
    assert lines[0] == api[0] == "| method | region_perturbation ↑ | sparseness ↑ | randomisation_spearman ↓ |"
    assert lines[2] == api[2] and lines[2].startswith("| saliency | ")  # the same numbers (a TorchScript model)
    assert lines[3].startswith(f"| {RANDOM_ROW} | ") and "| 1 ± 0 |" in lines[3]  # model-independent: MPRT 1
    assert (tmp / "table.md").read_text() == out
    # a method that fails is its row ("failed" cells) and its error under the table, not the end of the command
    assert main(["-q", "evaluate", "--model", str(tmp / "mlp.pt"), "--data", str(tmp / "data.npz"), "--methods",
                 "saliency,kernel_shap", "-O", "kernel_shap.n_samples=-3", "--metrics", "aopc"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[3] == "| kernel_shap | failed |" and lines[-1].startswith("- kernel_shap failed: ")


def test_option_flag_on_every_command_that_runs_methods():
    from lumos.cli.commands import cli

    for name, command in cli.commands.items():
        if name in ("methods", "bench"):
            continue
        flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert {"-O", "--option"} <= flags, name


def test_labels_from_a_csv_column_and_class_names_as_targets(work):
    tmp, model, X, y = work
    code, out, err = lumos("-q", "explain", "--model", "mlp.pt", "--data", "table.csv", "--label-column",
                           "diagnosis", "--method", "permutation_importance", "-O", "n_repeats=2",
                           "--out", "pfi.npz", cwd=tmp)
    assert code == 0, err
    pfi = Explanation.load(tmp / "pfi.npz")
    assert pfi.feature_names == list("abcd") and pfi.values.shape == (4,)
    # --target by name, the names read from the labels' column (sorted: benign=0, malignant=1)
    assert main(["-q", "explain", "--model", str(tmp / "mlp.pt"), "--data", str(tmp / "table.csv"),
                 "--label-column", "diagnosis", "--method", "saliency", "--target", "malignant",
                 "--out", str(tmp / "named.npz")]) == 0
    assert (Explanation.load(tmp / "named.npz").target == 1).all()
    # 'predicted' and 'pred' are one vocabulary
    for word in ("predicted", "pred"):
        assert main(["-q", "explain", "--model", str(tmp / "mlp.pt"), "--data", str(tmp / "data.npz"),
                     "--method", "saliency", "--target", word, "--out", str(tmp / f"{word}.npz")]) == 0
    a, b = Explanation.load(tmp / "predicted.npz"), Explanation.load(tmp / "pred.npz")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.target, model(torch.from_numpy(X)).argmax(1).numpy())


@pytest.mark.parametrize("args, expected", [
    (["explain", "--model", "mlp.pt"], "Missing option '--data'"),                      # click's usage block
    (["evaluat"], "did you mean 'evaluate'"),
    (["explain", "--model", "mlp.pt", "--data", "data.npz", "--method", "shap"], "did you mean 'deep_shap', 'kernel_shap'"),
    (["explain", "--model", "mlp.pt", "--data", "data.npz", "--method", "ig", "-O", "n_step=4"],
     "did you mean 'n_steps'"),
    (["explain", "--model", "mlp.pt", "--data", "data.npz", "--method", "ig", "--n-steps", "4"],
     "-O n_steps="),
    (["evaluate", "--model", "mlp.pt", "--data", "data.npz", "--methods", "ig", "-O", "n_step=4"],
     "did you mean 'n_steps'"),
    (["evaluate", "--model", "mlp.pt", "--data", "data.npz", "--metrics", "aopcc"], "did you mean 'aopc'"),
    (["explain", "--model", "cnn.pt", "--data", "one_image.npy", "--method", "saliency"], "add a batch axis"),
    (["explain", "--model", "mlp.pt", "--data", "table.csv", "--label-column", "diagnosys", "--method", "saliency"],
     "did you mean 'diagnosis'"),
], ids=["usage", "command", "method", "option", "option-as-flag", "evaluate-option", "evaluate-metric", "batch-axis",
        "label-column"])
def test_every_error_is_one_line_with_what_to_do(work, args, expected):
    tmp, _, _, _ = work
    code, _, err = lumos(*args, cwd=tmp)
    assert code == 2 and len(err) == 1 and err[0].startswith("lumos: error:"), err
    assert expected.lower() in err[0].lower(), err[0]
    assert "Traceback" not in err[0]


def test_metric_names_get_did_you_mean(work):
    import lumos as lm

    tmp, model, X, _ = work
    with pytest.raises(ValueError, match="did you mean 'deletion_auc'"):
        lm.evaluate(model, X[:3], explainers={"ig": lm.IntegratedGradients(model)}, metrics=["deletion_aucc"],
                    progress=False)
    table = lm.evaluate(model, X[:3], explainers={"ig": lm.IntegratedGradients(model)}, metrics=["aopc"],
                        progress=False)  # the name is an accepted alias
    assert len(table) >= 1


def test_progress_bars_on_a_terminal(work):
    tmp, _, _, _ = work
    code, out, err = lumos("evaluate", "--model", "mlp.pt", "--data", "data.npz", "--methods", "saliency,ig",
                           cwd=tmp, tty=True)
    assert code == 0, err
    assert "explaining" in err and "evaluating" in err  # both phases of evaluate show a bar
    code, out, err = lumos("-q", "evaluate", "--model", "mlp.pt", "--data", "data.npz", "--methods", "saliency",
                           cwd=tmp, tty=True)
    assert code == 0 and "explaining" not in err  # --quiet: no bars


def test_python_dash_m_lumos_is_the_command(work):
    tmp, _, _, _ = work
    code, out, _ = lumos("--version", cwd=tmp)
    assert code == 0 and out.startswith("lumos ")
