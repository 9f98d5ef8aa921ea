"""explain_dataset (local engine), the Zarr store, resume, sources, open_store, summaries."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("zarr")

import lumos  # noqa: E402
from lumos.models.reference import MLP, CNN1d  # noqa: E402
from lumos.scale import explain_dataset, open_store  # noqa: E402
from lumos.scale.job import Job  # noqa: E402
from lumos.scale.sources import ArraySource  # noqa: E402
from lumos.scale.store import StoreDamagedError  # noqa: E402
from conftest import assert_same_state, model_state, setup_for_method  # noqa: E402

ARRAYS = ("values", "target", "prediction", "base_value", "delta")


def store_arrays(store) -> dict:
    return {k: np.asarray(v[:]) for k, v in store.root.arrays()}


def assert_same_store(a, b):
    arrays_a, arrays_b = store_arrays(a), store_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def spy_on_chunks(monkeypatch) -> list:
    """The first row of every chunk explained from now on (in order)."""
    explained = []
    real = Job.explain

    def explain(self, x, labels, start, stop):
        explained.append(start)
        return real(self, x, labels, start, stop)

    monkeypatch.setattr(Job, "explain", explain)
    return explained


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
    store = explain_dataset(mlp, X, "integrated_gradients", out=tmp_path / "ig.zarr", chunk_rows=10, n_steps=16,
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


def test_resume_after_interruption_equals_uninterrupted_run(mlp, X, tmp_path, monkeypatch):
    y = np.arange(53) % 3
    whole = explain_dataset(mlp, Rows(X, y), "ig", out=tmp_path / "whole.zarr", chunk_rows=10, n_steps=8,
                            target="label", progress=False)
    broken = Rows(X, y, interrupt_at=35)
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(mlp, broken, "ig", out=tmp_path / "resumed.zarr", chunk_rows=10, n_steps=8,
                        target="label", progress=False)
    assert open_store(tmp_path / "resumed.zarr").done.tolist() == [True, True, True, False, False, False]
    explained = spy_on_chunks(monkeypatch)
    again = Rows(X, y)
    resumed = explain_dataset(mlp, again, "ig", out=tmp_path / "resumed.zarr", chunk_rows=10, n_steps=8,
                              target="label", progress=False)
    assert explained == [30, 40, 50]  # chunks 0-2 verified (their rows read and hashed), not explained again
    assert sorted(set(again.read)) == list(range(53))
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
    stores = {k: explain_dataset(mlp, d, "saliency", out=tmp_path / f"{k}.out", chunk_rows=16, progress=False)
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
    fixed = explain_dataset(mlp, X, "saliency", out=tmp_path / "a", chunk_rows=20, target=2, progress=False)
    assert (fixed[:].target == 2).all()
    per_row = np.arange(53) % 3
    rows = explain_dataset(mlp, X, "saliency", out=tmp_path / "b", chunk_rows=20, target=per_row, progress=False)
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
    explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", chunk_rows=20, n_steps=8, progress=False)
    with pytest.raises(ValueError, match="written by method 'integrated_gradients'.*method"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "ig.zarr", chunk_rows=20, progress=False)
    with pytest.raises(ValueError, match="another configuration.*explainer"):
        explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", chunk_rows=20, n_steps=16, progress=False)
    with pytest.raises(ValueError, match="chunk_rows"):
        explain_dataset(mlp, X, "ig", out=tmp_path / "ig.zarr", chunk_rows=10, n_steps=8, progress=False)
    with pytest.raises(ValueError, match="data"):
        explain_dataset(mlp, X + 1, "ig", out=tmp_path / "ig.zarr", chunk_rows=20, n_steps=8, progress=False)
    replaced = explain_dataset(mlp, X, "saliency", out=tmp_path / "ig.zarr", chunk_rows=20, overwrite=True,
                               progress=False)
    assert replaced.method == "saliency" and replaced.complete
    with pytest.raises(FileNotFoundError, match="no store"):
        open_store(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="not a lumos store"):
        open_store(tmp_path / "other")


def test_bad_arguments_get_clear_errors(mlp, X, tmp_path):
    with pytest.raises(ValueError, match="engine must be"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s", engine="spark", progress=False)
    with pytest.raises(ValueError, match="chunk_rows"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s", chunk_rows=0, progress=False)
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
    store = explain_dataset(None, X, explainer, out=tmp_path / "s", chunk_rows=25, device="cpu", progress=False)
    assert_same_state(before, model_state(mlp))
    ref = explainer.explain(X[:25])
    np.testing.assert_array_equal(store[:25].values, ref.values)
    with pytest.raises(ValueError, match="another model"):
        explain_dataset(MLP(12, 3), X, explainer, out=tmp_path / "t", progress=False)


def test_open_store_slices_lazily(mlp, X, tmp_path):
    explain_dataset(mlp, X, "ig", out=tmp_path / "s", chunk_rows=10, n_steps=8, progress=False)
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
    store = explain_dataset(model, X, "gradient_x_input", out=tmp_path / "s", chunk_rows=8, progress=False)
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
                        chunk_rows=10, progress=False)
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
    store = explain_dataset(model, x, name, out=tmp_path / "s", chunk_rows=6, progress=False, **options)
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
    explain_dataset(mlp, X, "saliency", out=tmp_path / "s", chunk_rows=10, progress=True)
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
            "-o", str(tmp_path / "cli.zarr"), "--chunk-rows", "20", "-O", "n_steps=8", "-q"]
    result = CliRunner().invoke(explain_dataset_command, args)
    assert result.exit_code == 0, result.output
    assert "53 rows" in result.output and "%|" not in result.output  # -q: the result, no progress bar
    api = explain_dataset(mlp, X, "ig", out=tmp_path / "api.zarr", chunk_rows=20, n_steps=8, progress=False)
    assert_same_store(api, open_store(tmp_path / "cli.zarr"))
    clash = CliRunner().invoke(explain_dataset_command, args[:-3] + ["-O", "n_steps=16", "--no-progress"])
    assert clash.exit_code == 2 and "lumos: error:" in clash.output and "another configuration" in clash.output


# -- a resumed store is verified, not trusted ---------------------------------------------
def _swap(a, b):
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


def _flip_tail(f):
    data = bytearray(f.read_bytes())
    half = len(data) // 2
    data[half:] = bytes(b ^ 0xFF for b in data[half:])
    f.write_bytes(bytes(data))


def _garble_flag(p, chunk):
    """Garble the record of a chunk (the "done" flag of the earlier layout, where there is one)."""
    flag = p / "records" / f"{chunk}.json"
    (flag if flag.exists() else p / "done" / "c" / str(chunk)).write_bytes(b"\x00{garbage\xff")


def _alter_record_input(f):
    text = f.read_text()
    digest = json.loads(text)["input"]["blake2b"]
    f.write_text(text.replace(digest, ("0" if digest[0] != "0" else "1") + digest[1:]))


# name -> (damage to the store at p, first rows of the chunks a resume recomputes, the read error)
DAMAGES = {
    "deleted chunk file": (lambda p: (p / "values/c/2/0").unlink(), [20],
                           r"chunk 2 \(rows 20:30\).*'values'.*checksum"),
    "swapped chunk files": (lambda p: _swap(p / "values/c/1/0", p / "values/c/2/0"), [10, 20],
                            r"chunk 1 \(rows 10:20\).*'values'"),
    "garbled chunk bytes": (lambda p: _flip_tail(p / "values/c/3/0"), [30], r"chunk 3 \(rows 30:40\).*'values'"),
    "chunk replaced by garbage": (lambda p: (p / "target/c/4").write_bytes(bytes(range(256)) * 2), [40],
                                  r"chunk 4 \(rows 40:50\).*'target' cannot be decoded"),
    "garbled record": (lambda p: _garble_flag(p, 2), [20],
                       r"chunk 2 \(rows 20:30\).*record records/2.json is not valid JSON"),
    "record altered": (lambda p: _alter_record_input(p / "records/3.json"), [30],
                       r"chunk 3 \(rows 30:40\).*does not match its own checksum"),
    "deleted record": (lambda p: (p / "records/5.json").unlink(), [50], r"first: chunk 5, rows 50:53.*not written yet"),
    "missing array metadata": (lambda p: (p / "delta/zarr.json").unlink(), [], r"'delta' has no metadata.*zarr.json"),
    "deleted array": (lambda p: shutil.rmtree(p / "base_value"), [0, 10, 20, 30, 40, 50],
                      r"'base_value' has no metadata"),
}


@pytest.fixture(scope="module")
def reference_ig(tmp_path_factory):
    """An intact IG store (53 rows, chunks of 10) and its arrays."""
    torch.manual_seed(0)
    model = MLP(12, 3, hidden=(16,))
    X = np.random.default_rng(0).normal(size=(53, 12)).astype(np.float32)
    path = tmp_path_factory.mktemp("reference") / "ig.zarr"
    store = explain_dataset(model, X, "ig", out=path, chunk_rows=10, n_steps=8, progress=False)
    return model, X, path, store_arrays(store)


def _damaged_copy(reference_ig, tmp_path, damage):
    model, X, path, arrays = reference_ig
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    damage(copy)
    return model, X, copy, arrays


@pytest.mark.parametrize("name", list(DAMAGES))
def test_resume_recomputes_exactly_the_damaged_chunks(name, reference_ig, tmp_path, monkeypatch):
    damage, recomputed, _ = DAMAGES[name]
    model, X, copy, arrays = _damaged_copy(reference_ig, tmp_path, damage)
    explained = spy_on_chunks(monkeypatch)
    store = explain_dataset(model, X, "ig", out=copy, chunk_rows=10, n_steps=8, progress=False)
    assert explained == recomputed
    got = store_arrays(store)
    assert sorted(got) == sorted(arrays)
    for key in arrays:  # byte for byte what an intact run wrote: no NaN, no other chunk's rows
        assert got[key].tobytes() == arrays[key].tobytes(), key
    store.verify()
    np.testing.assert_array_equal(store[:].values, arrays["values"])


@pytest.mark.parametrize("name", list(DAMAGES))
def test_reading_a_damaged_store_names_the_chunk(name, reference_ig, tmp_path):
    damage, _, message = DAMAGES[name]
    _, _, copy, _ = _damaged_copy(reference_ig, tmp_path, damage)
    with pytest.raises(ValueError, match=message) as info:
        open_store(copy)[:]
    assert "explain_dataset again with the same arguments" in str(info.value)
    if "metadata" not in message:  # the store opens; reading the damaged rows raises, the others read
        store = open_store(copy)
        first = int(re.search(r"chunk (\d)", message).group(1))
        with pytest.raises(ValueError, match=message):
            store.verify()
        with pytest.raises(ValueError, match=message):
            store[first * 10 + 1]
        intact = 0 if first != 0 else 30
        np.testing.assert_array_equal(store[intact:intact + 10].values, reference_ig[3]["values"][intact:intact + 10])


def test_verify_false_skips_the_checksums_but_never_raises_a_codec_error(reference_ig, tmp_path):
    _, _, copy, arrays = _damaged_copy(reference_ig, tmp_path, DAMAGES["swapped chunk files"][0])
    swapped = open_store(copy, verify=False)[10:20].values  # read as asked, unchecked
    np.testing.assert_array_equal(swapped, arrays["values"][20:30])
    (copy / "values/c/4/0").write_bytes(b"not zstd at all")
    with pytest.raises(StoreDamagedError, match=r"chunk 4 \(rows 40:50\).*cannot be decoded") as info:
        open_store(copy, verify=False)[45]
    assert info.value.chunk == 4 and info.value.array == "values"


@pytest.mark.parametrize("change", ["middle rows (first and last shared)", "one row of chunk 3", "labels"])
def test_resume_with_other_data_is_refused_naming_the_chunk(change, mlp, X, tmp_path, monkeypatch):
    y = np.arange(53) % 3
    explain_dataset(mlp, Rows(X, y), "saliency", out=tmp_path / "s.zarr", chunk_rows=10, target="label",
                    progress=False)
    before = store_arrays(open_store(tmp_path / "s.zarr"))
    X2, y2 = X.copy(), y.copy()
    if change.startswith("middle"):
        X2[1:-1] += 1.0  # the rows a two-row fingerprint would see are the same
        expected = r"chunk 0 \(rows 0:10\)"
    elif change.startswith("one row"):
        X2[37, 5] = np.nextafter(X2[37, 5], np.inf)
        expected = r"chunk 3 \(rows 30:40\)"
    else:
        y2[51] = (y2[51] + 1) % 3
        expected = r"chunk 5 \(rows 50:53\)"
    explained = spy_on_chunks(monkeypatch)
    with pytest.raises(ValueError, match=expected + r".*other rows.*new out path, or overwrite=True"):
        explain_dataset(mlp, Rows(X2, y2), "saliency", out=tmp_path / "s.zarr", chunk_rows=10, target="label",
                        progress=False)
    assert explained == []
    after = store_arrays(open_store(tmp_path / "s.zarr"))
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)  # untouched
    fresh = explain_dataset(mlp, Rows(X2, y2), "saliency", out=tmp_path / "s.zarr", chunk_rows=10, target="label",
                            overwrite=True, progress=False)
    # the chunk of rows 50:53 and one call of all 53 rows may take different BLAS kernels (1 ulp on some CPUs)
    np.testing.assert_allclose(fresh[:].values, lumos.explain(mlp, X2, "saliency", target=y2).values, rtol=1e-6,
                               atol=1e-9)


def test_a_store_of_the_old_format_is_refused_with_the_way_out(mlp, X, tmp_path):
    explain_dataset(mlp, X, "saliency", out=tmp_path / "s.zarr", chunk_rows=10, progress=False)
    meta = tmp_path / "s.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["lumos"]["format"] = "lumos.store/1"
    meta.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="older lumos.*overwrite=True"):
        explain_dataset(mlp, X, "saliency", out=tmp_path / "s.zarr", chunk_rows=10, progress=False)
    with pytest.raises(ValueError, match="older lumos.*overwrite=True"):
        open_store(tmp_path / "s.zarr")


ZYGOTE = r"""
import json, os, signal, sys, time
import numpy as np, torch
import lumos.methods  # noqa: F401  (imported before the forks; zarr's I/O thread starts in each child)
from lumos.models.reference import MLP
from lumos.scale import explain_dataset

