"""Explain whole datasets: streamed into a Zarr store, resumable, on any device, on Dask.

>>> store = lumos.explain_dataset(model, X_memmap, "integrated_gradients", out="ig.zarr",
...                               chunk_rows=256, n_steps=32)
>>> store[0:10].values                      # reads 10 rows only
>>> store.summary(keep="channel").values    # mean |IG| per channel, out of core

Needs the ``scale`` extra (``pip install 'lumos-xai[scale]'``: zarr >= 3, dask[distributed]);
importing lumos does not.

Local engine
    Chunks of ``chunk_rows`` rows are read, explained and written one after the other;
    memory is bounded by one chunk. Each chunk gets a record once written (a hash of its
    input rows, checksums of its stored rows; written atomically), so an interrupted call,
    even one killed with SIGKILL, resumes when called again with the same arguments.
    Resuming verifies instead of trusting: chunks whose files were lost or damaged are
    recomputed, and input rows that differ from those of the first run are refused.
    ``open_store`` checks the checksums on every read (``verify=False`` skips them).
    Stochastic methods (``stochastic = True``) get ``row_offset`` so each row's random
    numbers depend on its position only, not on ``chunk_rows``; the seed they report is
    kept in the store (``store.seed``; with ``seed=None`` one seed is drawn for the run and
    kept on resume). ``chunk_rows`` is part of the fingerprint (it is the Zarr chunking):
    resuming with another ``chunk_rows`` is refused. The rows of each model call are the
    method's own ``batch_size`` option, as everywhere in lumos.

Devices
    Every explainer runs on the device of the model's parameters. ``device="cuda"``
    moves a private copy of the model there once for the run; the user's model stays
    where it is. With the Dask engine, each worker moves its own copy of the model.

Dask engine (``engine="dask"``)
    The job (model, explainer, data source) is pickled once and installed on every worker
    by a worker plugin; tasks only carry a chunk index and write their chunk straight into
    the store, so the store folder must be on a file system the workers share. Workers
    that die have their chunks rerun; the store equals the local engine's.
    Without ``client``, a LocalCluster of ``n_workers`` one-thread processes is started and
    closed for the call. For a cluster of many machines, build the client there and pass
    it; nothing else changes, e.g. on SLURM with dask-jobqueue::

        from dask_jobqueue import SLURMCluster
        from distributed import Client
        cluster = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="04:00:00",
                               job_extra_directives=["--gres=gpu:1"])   # optional
        cluster.scale(jobs=10)                       # 10 nodes x 8 workers
        client = Client(cluster)
        lumos.explain_dataset(model, zarr.open_array("/shared/ecg.zarr"), "ig",
                              out="/shared/ig.zarr", engine="dask", client=client, device="cuda")

    Requirements: lumos (and the model's class) importable on the workers, the data and
    the store on a shared path (a memmap is reopened by file name on each worker, a
    Zarr array by its store path; an in-memory array is shipped with the job).
    A scheduler file (``Client(scheduler_file=...)``) or ``Client("tcp://host:8786")``
    works the same way.
"""
from lumos.scale.api import explain_dataset
from lumos.scale.reader import StoredExplanation, open_store

__all__ = ["explain_dataset", "open_store", "StoredExplanation"]
