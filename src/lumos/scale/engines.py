"""The two engines that run a :class:`~lumos.scale.job.Job`: a local loop and Dask.

Local: chunks are computed one after the other in this process, with a tqdm progress bar
(inputs per second). Dask: the job (model, explainer, data source) is serialised once with
cloudpickle and installed on every worker by a :class:`JobPlugin` (also on workers that
join or are restarted later); each task only names a chunk index, computes it on its
worker and writes it straight into the store. The scheduler reruns the tasks of a worker
that dies, and ``retries`` reruns tasks that raised.
"""
from __future__ import annotations

import os
import uuid

from tqdm.auto import tqdm

from lumos.scale import _deps
from lumos.scale.job import Job


def progress_bar(job: Job, done_rows: int, enabled: bool, desc: str):
    return tqdm(total=job.n_rows, initial=done_rows, unit="input", unit_scale=True, desc=desc,
                disable=not enabled, smoothing=0.05, dynamic_ncols=True)


def run_local(job: Job, pending: list[int], bar) -> None:
    for index in pending:
        bar.update(job.run_chunk(index))


def serialise(job: Job) -> bytes:
    """cloudpickle the job for the workers, with a clear error when the model (or the
    data source) cannot travel."""
    cloudpickle = _deps.require("cloudpickle", "engine='dask'")
    try:
        payload = cloudpickle.dumps(job)
        cloudpickle.loads(payload)
    except Exception as err:  # noqa: BLE001 (any pickling failure gets the same advice)
        raise TypeError(
            "engine='dask' must send the model, the explainer and the data source to the workers, but they "
            f"cannot be serialised: {type(err).__name__}: {err}. Remove unpicklable attributes (open files, "
            "locks, generators, CUDA streams) from the model or dataset, or use engine='local'."
        ) from err
    return payload


def _job_plugin_class():
    distributed = _deps.require("distributed", "engine='dask'")

    class JobPlugin(distributed.WorkerPlugin):
        """Installs the job on each worker once: unpickled in ``setup``, model moved to
        the job's device."""

        def __init__(self, payload: bytes):
            self.payload = payload
            self.job = None

        def setup(self, worker):
            import cloudpickle

            self.job = cloudpickle.loads(self.payload)
            self.job.prepare()

        def teardown(self, worker):
            self.job = None

    return JobPlugin


def _run_on_worker(plugin_name: str, index: int) -> int:
    from distributed import get_worker

    plugin = get_worker().plugins[plugin_name]
    return plugin.job.run_chunk(index)


def run_dask(job: Job, pending: list[int], bar, client=None, n_workers: int | None = None,
             retries: int = 2, first_alone: bool = True) -> None:
    """Run the pending chunks on a Dask cluster (``client``), or on a LocalCluster of
    ``n_workers`` single-threaded processes started and closed here."""
    distributed = _deps.require("distributed", "engine='dask'")
    payload = serialise(job)
    cluster = None
    if client is None:
        workers = n_workers or max(1, min(os.cpu_count() or 1, 8))
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    elif not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    name = f"lumos-job-{uuid.uuid4().hex[:12]}"
    try:
        client.register_plugin(_job_plugin_class()(payload), name=name)
        todo = list(pending)
        if first_alone and todo:  # the first chunk creates the arrays: run it before the others
            first = todo.pop(0)
            bar.update(client.submit(_run_on_worker, name, first, key=f"{name}-{first}", retries=retries,
                                     pure=False).result())
        futures = [client.submit(_run_on_worker, name, i, key=f"{name}-{i}", retries=retries, pure=False)
                   for i in todo]
        try:
            for fut in distributed.as_completed(futures):
                bar.update(fut.result())
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 (a closing cluster may no longer answer)
            pass
        if cluster is not None:
            client.close()
            cluster.close()