class Slow(MLP):
    def forward(self, x):
        time.sleep(0.004)
        return super().forward(x)

X = np.random.default_rng(0).normal(size=(160, 12)).astype(np.float32)
print("ready", flush=True)
for line in sys.stdin:  # "<out> <seconds before kill -9, or inf>": run it in a forked child
    out, delay = line.split()
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        explain_dataset(Slow(12, 3, hidden=(16,)), X, "ig", out=out, chunk_rows=4, n_steps=8, progress=False)
        os._exit(0)
    deadline = began + float(delay)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() >= deadline:
            os.kill(pid, signal.SIGKILL)  # our own child, not yet reaped: its pid cannot have been reused
            done, status = os.waitpid(pid, 0)
            break
        time.sleep(0.002)
    how = "killed" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
    print(json.dumps({"how": how, "seconds": time.perf_counter() - began}), flush=True)
"""


def _records(path):
    return {f.name: json.loads(f.read_text()) for f in sorted((path / "records").glob("[0-9]*.json"))}


def test_kill_9_at_random_times_then_resume_is_byte_identical(tmp_path):
    """A run killed with SIGKILL at random moments (mid-chunk, mid-write, mid-record), then
    resumed, gives a store byte-identical to an uninterrupted run's, records included."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"

        def run(out, delay=float("inf")):
            proc.stdin.write(f"{out} {delay}\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        reference = run(tmp_path / "whole.zarr")
        assert reference["how"] == "exit 0", reference
        total = reference["seconds"]
        out = tmp_path / "killed.zarr"
        log = []
        for attempt in range(5):
            delay = (rng.uniform(0.4, 0.8) if attempt == 0 else rng.uniform(0.1, 0.5)) * total
            result = run(out, delay)
            done = len(_records(out))
            log.append((round(delay, 3), result["how"], done))
        final = run(out)
    finally:
        proc.stdin.close()
        proc.wait(30)
    context = f"seed {seed}, (kill after s, outcome, chunks recorded): {log}"
    assert final["how"] == "exit 0", context
    assert any(how == "killed" and 0 < done < 40 for _, how, done in log), context  # killed mid-run
    whole, resumed = open_store(tmp_path / "whole.zarr"), open_store(out).verify()
    a, b = store_arrays(whole), store_arrays(resumed)
    assert sorted(a) == sorted(b), context
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), (name, context)
    assert _records(tmp_path / "whole.zarr") == _records(out), context


