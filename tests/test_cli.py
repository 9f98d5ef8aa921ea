"""The `lumos` command: every subcommand end to end, and user mistakes as one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.cli import main
from lumos.core.explanation import Explanation
from lumos.models.reference import MLP

FACTORY = """
import torch
from lumos.models.reference import MLP

def make():
    return MLP(4, 2, hidden=(8,))
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = MLP(4, 2, hidden=(8,)).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    (tmp_path / "mymodels.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", X=X, y=(X[:, 0] > 0).astype(np.int64), feature_names=np.array(list("abcd")))
    return tmp_path, model, X


def test_explain_torchscript_and_state_dict_agree(files, capsys):
    tmp, model, X = files
    out1, out2 = tmp / "a.npz", tmp / "b.npz"
    assert main(["-q", "explain", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--method", "gradient_x_input", "--target", "1", "--out", str(out1)]) == 0
    assert main(["-q", "explain", "--model", str(tmp / "weights.pt"), "--factory", f"{tmp / 'mymodels.py'}:make",
                 "--data", str(tmp / "data.npz"), "--method", "gxi", "--target", "1", "--out", str(out2)]) == 0
    a, b = Explanation.load(out1), Explanation.load(out2)
    assert a.values.shape == (10, 4) and (a.target == 1).all() and a.feature_names == list("abcd")
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)
    import lumos

    direct = lumos.explain(model, X, method="gradient_x_input", target=1)
    np.testing.assert_allclose(a.values, direct.values, rtol=1e-6)
    assert str(out1.resolve()) in capsys.readouterr().out


def test_run_options_work_before_and_after_the_command(files, capsys):
    tmp, _, _ = files
    base = ["explain", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"), "--method",
            "smoothgrad", "-O", "n_samples=4"]
    runs = {"group": ["-q", "--seed", "3", *base, "--out", str(tmp / "g.npz")],
            "command": [*base, "--out", str(tmp / "c.npz"), "--seed", "3", "--quiet", "--device", "cpu"],
            "other seed": ["-q", *base, "--out", str(tmp / "o.npz"), "--seed", "4"]}
    for args in runs.values():
        assert main(args) == 0
    assert capsys.readouterr().err == ""
    g, c, o = (Explanation.load(tmp / f"{k}.npz").values for k in "gco")
    np.testing.assert_array_equal(g, c)
    assert not np.array_equal(g, o)  # the seed given after the command is the one used


def test_explain_takes_method_options_and_arrays_from_files(files):
    tmp, model, X = files
    np.save(tmp / "bg.npy", X[:5])
    out = tmp / "ks.npz"
    assert main(["-q", "explain", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--method", "kernel_shap", "-O", f"background={tmp / 'bg.npy'}", "-O", "n_samples=64",
                 "--out", str(out)]) == 0
    import lumos

    got = Explanation.load(out)
    direct = lumos.explain(model, X, method="kernel_shap", background=X[:5], n_samples=64, seed=0)
    np.testing.assert_allclose(got.values, direct.values, rtol=1e-5, atol=1e-7)
    assert got.params["n_samples"] == 64


def test_module_factory_from_working_directory(files, monkeypatch):
    tmp, _, _ = files
    monkeypatch.chdir(tmp)
    assert main(["-q", "explain", "--model", "weights.pt", "--factory", "mymodels:make", "--data", "data.npz",
                 "--method", "saliency", "--out", "s.npz", "--limit", "3"]) == 0
    assert Explanation.load(tmp / "s.npz").values.shape == (3, 4)


def test_evaluate_and_report(files, capsys):
    tmp, _, _ = files
    assert main(["-q", "evaluate", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--methods", "saliency,ig"]) == 0
    out = capsys.readouterr().out
    assert "saliency" in out and "integrated_gradients" in out and "random order" in out
    assert main(["-q", "explain", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--method", "ig", "--out", str(tmp / "e.npz")]) == 0
    capsys.readouterr()
    assert main(["-q", "evaluate", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--explanation", str(tmp / "e.npz")]) == 0
    assert "integrated_gradients" in capsys.readouterr().out
    assert main(["-q", "report", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "data.npz"),
                 "--methods", "saliency", "--n-samples", "2", "--class-names", "no,yes",
                 "--out", str(tmp / "r.html")]) == 0
    html = (tmp / "r.html").read_text()
    assert "saliency" in html and "yes" in html


def test_methods_lists_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    import lumos

    for name in lumos.list_methods():
        assert name in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "torch,layer" in lines["grad_cam"] and "no-TorchScript" in lines["grad_cam"]  # declared, not guessed
    assert "background" in lines["kernel_shap"] and "seed" in lines["kernel_shap"]
    assert "global" in lines["permutation_importance"] and "labels" in lines["permutation_importance"]


@pytest.mark.parametrize("args, message", [
    (["explain", "--model", "missing.pt", "--data", "x.npz", "--method", "ig"], "model file missing.pt does not exist"),
    (["explain", "--model", "{tmp}/weights.pt", "--data", "{tmp}/data.npz", "--method", "ig"], "not a TorchScript archive"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "nope"], "unknown method 'nope'"),
    (["explain", "--model", "{tmp}/weights.pt", "--factory", "nomodule_xyz:make", "--data", "{tmp}/data.npz",
      "--method", "ig"], "cannot import 'nomodule_xyz'"),
    (["explain", "--model", "{tmp}/weights.pt", "--factory", "bad", "--data", "{tmp}/data.npz", "--method", "ig"],
     "--factory must look like"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/weights.pt", "--method", "ig"], "unknown data format"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "ig", "--target", "x"],
     "--target must be"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "ig", "--target", "7"],
     "target"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "kernel_shap"],
     "background is required"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "kernel_shap",
      "-O", "background={tmp}/missing.npy"], "no such file"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "ig", "-O", "n_steps"],
     "key=value"),
    (["--device", "cuda:9", "explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "ig"],
     "cuda"),
    (["explain", "--model", "{tmp}/scripted.pt", "--data", "{tmp}/data.npz", "--method", "ig", "--device", "cuda:9"],
     "cuda"),
])
def test_user_mistakes_are_one_line(files, capsys, args, message):
    tmp, _, _ = files
    code = main([a.replace("{tmp}", str(tmp)) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("lumos: error:"), err
    assert message.lower() in lines[0].lower()


def test_wrong_shape_model_data_is_one_line(files, capsys):
    tmp, _, _ = files
    np.save(tmp / "wrong.npy", np.zeros((3, 7), dtype=np.float32))
    code = main(["explain", "--model", str(tmp / "scripted.pt"), "--data", str(tmp / "wrong.npy"), "--method", "ig"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("lumos: error:") and "\n" not in err


def test_no_traceback_from_the_console_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lumos.cli", "explain", "--model", str(tmp_path / "x.pt"),
                           "--data", "d.npz", "--method", "ig"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"lumos: error: model file {tmp_path / 'x.pt'} does not exist"


def test_demo_writes_report_and_caches_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path / "cache"))
    assert main(["--seed", "1", "demo", "--out", str(tmp_path / "demo.html"), "--n-samples", "3"]) == 0
    out = capsys.readouterr()
    path = Path(out.out.strip())
    assert path == (tmp_path / "demo.html").resolve() and path.exists()
    html = path.read_text()
    import lumos

    applicable = [n for n in lumos.list_methods() if n in html]
    assert len(applicable) >= 4 and "test accuracy" in html
    assert "trained in" in out.err
    # the run options also after the command: same seed (the cached weights are reused), quiet
    assert main(["demo", "--out", str(tmp_path / "demo2.html"), "--n-samples", "3", "-q", "--seed", "1"]) == 0
    assert capsys.readouterr().err == ""  # quiet: no progress, no messages
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # second run loaded the cached weights
