"""No code from a model or data file runs through the command line unless the user says so
(``--trust-model``, ``--factory``), and every bad file is one ``lumos: error:`` line.

Each payload is an object whose unpickling creates a marker file; the control test shows
that loading it the unsafe way does create the marker, so its absence elsewhere means the
payload was never unpickled.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.cli import main
from lumos.models.reference import MLP

FACTORY = """
from lumos.models.reference import MLP

def make():
    return MLP(4, 2, hidden=(8,))
"""


class Payload:
    """Unpickling this creates (opens for writing) the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _rewrite_zip(src: Path, dst: Path, member_suffix: str, change) -> None:
    """Copy the zip archive ``src`` to ``dst`` with ``change(bytes)`` applied to one member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        hit = False
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(member_suffix):
                data, hit = change(data), True
            zout.writestr(info.filename, data)
    assert hit, member_suffix


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """Benign and booby-trapped model and data files, and the marker the traps would create."""
    tmp = tmp_path_factory.mktemp("evil")
    marker = tmp / "MARKER"
    torch.manual_seed(0)
    model = MLP(4, 2, hidden=(8,)).eval()
    files = {}
    state = {**model.state_dict(), "payload": Payload(marker)}
    torch.save(state, tmp / "state_zip.pt")
    torch.save(state, tmp / "state_legacy.pt", _use_new_zipfile_serialization=False)
    trapped = MLP(4, 2, hidden=(8,))
    trapped.payload = Payload(marker)
    torch.save(trapped, tmp / "module.pt")
    torch.save(trapped, tmp / "module_legacy.pt", _use_new_zipfile_serialization=False)
    files["models"] = ["state_zip.pt", "state_legacy.pt", "module.pt", "module_legacy.pt"]
    # torch.export archives: torch.export.load unpickles the sample inputs (falling back to
    # weights_only=False) and sympify()s (evaluates) the shape expressions in the archive
    program = torch.export.export(model, (torch.randn(3, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp / "good.pt2")
    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    _rewrite_zip(tmp / "good.pt2", tmp / "pickle.pt2", "data/sample_inputs/model.pt", lambda b: buf.getvalue())
    code = f"__import__('builtins').open({str(marker)!r}, 'w') and Symbol("
    _rewrite_zip(tmp / "good.pt2", tmp / "sympy.pt2", "models/model.json",
                 lambda b: b.decode().replace('"expr_str": "Symbol(', '"expr_str": ' + json.dumps(code)[:-1]).encode())
    _rewrite_zip(tmp / "good.pt2", tmp / "aoti.pt2", "archive_format", lambda b: b)
    with zipfile.ZipFile(tmp / "aoti.pt2", "a") as z:  # what an AOTInductor package adds: a native library
        z.writestr(f"{z.namelist()[0].split('/')[0]}/data/aotinductor/model/model.so", b"\x7fELF")
    files["models"] += ["pickle.pt2", "sympy.pt2", "aoti.pt2"]
    torch.save(model.state_dict(), tmp / "weights.pt")
    torch.save(model, tmp / "whole.pt")
    torch.jit.script(model).save(str(tmp / "scripted.pt"))
    (tmp / "mymodels.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    np.savez(tmp / "data.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    np.save(tmp / "X.npy", X)
    np.save(tmp / "object.npy", np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    np.savez(tmp / "object.npz", X=np.array([Payload(marker), 1], dtype=object))  # savez pickles object arrays
    np.savez(tmp / "object_y.npz", X=X, y=np.array([Payload(marker)] * 12, dtype=object))
    assert not marker.exists()
    return tmp, marker, model, X


def _run(args, capsys, cwd=None):
    """``main(args)`` -> (exit code, stderr lines)."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, [line for line in err.strip().splitlines() if line]


