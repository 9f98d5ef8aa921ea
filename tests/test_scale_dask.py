"""The Dask engine: a 2-worker LocalCluster (processes) writes the same store as the local
engine, also when a worker is killed mid-run; unpicklable models get a clear error."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

from lumos.models.reference import MLP  # noqa: E402
from lumos.scale import explain_dataset, open_store  # noqa: E402


class SlowMLP(MLP):
    """An MLP whose forward pass sleeps, so that a run lasts long enough to kill a worker."""

    def forward(self, x):
        time.sleep(0.02)
        return super().forward(x)


class LockedMLP(MLP):
    """A model holding a lock: it cannot be pickled for the workers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()


async def _exit_process():
    os._exit(1)  # a crashed worker: no clean-up, no goodbye to the scheduler


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(70, 12)).astype(np.float32)


def assert_same_store(a, b):
    arrays_a = {k: np.asarray(v[:]) for k, v in a.root.arrays()}
    arrays_b = {k: np.asarray(v[:]) for k, v in b.root.arrays()}
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_allclose(arrays_a[name], arrays_b[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_dask_engine_equals_local_engine(client, X, tmp_path):
    torch.manual_seed(0)
    model = MLP(12, 3, hidden=(16,))
    local = explain_dataset(model, X, "ig", out=tmp_path / "local.zarr", chunk_rows=10, n_steps=8, progress=False)
    remote = explain_dataset(model, X, "ig", out=tmp_path / "dask.zarr", chunk_rows=10, n_steps=8, engine="dask",
                             client=client, progress=False)
    assert remote.complete
    assert_same_store(local, remote)
    # a second call on the finished store computes nothing and changes nothing
    again = explain_dataset(model, X, "ig", out=tmp_path / "dask.zarr", chunk_rows=10, n_steps=8, engine="dask",
                            client=client, progress=False)
    assert_same_store(local, again)


@pytest.mark.parametrize("method,options", [("smoothgrad", {"n_samples": 4}), ("lime", {"n_samples": 60})])
def test_stochastic_methods_give_one_calls_values_on_dask(client, X, tmp_path, method, options):
    """#14 item 4: the same seed gives identical rows from explain, explain_dataset (local and
    Dask) and any chunking, because row seeds depend on the row's position only."""
    import lumos

    torch.manual_seed(0)
    model = MLP(12, 3, hidden=(16,))
    whole = lumos.explain(model, X, method, seed=5, **options).values
    local = explain_dataset(model, X, method, out=tmp_path / "l.zarr", chunk_rows=16, seed=5, progress=False,
                            **options)
    remote = explain_dataset(model, X, method, out=tmp_path / "d.zarr", chunk_rows=9, seed=5, engine="dask",
                             client=client, progress=False, **options)
    np.testing.assert_allclose(local[:].values, whole, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(remote[:].values, whole, rtol=1e-5, atol=1e-7)
    small = lumos.explain(model, X, method, seed=5, batch_size=7, **options).values
    np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-7)


def test_dask_engine_resumes_a_local_partial_store(client, X, tmp_path):
    torch.manual_seed(0)
    model = MLP(12, 3, hidden=(16,))
    reference = explain_dataset(model, X, "saliency", out=tmp_path / "ref.zarr", chunk_rows=16, progress=False)
    explain_dataset(model, X, "saliency", out=tmp_path / "mixed.zarr", chunk_rows=16, progress=False)
    root = zarr.open_group(str(tmp_path / "mixed.zarr"), mode="r+")
    for record in (tmp_path / "mixed.zarr" / "records").glob("[2-9].json"):
        record.unlink()  # as if interrupted after two chunks
    root["values"][32:] = 0.0
    (tmp_path / "mixed.zarr" / "values" / "c" / "1" / "0").write_bytes(b"garbage")  # and chunk 1 damaged since
    mixed = explain_dataset(model, X, "saliency", out=tmp_path / "mixed.zarr", chunk_rows=16, engine="dask",
                            client=client, progress=False)
    assert_same_store(reference, mixed)


def test_unpicklable_model_gets_a_clear_error(X, tmp_path):
    model = LockedMLP(12, 3, hidden=(8,))
    with pytest.raises(TypeError, match="cannot be serialised.*lock"):
        explain_dataset(model, X, "saliency", out=tmp_path / "s.zarr", engine="dask", progress=False)


def test_killed_worker_chunks_are_recomputed(client, X, tmp_path):
    torch.manual_seed(0)
    model = SlowMLP(12, 3, hidden=(16,))
    data = X[:60]  # 20 chunks of 3 rows, >= 0.04 s each
    local = explain_dataset(model, data, "saliency", out=tmp_path / "local.zarr", chunk_rows=3, progress=False)
    errors = []

    def run():
        try:
            explain_dataset(model, data, "saliency", out=tmp_path / "dask.zarr", chunk_rows=3, engine="dask",
                            client=client, progress=False)
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    before = set(client.scheduler_info()["workers"])
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the job is under way
        try:
            if open_store(tmp_path / "dask.zarr").done.sum() >= 3:
                break
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    done_at_kill = int(open_store(tmp_path / "dask.zarr").done.sum())
    victim = sorted(before)[0]
    client.run(_exit_process, workers=[victim], wait=False)
    thread.join(120)
    assert not thread.is_alive() and not errors, errors
    assert done_at_kill < 20, "the job finished before the worker was killed"
    assert victim not in client.scheduler_info()["workers"]
    assert_same_store(local, open_store(tmp_path / "dask.zarr"))
