"""explain_dataset (local engine), the Zarr store, resume, sources, open_store, summaries."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("zarr")

import lumos  # noqa: E402
from lumos.models.reference import MLP, CNN1d  # noqa: E402
from lumos.scale import explain_dataset, open_store  # noqa: E402
from lumos.scale.sources import ArraySource  # noqa: E402
from conftest import assert_same_state, model_state, setup_for_method  # noqa: E402

ARRAYS = ("values", "target", "prediction", "base_value", "delta")


def store_arrays(store) -> dict:
    return {k: np.asarray(v[:]) for k, v in store.root.arrays()}


def assert_same_store(a, b):
    arrays_a, arrays_b = store_arrays(a), store_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


class Rows(torch.utils.data.Dataset):
    """(x, y) items; can raise KeyboardInterrupt at one row (an interrupted job) and
    records the rows it was asked for."""

    def __init__(self, X, y, interrupt_at=None):
        self.X, self.y, self.interrupt_at, self.read = X, y, interrupt_at, []

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if i == self.interrupt_at:
            raise KeyboardInterrupt
        self.read.append(i)
        return torch.from_numpy(self.X[i]), int(self.y[i])


def test_store_holds_the_explanation_of_each_chunk(mlp, X, tmp_path):
    store = explain_dataset(mlp, X, "integrated_gradients", out=tmp_path / "ig.zarr", batch_size=10, n_steps=16,
                            progress=False)
    assert store.complete and len(store) == 53 and store.method == "integrated_gradients"
    assert store.params["n_steps"] == 16 and store.values.chunks == (10, 12)
    full = store[:]
    for start in range(0, 53, 10):  # each chunk is exactly lumos.explain on those rows
        ref = lumos.explain(mlp, X[start:start + 10], "integrated_gradients", n_steps=16)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(full, name)[start:start + 10], getattr(ref, name), err_msg=name)
    # completeness holds row by row in the stored fields
    scores = full.prediction[np.arange(53), full.target]
    np.testing.assert_allclose(full.values.sum(1) - (scores - full.base_value), full.delta, atol=1e-5)
    np.testing.assert_array_equal(full.target, full.prediction.argmax(1))


def test_resume_after_interruption_equals_uninterrupted_run(mlp, X, tmp_path):
    y = np.arange(53) % 3
    whole = explain_dataset(mlp, Rows(X, y), "ig", out=tmp_path / "whole.zarr", batch_size=10, n_steps=8,
                            target="label", progress=False)
    broken = Rows(X, y, interrupt_at=35)
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(mlp, broken, "ig", out=tmp_path / "resumed.zarr", batch_size=10, n_steps=8,
                        target="label", progress=False)
    assert open_store(tmp_path / "resumed.zarr").done.tolist() == [True, True, True, False, False, False]
    again = Rows(X, y)
    resumed = explain_dataset(mlp, again, "ig", out=tmp_path / "resumed.zarr", batch_size=10, n_steps=8,
                              target="label", progress=False)
    assert min(i for i in again.read if i not in (0, 52)) == 30  # chunks 0-2 skipped (0/52: data digest)
    assert_same_store(whole, resumed)
    np.testing.assert_array_equal(resumed[:].target, y)


def test_every_source_kind_gives_the_same_store(mlp, X, tmp_path):
    zarr = pytest.importorskip("zarr")
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    za = zarr.create_array(str(tmp_path / "X.zarr"), shape=X.shape, chunks=(7, 12), dtype="float32")
    za[:] = X
    loader = torch.utils.data.DataLoader(Rows(X, np.zeros(53, int)), batch_size=4, shuffle=True)
    sources = {"array": X, "memmap": mm, "zarr": za, "dataset": Rows(X, np.zeros(53, int)), "loader": loader,
               "tensor": torch.from_numpy(X)}
    stores = {k: explain_dataset(mlp, d, "saliency", out=tmp_path / f"{k}.out", batch_size=16, progress=False)
              for k, d in sources.items()}
    for k, s in stores.items():
        assert_same_store(stores["array"], s)


def test_memmap_travels_as_a_file_reference(X, tmp_path):
    np.save(tmp_path / "X.npy", np.repeat(X, 40, axis=0))
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    for view, offset in ((mm, 0), (mm[100:], 100)):
        blob = pickle.dumps(ArraySource(view))
        assert len(blob) < 1000  # not the 100 kB of data
        back = pickle.loads(blob)
        np.testing.assert_array_equal(back.read(5, 9)[0], np.asarray(mm[offset + 5:offset + 9]))


def test_target_options(mlp, X, tmp_path):
    fixed = explain_dataset(mlp, X, "saliency", out=tmp_path / "a", batch_size=20, target=2, progress=False)
    assert (fixed[:].target == 2).all()
    per_row = np.arange(53) % 3
    rows = explain_dataset(mlp, X, "saliency", out=tmp_path / "b", batch_size=20, target=per_row, progress=False)
    np.testing.assert_array_equal(rows[:].target, per_row)
    with pytest.raises(ValueError, match="one entry per row"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "c", target=[0, 1], progress=False)
    with pytest.raises(ValueError, match="yields inputs only"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "d", target="label", progress=False)


def test_bad_paths_and_foreign_stores_get_clear_errors(mlp, X, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "file.txt", progress=False)
    with pytest.raises(FileNotFoundError, match="parent folder"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "no" / "such" / "s.zarr", progress=False)
    with pytest.raises(ValueError, match="out must name"):
        explain_dataset(mlp, X, "saliency", out=None, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a lumos store"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "other", progress=False)
    explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", batch_size=20, n_steps=8, progress=False)
    with pytest.raises(ValueError, match="written by method 'integrated_gradients'.*method"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "ig.zarr", batch_size=20, progress=False)
    with pytest.raises(ValueError, match="another configuration.*explainer"):
        explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", batch_size=20, n_steps=16, progress=False)
    with pytest.raises(ValueError, match="chunk_rows"):
        explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", batch_size=10, n_steps=8, progress=False)
    with pytest.raises(ValueError, match="data"):
        explain_dataset(mlp, X + 1, "ig", out=tmp_path / "ig.zarr", batch_size=20, n_steps=8, progress=False)
    replaced = explain_dataset(mlp, X, "saliency", out=tmp_path / "ig.zarr", batch_size=20, overwrite=True,
                               progress=False)
    assert replaced.method == "saliency" and replaced.complete
    with pytest.raises(FileNotFoundError, match="no store"):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="not a lumos store"):
        open_store(tmp_path / "other")


def test_bad_arguments_get_clear_errors(mlp, X, tmp_path):
    with pytest.raises(ValueError, match="engine must be"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s", engine="spark", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        explain_dataset(mlp, X, "no_such_method", out=tmp_path / "s", progress=False)
    with pytest.raises(TypeError, match="IterableDataset"):
        explain_dataset(mlp, torch.utils.data.IterableDataset(), "saliency", out=tmp_path / "s", progress=False)
    with pytest.raises(TypeError, match="np.load"):
        explain_dataset(mlp, "X.npy", "saliency", out=tmp_path / "s", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            explain_dataset(mlp, X, "saliency", out=tmp_path / "s", device="cuda", progress=False)


def test_explainer_instance_device_and_model_left_as_found(mlp, X, tmp_path):
    mlp.train()
    before = model_state(mlp)
    explainer = lumos.IntegratedGradients(mlp, n_steps=8, baseline=0.5)
    store = explain_dataset(None, X, explainer, out=tmp_path / "s", batch_size=25, device="cpu", progress=False)
    assert_same_state(before, model_state(mlp))
    ref = explainer.explain(X[:25])
    np.testing.assert_array_equal(store[:25].values, ref.values)
    with pytest.raises(ValueError, match="another model"):
        explain_dataset(MLP(12, 3), X, explainer, out=tmp_path / "t", progress=False)


def test_open_store_slices_lazily(mlp, X, tmp_path):
    explain_dataset(mlp, X, "ig", out=tmp_path / "s", batch_size=10, n_steps=8, progress=False)
    store = open_store(tmp_path / "s")
    full = store.load()
    assert store[7].values.shape == (1, 12)
    np.testing.assert_array_equal(store[7].values, full.values[7:8])
    np.testing.assert_array_equal(store[-1].delta, full.delta[-1:])
    np.testing.assert_array_equal(store[[30, 2, 2]].values, full.values[[30, 2, 2]])
    mask = np.arange(53) % 5 == 0
    np.testing.assert_array_equal(store[mask].prediction, full.prediction[mask])
    np.testing.assert_array_equal(store[40:10:-3].values, full.values[40:10:-3])
    assert sum(len(c) for c in store.iter_chunks()) == 53
    with pytest.raises(IndexError):
        store[53]
    assert "chunks done=6/6" in repr(store)


def test_summaries_out_of_core_equal_in_memory(tmp_path):
    torch.manual_seed(0)
    model = CNN1d(2, 3, channels=(4, 4), kernel_size=3)
    X = np.random.default_rng(1).normal(size=(41, 2, 10)).astype(np.float32)
    store = explain_dataset(model, X, "gradient_x_input", out=tmp_path / "s", batch_size=8, progress=False)
    full = store.load()
    v, t = full.values.astype(np.float64), full.target
    np.testing.assert_allclose(store.summary().values, np.abs(v).mean(0), rtol=1e-12)
    np.testing.assert_allclose(store.summary("mean").values, v.mean(0), rtol=1e-12, atol=1e-15)
    per_channel = store.summary(keep="channel")
    np.testing.assert_allclose(per_channel.values, np.abs(v).mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(store.summary(keep="time").values, np.abs(v).mean((0, 1)), rtol=1e-12)
    assert per_channel.scope == "global"
    for c in range(3):
        rows = t == c
        assert per_channel.extras["class_count"][c] == rows.sum()
        if rows.any():
            np.testing.assert_allclose(per_channel.extras["per_class"][c], np.abs(v[rows]).mean((0, 2)), rtol=1e-12)
        else:
            assert np.isnan(per_channel.extras["per_class"][c]).all()
    with pytest.raises(ValueError, match="out of range"):
        store.summary(keep=(2,))


def test_incomplete_store_refuses_missing_rows_and_summaries(mlp, X, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(mlp, Rows(X, np.zeros(53, int), interrupt_at=25), "saliency", out=tmp_path / "s",
                        batch_size=10, progress=False)
    store = open_store(tmp_path / "s")
    assert not store.complete and store[:20].values.shape == (20, 12)
    with pytest.raises(ValueError, match="not written yet"):
        store[15:25]
    with pytest.raises(ValueError, match="incomplete"):
        store.summary()


@pytest.mark.parametrize("name", sorted(set(lumos.list_methods()) - {"permutation_importance"}))
def test_every_registered_method_streams_to_a_store(name, mlp, X, tmp_path):
    model, x, options = setup_for_method(name, mlp, X)
    ref = lumos.explain(model, x[:6], name, **options)
    store = explain_dataset(model, x, name, out=tmp_path / "s", batch_size=6, progress=False, **options)
    got = store[:6]
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got.target, ref.target)


def test_global_methods_are_refused_with_the_alternative(mlp, X, tmp_path):
    from lumos.methods.agnostic import PermutationImportance

    for method in ("permutation_importance", PermutationImportance(mlp)):
        with pytest.raises(ValueError, match=r"global method .*PermutationImportance\(model\)\.explain\(X, y\)"):
            explain_dataset(mlp, X, method, out=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_progress_bar_reports_throughput(mlp, X, tmp_path, capsys):
    explain_dataset(mlp, X, "saliency", out=tmp_path / "s", batch_size=10, progress=True)
    assert "input/s" in capsys.readouterr().err


def test_lumos_imports_without_the_scale_extra(monkeypatch, mlp, X, tmp_path):
    code = ("import sys\nfor m in ('zarr', 'dask', 'distributed'): sys.modules[m] = None\n"
            "import lumos, lumos.scale\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r"lumos-xai\[scale\]"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s", progress=False)


def test_command_line_writes_the_same_store(mlp, X, tmp_path):
    from click.testing import CliRunner

    from lumos.cli.explain_dataset import explain_dataset_command

    torch.save(mlp, tmp_path / "model.pt")  # a whole pickled module: read only with --trust-model
    np.save(tmp_path / "X.npy", X)
    args = [str(tmp_path / "model.pt"), str(tmp_path / "X.npy"), "--trust-model", "-m", "ig",
            "-o", str(tmp_path / "cli.zarr"), "--batch-size", "20", "-O", "n_steps=8", "-q"]
    result = CliRunner().invoke(explain_dataset_command, args)
    assert result.exit_code == 0, result.output
    assert "53 rows" in result.output and "%|" not in result.output  # -q: the result, no progress bar
    api = explain_dataset(mlp, X, "ig", out=tmp_path / "api.zarr", batch_size=20, n_steps=8, progress=False)
    assert_same_store(api, open_store(tmp_path / "cli.zarr"))
    clash = CliRunner().invoke(explain_dataset_command, args[:-3] + ["-O", "n_steps=16", "--no-progress"])
    assert clash.exit_code == 2 and "lumos: error:" in clash.output and "another configuration" in clash.output