def _commands(tmp, model_file, factory):
    """The same model file through every command that reads one."""
    extra = ["--factory", f"{tmp / 'mymodels.py'}:make"] if factory else []
    data = ["--data", tmp / "data.npz"]
    return {
        "explain": ["explain", "--model", model_file, *extra, *data, "--method", "saliency", "--out", tmp / "e.npz"],
        "evaluate": ["evaluate", "--model", model_file, *extra, *data, "--methods", "saliency"],
        "report": ["report", "--model", model_file, *extra, *data, "--methods", "saliency", "--n-samples", "2",
                   "--out", tmp / "r.html"],
        "explain-dataset": ["explain-dataset", model_file, tmp / "X.npy", *extra, "-m", "saliency",
                            "-o", tmp / "o.zarr", "--overwrite", "-q"],
    }


def test_the_payloads_do_run_code_when_loaded_unsafely(evil):
    """The control: each trap creates the marker when loaded the way lumos never does."""
    tmp, marker, _, _ = evil
    for name in ("state_zip.pt", "state_legacy.pt", "module.pt", "module_legacy.pt"):
        torch.load(tmp / name, weights_only=False)
        assert marker.exists(), name
        marker.unlink()
    np.load(tmp / "object.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    try:
        torch.export.load(str(tmp / "pickle.pt2"))
    except Exception:  # noqa: BLE001 - the payload has run by the time torch checks the type
        pass
    assert marker.exists()
    marker.unlink()
    torch.export.load(str(tmp / "sympy.pt2"))
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("model_file", ["state_zip.pt", "state_legacy.pt", "module.pt", "module_legacy.pt",
                                        "pickle.pt2", "sympy.pt2", "aoti.pt2"])
@pytest.mark.parametrize("factory", [False, True], ids=["no-factory", "factory"])
def test_no_command_runs_code_from_a_model_file(evil, capsys, model_file, factory):
    tmp, marker, _, _ = evil
    for command, args in _commands(tmp, tmp / model_file, factory).items():
        code, lines = _run(args, capsys)
        assert not marker.exists(), f"{command} ran the payload in {model_file}"
        assert code == 2 and len(lines) == 1 and lines[0].startswith("lumos: error:"), (command, lines)
        if not factory or model_file.endswith(".pt"):
            assert "--trust-model" in lines[0], (command, lines[0])


def test_a_whole_module_is_refused_with_what_to_do(evil, capsys):
    tmp, marker, _, _ = evil
    code, lines = _run(["explain", "--model", tmp / "whole.pt", "--data", tmp / "data.npz", "--method", "saliency",
                        "--out", tmp / "w.npz"], capsys)
    assert code == 2 and len(lines) == 1
    line = lines[0]
    assert line.startswith("lumos: error:") and "would run code" in line
    for advice in ("state dict", "--factory", "TorchScript", "--trust-model"):
        assert advice in line, advice


def test_the_issue_reproduction_in_a_subprocess(evil):
    """``lumos explain-dataset evil.pt x.npy -m saliency -o o.zarr`` through the interpreter."""
    tmp, marker, _, _ = evil
    for model_file in ("state_zip.pt", "module.pt"):
        proc = subprocess.run([sys.executable, "-m", "lumos", "explain-dataset", str(tmp / model_file),
                               str(tmp / "X.npy"), "-m", "saliency", "-o", str(tmp / "sub.zarr")],
                              capture_output=True, text=True, timeout=300, cwd=tmp)
        assert not marker.exists()
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().startswith("lumos: error:") and "\n" not in proc.stderr.strip()


@pytest.mark.parametrize("args", [
    ["explain", "--data", "{tmp}/object.npy"],
    ["explain", "--data", "{tmp}/object.npz"],
    ["explain", "--data", "{tmp}/object_y.npz"],
    ["explain", "--data", "{tmp}/data.npz", "-O", "baseline={tmp}/object.npy"],
    ["explain", "--data", "{tmp}/data.npz", "-O", "baseline={tmp}/object.npz"],
    ["explain-dataset", "{tmp}/object.npy"],
    ["explain-dataset", "{tmp}/object.npz"],
    ["explain-dataset", "{tmp}/X.npy", "-O", "baseline={tmp}/object.npy"],
], ids=["npy", "npz", "npz-labels", "option-npy", "option-npz", "dataset-npy", "dataset-npz", "dataset-option"])
def test_pickled_data_is_refused(evil, capsys, args):
    tmp, marker, _, _ = evil
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    if args[0] == "explain":
        args = ["explain", "--model", str(tmp / "scripted.pt"), "--method", "ig", "--out", str(tmp / "e.npz"),
                *args[1:]]
    else:
        args = ["explain-dataset", str(tmp / "scripted.pt"), args[1], "-m", "ig", "-o", str(tmp / "d.zarr"), *args[2:]]
    code, lines = _run(args, capsys)
    assert not marker.exists()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lumos: error:"), lines
    assert "pickled" in lines[0]


def test_a_tampered_explanation_archive_is_refused(evil, capsys):
    import lumos
    from lumos.core.explanation import Explanation

    tmp, marker, model, X = evil
    path = lumos.explain(model, X, method="saliency").save(tmp / "exp.npz")
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["values"] = np.array([Payload(marker)], dtype=object)
    np.savez(tmp / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="allow_pickle"):
        Explanation.load(tmp / "tampered.npz")
    assert not marker.exists()
    code, lines = _run(["evaluate", "--model", tmp / "scripted.pt", "--data", tmp / "data.npz",
                        "--explanation", tmp / "tampered.npz"], capsys)
    assert not marker.exists()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lumos: error:")


def test_a_zarr_store_with_a_pickle_codec_is_refused(evil, capsys):
    """A chunk that numcodecs' Pickle codec would unpickle is never decoded."""
    pytest.importorskip("zarr")
    tmp, marker, _, _ = evil
    store = tmp / "pickled.zarr"
    store.mkdir()
    (store / ".zarray").write_text(json.dumps({
        "shape": [2, 4], "chunks": [2, 4], "dtype": "<f4", "fill_value": 0.0, "order": "C",
        "filters": [{"id": "pickle"}], "compressor": None, "zarr_format": 2, "dimension_separator": "."}))
    import pickle

    (store / "0.0").write_bytes(pickle.dumps(Payload(marker)))
    code, lines = _run(["explain-dataset", tmp / "scripted.pt", store, "-m", "saliency", "-o", tmp / "z.zarr"],
                       capsys)
    assert not marker.exists()
    assert code == 2 and len(lines) == 1 and "pickle" in lines[0], lines


# -- what the user asked for still works -------------------------------------------------------
def test_trust_model_loads_a_whole_module_in_every_command(evil, capsys):
    tmp, _, model, X = evil
    runs = _commands(tmp, tmp / "whole.pt", factory=False)
    if not _has_zarr():
        runs.pop("explain-dataset")
    for command, args in runs.items():
        assert main([str(a) for a in args] + ["--trust-model"]) == 0, command
    capsys.readouterr()
    from lumos.core.explanation import Explanation

    import lumos

    np.testing.assert_allclose(Explanation.load(tmp / "e.npz").values,
                               lumos.explain(model, X, method="saliency").values, rtol=1e-6)


def _has_zarr() -> bool:
    try:
        import zarr  # noqa: F401
    except ImportError:
        return False
    return True


def test_state_dict_with_a_factory_in_the_current_directory(evil, monkeypatch, capsys):
    """``--factory mymodels:make`` finds mymodels.py in the working directory: the console
    script in a subprocess, as a user runs it (its sys.path does not hold the directory)."""
    tmp, _, model, X = evil
    script = Path(sys.executable).with_name("lumos")
    if script.exists():
        launcher = [str(script)]
    elif sys.version_info >= (3, 11):
        launcher = [sys.executable, "-P", "-m", "lumos"]  # -P: the working directory is not put on sys.path
    else:
        pytest.skip("no lumos console script and no python -P")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).resolve() != tmp)}
    cmd = [*launcher, "-q", "explain", "--model", "weights.pt", "--factory", "mymodels:make",
           "--data", "data.npz", "--method", "saliency", "--out", "cwd.npz"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stderr
    from lumos.core.explanation import Explanation

    import lumos

    np.testing.assert_allclose(Explanation.load(tmp / "cwd.npz").values,
                               lumos.explain(model, X, method="saliency").values, rtol=1e-6)
    if _has_zarr():
        monkeypatch.chdir(tmp)
        assert main(["explain-dataset", "weights.pt", "X.npy", "--factory", "mymodels:make", "-m", "saliency",
                     "-o", "cwd.zarr", "-q"]) == 0
        assert "12 rows" in capsys.readouterr().out


def test_a_torch_export_archive_loads_without_trust(evil, capsys):
    tmp, marker, model, X = evil
    from lumos.cli.loaders import load_model

    loaded = load_model(tmp / "good.pt2")
    torch.testing.assert_close(loaded(torch.from_numpy(X)), model(torch.from_numpy(X)))
    assert main(["-q", "explain", "--model", str(tmp / "good.pt2"), "--data", str(tmp / "data.npz"),
                 "--method", "integrated_gradients", "--out", str(tmp / "pt2.npz")]) == 0
    import lumos
    from lumos.core.explanation import Explanation

    np.testing.assert_allclose(Explanation.load(tmp / "pt2.npz").values,
                               lumos.explain(model, X, method="integrated_gradients").values, rtol=1e-5, atol=1e-7)
    assert not marker.exists()


def test_python_dash_m_lumos(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lumos", "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "explain-dataset" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "lumos", "explain", "--help"], capture_output=True, text=True,
                          timeout=300)
    assert "--trust-model" in proc.stdout and "EXECUTES CODE" in proc.stdout