# -- row seeds independent of the chunking ------------------------------------------------
def _spy_on_calls(monkeypatch, explainer, takes_row_offset=True) -> list:
    """(row_offset option, rows) of every explain() call of ``explainer`` from now on."""
    real, seen = explainer.explain, []

    def explain(x, target=None, **options):
        seen.append((options.get("row_offset"), len(x)))
        if not takes_row_offset:
            options.pop("row_offset", None)
        return real(x, target=target, **options)

    monkeypatch.setattr(explainer, "explain", explain)
    return seen


def test_stochastic_explainers_get_the_row_offset_of_each_chunk(mlp, X, tmp_path, monkeypatch):
    explainer = lumos.SmoothGrad(mlp, n_samples=4)
    declared = getattr(type(explainer), "stochastic", False)  # the explainer template declares it (and row_offset)
    monkeypatch.setattr(type(explainer), "stochastic", True, raising=False)
    seen = _spy_on_calls(monkeypatch, explainer, takes_row_offset=declared)
    store = explain_dataset(None, X, explainer, out=tmp_path / "s", chunk_rows=20, progress=False)
    assert seen == [(0, 20), (20, 20), (40, 13)]
    assert store.seed == 0 and store[0].meta["seed"] == 0  # the seed the explanation reports, in the attrs
    deterministic = lumos.Saliency(mlp)
    assert not getattr(type(deterministic), "stochastic", False)
    seen = _spy_on_calls(monkeypatch, deterministic)
    explain_dataset(None, X, deterministic, out=tmp_path / "t", chunk_rows=20, progress=False)
    assert seen == [(None, 20), (None, 20), (None, 13)]  # other methods: called as before


