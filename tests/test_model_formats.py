"""Models as users have them (#20 item 1): TorchScript, torch.export, Keras 3, ONNX and
scikit-learn, the same through the Python API and the command line, and the README's
methods x formats table equal to the declared capabilities."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lumos

ROOT = Path(__file__).resolve().parents[1]


def _conv1d_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.ReLU(), torch.nn.Conv1d(4, 4, 3), torch.nn.ReLU(),
                               torch.nn.Conv1d(4, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()


@pytest.fixture(scope="module")
def ecg():
    """A model with three Conv1d (the issue's ECG model) and a few series."""
    x = np.random.default_rng(0).normal(size=(4, 2, 24)).astype(np.float32)
    return _conv1d_net(), x


def _scripted(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(model)


def _hook_free_message(err: str, kind: str) -> None:
    assert f"which {kind} does not have" in err
    assert "convolutional" not in err  # never the misleading "needs a convolutional layer"
    for name in ("saliency", "integrated_gradients", "smoothgrad", "occlusion"):
        assert name in err
    assert "nn.Module" in err


# -- TorchScript and torch.export --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_hook_free_methods_run_on_archives_and_hook_based_are_refused_up_front(ecg, kind):
    model, x = ecg
    if kind == "torchscript":
        archived, name = _scripted(model), "a TorchScript module"
    else:
        archived = torch.export.export(model, (torch.from_numpy(x),),
                                       dynamic_shapes=({0: torch.export.Dim("batch")},))
        name = "a torch.export program"
    for method in ("saliency", "integrated_gradients", "occlusion"):
        got = lumos.explain(archived, x, method=method, target=1)
        want = lumos.explain(model, x, method=method, target=1)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-5, atol=1e-7)
    for method in ("grad_cam", "lrp", "guided_backprop", "deeplift"):
        with pytest.raises(TypeError) as info:
            lumos.explain(archived, x, method=method)
        _hook_free_message(str(info.value), name)
    # the report reads the same declaration
    from lumos.core.model import as_model

    assert "does not have" in lumos.GradCAM.applicability(as_model(archived), "timeseries")


# -- Keras 3 -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((24, 2)), keras.layers.Conv1D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    return model


def test_keras_model_with_the_torch_backend(keras_model):
    x = np.random.default_rng(1).normal(size=(5, 24, 2)).astype(np.float32)  # Keras: channels last
    before = [v.numpy().copy() for v in keras_model.variables]
    assert isinstance(keras_model, torch.nn.Module)
    sal = lumos.explain(keras_model, x, method="saliency", target=2, absolute=False)
    xt = torch.from_numpy(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(keras_model(xt, training=False)[:, 2].sum(), xt)  # nothing reaches the weights
    np.testing.assert_allclose(sal.values, grad.numpy(), rtol=1e-5, atol=1e-7)
    ig = lumos.explain(keras_model, x, method="integrated_gradients", n_steps=64)
    assert np.abs(ig.delta).max() < 1e-3 * max(1.0, float(np.abs(ig.prediction).max()))
    occ = lumos.explain(keras_model, x, method="occlusion", window=(4, 2))
    assert occ.values.shape == x.shape
    # the user's model as found: no gradient reached its variables, values unchanged
    assert all(p.grad is None for p in keras_model.parameters())
    for v, b in zip(keras_model.variables, before):
        np.testing.assert_array_equal(v.numpy(), b)
    with pytest.raises(TypeError) as info:
        lumos.explain(keras_model, x, method="grad_cam")
    _hook_free_message(str(info.value), "a Keras model")


# -- ONNX ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_file(ecg, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, x = ecg
    path = tmp_path_factory.mktemp("onnx") / "ecg.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    return path


def test_onnx_model_agnostic_methods_run_on_onnxruntime(ecg, onnx_file):
    from lumos.integrations.onnx import OnnxModel, OnnxScores

    model, x = ecg
    for given in (onnx_file, str(onnx_file), OnnxModel(onnx_file)):
        explainer = lumos.Occlusion(given, window=(1, 4))
        assert isinstance(explainer.model, OnnxScores)  # the file itself, not a conversion
        got = explainer.explain(x, target=0)
        want = lumos.explain(model, x, method="occlusion", window=(1, 4), target=0)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-4, atol=1e-5)


def test_onnx_gradient_methods_run_on_onnx2torch(ecg, onnx_file):
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():  # onnx2torch imports torchvision for its NMS converter
        pytest.importorskip("onnx2torch")
        model, x = ecg
        for method in ("saliency", "integrated_gradients", "grad_cam"):
            got = lumos.explain(onnx_file, x, method=method, target=1)
            want = lumos.explain(model, x, method=method, target=1)
            np.testing.assert_allclose(got.values, want.values, rtol=1e-4, atol=1e-6)


def test_onnx_without_torchvision_says_what_still_works(onnx_file, monkeypatch):
    for name in [m for m in sys.modules if m == "onnx2torch" or m.startswith("onnx2torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision fails
    with pytest.raises(ImportError) as info:
        lumos.explain(onnx_file, np.zeros((1, 2, 24), np.float32), method="saliency")
    text = str(info.value)
    assert "onnx2torch" in text and "torchvision" in text and "occlusion" in text and "onnxruntime" in text


# -- scikit-learn -------------------------------------------------------------------------------------
def test_any_scikit_learn_estimator_or_pipeline_for_model_agnostic_methods():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    models = {"forest": RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
              "svc": make_pipeline(StandardScaler(), SVC()).fit(X, y),  # no predict_proba: decision_function
              "regressor": GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, X[:, 0])}
    scores = {"forest": "predict_proba", "svc": "decision_function", "regressor": "predict"}
    for name, est in models.items():
        exp = lumos.KernelShap(est, n_samples=256).explain(X[:3], background=X[:20])
        assert exp.params["scores"].endswith(scores[name])
        np.testing.assert_allclose(exp.values.sum(1), exp.prediction[np.arange(3), exp.target] - exp.base_value,
                                   atol=1e-6)
    with pytest.raises(TypeError, match="needs gradients"):
        lumos.explain(models["forest"], X[:2], method="saliency")


# -- the command line: one loader for every command -----------------------------------------------------
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lumos", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_the_command_line_reads_the_same_formats(ecg, onnx_file, tmp_path):
    model, x = ecg
    np.savez(tmp_path / "x.npz", X=x)
    _scripted(model).save(str(tmp_path / "ecg.pt"))
    proc = _cli("-q", "explain", "--model", "ecg.pt", "--data", "x.npz", "--method", "grad_cam", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("lumos: error: GradCAM needs hooks")
    assert "convolutional" not in lines[0] and "saliency" in lines[0] and "--factory" in lines[0]
    proc = _cli("-q", "explain", "--model", onnx_file, "--data", "x.npz", "--method", "occlusion", "-O",
                "window=[1,4]", "--out", "occ.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = lumos.Explanation.load(tmp_path / "occ.npz")
    np.testing.assert_allclose(got.values, lumos.explain(model, x, method="occlusion", window=(1, 4)).values,
                               rtol=1e-4, atol=1e-5)
    # a pickled scikit-learn model runs code when loaded: refused without --trust-model
    import pickle

    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    with open(tmp_path / "clf.pkl", "wb") as fh:
        pickle.dump(LogisticRegression().fit(X, X[:, 0] > 0), fh)
    np.savez(tmp_path / "t.npz", X=X[:4])
    proc = _cli("-q", "explain", "--model", "clf.pkl", "--data", "t.npz", "--method", "lime", cwd=tmp_path)
    assert proc.returncode == 2 and "--trust-model" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    np.save(tmp_path / "bg.npy", X[:10])
    proc = _cli("-q", "explain", "--model", "clf.pkl", "--trust-model", "--data", "t.npz", "--method",
                "kernel_shap", "-O", "background=bg.npy", "--out", "ks.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert lumos.Explanation.load(tmp_path / "ks.npz").params["scores"] == "LogisticRegression.predict_proba"


# -- the README's table ----------------------------------------------------------------------------------
def test_readme_formats_table_is_the_declared_capabilities():
    import lumos.methods  # noqa: F401
    from lumos.core.model import formats_table

    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- formats-table -->\n(.*?)\n<!-- /formats-table -->", text, re.S)
    assert found, "README lost its formats table markers"
    assert found.group(1).strip() == formats_table().strip(), (
        "README formats table is stale: paste lumos.core.model.formats_table()")