def test_the_cli_package_is_one_way(tmp_path):
    """scale/ knows nothing of click or the command line."""
    src = Path(__file__).resolve().parents[1] / "src" / "lumos" / "scale"
    for path in src.glob("*.py"):
        text = path.read_text()
        assert "import click" not in text and "lumos.cli" not in text, path.name
    code = "import sys, lumos.scale\nprint('click' in sys.modules, 'lumos.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr


# -- every bad data file is one line -------------------------------------------------------------
BAD_DATA = {
    "empty.csv": "",
    "header_only.csv": "a,b,c,d\n",
    "text_cell.csv": "a,b,c,d\n1,2,3,4\n1,x,3,4\n",
    "ragged.csv": "a,b,c,d\n1,2,3,4\n1,2\n",
    "blank_lines.csv": "\n\n\n",
    "empty.tsv": "",
    "garbage.ts": "@problemName x\n@data\nnot:a:series\n",
    "data.xyz": "1,2,3\n",
    "noext": "1,2,3\n",
    "empty.npy": b"",
    "not_numpy.npy": b"hello",
    "empty.npz": b"",
}


@pytest.mark.parametrize("name", list(BAD_DATA) + ["object.npy", "no_X.npz", "rank1.npy", "folder"])
def test_bad_data_files_are_one_line(evil, tmp_path, capsys, name):
    tmp, marker, _, _ = evil
    path = tmp_path / name
    if name in BAD_DATA:
        content = BAD_DATA[name]
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    elif name == "object.npy":
        path = tmp / "object.npy"
    elif name == "no_X.npz":
        np.savez(path, Z=np.zeros((3, 4)))
    elif name == "rank1.npy":
        np.save(path, np.zeros(4, dtype=np.float32))
    else:
        path.mkdir()
    for args in (["explain", "--model", tmp / "scripted.pt", "--data", path, "--method", "saliency",
                  "--out", tmp_path / "e.npz"],
                 ["report", "--model", tmp / "scripted.pt", "--data", path, "--out", tmp_path / "r.html"]):
        code, lines = _run(args, capsys)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("lumos: error:"), (name, lines)
    if name not in ("folder", "no_X.npz"):  # explain-dataset: a Zarr store; its only array
        code, lines = _run(["explain-dataset", tmp / "scripted.pt", path, "-m", "saliency",
                            "-o", tmp_path / "o.zarr"], capsys)
        assert code == 2 and len(lines) == 1 and lines[0].startswith("lumos: error:"), (name, lines)
    assert not marker.exists()


def test_empty_csv_message(tmp_path, evil, capsys):
    tmp, _, _, _ = evil
    (tmp_path / "empty.csv").write_text("")
    code, lines = _run(["explain", "--model", tmp / "scripted.pt", "--data", tmp_path / "empty.csv",
                        "--method", "saliency"], capsys)
    assert code == 2 and lines == [f"lumos: error: {tmp_path / 'empty.csv'} is empty: expected a header row, "
                                   "then one row of numbers per input"]