def test_stochastic_rows_do_not_depend_on_the_batch_size(mlp, X, tmp_path):
    if not getattr(lumos.SmoothGrad, "stochastic", False):
        pytest.skip("SmoothGrad does not declare stochastic = True yet (the explainer template)")
    a = explain_dataset(mlp, X, "smoothgrad", out=tmp_path / "a", chunk_rows=10, n_samples=4, progress=False)
    b = explain_dataset(mlp, X, "smoothgrad", out=tmp_path / "b", chunk_rows=16, n_samples=4, progress=False)
    np.testing.assert_array_equal(a[:].values, b[:].values)
    np.testing.assert_array_equal(a[:].values, lumos.explain(mlp, X, "smoothgrad", n_samples=4).values)


def test_batch_size_is_the_explainers_knob_and_device_leaves_the_model(mlp, X, tmp_path):
    a = explain_dataset(mlp, X, "integrated_gradients", out=tmp_path / "a", chunk_rows=16, batch_size=7, n_steps=8,
                        progress=False)
    assert a.params["batch_size"] == 7  # the one memory knob reaches the explainer
    b = explain_dataset(mlp, X, "integrated_gradients", out=tmp_path / "b", chunk_rows=16, n_steps=8, device="cpu",
                        progress=False)
    np.testing.assert_allclose(a[:].values, b[:].values, rtol=1e-5, atol=1e-7)
    assert next(mlp.parameters()).device.type == "cpu"


def test_seed_none_draws_one_seed_for_the_run_and_keeps_it_on_resume(mlp, X, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(mlp, Rows(X, np.zeros(53, int), interrupt_at=25), "smoothgrad", out=tmp_path / "s",
                        chunk_rows=10, n_samples=3, seed=None, progress=False)
    first = open_store(tmp_path / "s").seed
    store = explain_dataset(mlp, Rows(X, np.zeros(53, int)), "smoothgrad", out=tmp_path / "s", chunk_rows=10,
                            n_samples=3, seed=None, progress=False)
    assert store.seed == first
    whole = lumos.explain(mlp, X, "smoothgrad", n_samples=3, seed=first).values
    np.testing.assert_allclose(store[:].values, whole, rtol=1e-5, atol=1e-7)
