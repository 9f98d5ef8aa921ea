"""``lumos.explain_dataset``: explain every row of a dataset into a Zarr store."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from lumos.core import registry
from lumos.core.explanation import to_jsonable
from lumos.methods.base import Explainer
from lumos.scale import _deps
from lumos.scale import store as st
from lumos.scale.engines import progress_bar, run_dask, run_local
from lumos.scale.job import Job, Targets
from lumos.scale.reader import StoredExplanation, open_store
from lumos.scale.sources import as_source

ENGINES = ("local", "dask")


def _lumos_version() -> str:
    import lumos

    return getattr(lumos, "__version__", "unknown")


def _refuse_global(cls: type) -> None:
    if cls.scope == "global":
        raise ValueError(f"{getattr(cls, 'name', cls.__name__)} is a global method (one explanation of a whole "
                         "labelled set, not one per input); explain_dataset streams per-input explanations: "
                         f"call {cls.__name__}(model).explain(X, y) on the set instead")


def make_explainer(model, method, options: dict) -> tuple[Explainer, dict]:
    """An explainer from a registered name (constructor options split from call options,
    as in :func:`lumos.explain`) or an explainer instance (all options go to the call).
    Global methods (permutation importance) are refused: they do not stream per input."""
    if isinstance(method, Explainer):
        _refuse_global(type(method))
        if model is not None and model is not method.model:
            raise ValueError("method is an explainer built for another model; pass model=None or the same model")
        return method, dict(options)
    if not isinstance(method, str):
        raise TypeError(f"method must be a registered method name or an Explainer instance, got {type(method).__name__}")
    if model is None:
        raise ValueError("model is required when method is given by name")
    import lumos.methods  # noqa: F401  (registers the families)

    cls = registry.get(method)
    _refuse_global(cls)
    config, call = registry.split_options(cls, options)
    return cls(model, **config), call


def private_copy_on(model, device):
    """A copy of a torch model on ``device`` for a local run (moved once, not per chunk);
    the user's model stays where it is. None when no device is asked for."""
    if device is None:
        return None
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"device={device!r} applies to torch models only; this model is a {type(model).__name__}")
    from lumos.core.view import _check_device

    dev = _check_device(device)
    return copy.deepcopy(model).to(dev)


def explain_dataset(model, data, method="integrated_gradients", out=None, *, chunk_rows: int = 256,
                    target=None, device=None, engine: str = "local", client=None, n_workers: int | None = None,
                    retries: int = 2, overwrite: bool = False, progress: bool = True,
                    **options) -> StoredExplanation:
    """Explain every row of ``data`` and write the results into a chunked Zarr store.

    Rows are read, explained and written ``chunk_rows`` at a time (memory bounded by one
    chunk whatever the dataset size; within a chunk the explainer's own ``batch_size`` option,
    the one memory knob of every method, bounds the rows of each model call). Each written chunk gets a record (a hash of its input
    rows, checksums of its stored rows), so calling again with the same arguments resumes
    where a previous call stopped: every recorded chunk is verified, and those whose files
    were lost or damaged are recomputed. A store written by another method, configuration,
    model or data (any chunk's input rows differing) is refused. Explainers that declare
    ``stochastic = True`` get ``row_offset=start`` for rows ``[start, stop)``, so their
    per-row random numbers do not depend on ``chunk_rows``; an explainer with ``seed=None``
    gets one seed drawn for the whole run (recorded in the store).

    Parameters
    ----------
    model : torch.nn.Module or callable
        The model (``None`` when ``method`` is an explainer instance).
    data : array, np.memmap, Zarr array, torch Dataset or DataLoader
        ``N`` inputs (``(N, ...)``); torch items may be ``x`` or ``(x, y, ...)``.
    method : str or Explainer
        A registered method name (constructor options are taken from ``options``, as in
        :func:`lumos.explain`) or a configured explainer instance.
    out : path
        Folder of the Zarr store (created; its parent folder must exist).
    chunk_rows : int
        Rows per chunk: per explain() call and per Zarr chunk.
    target : None, int, "label" or array of N ints
        Output to explain: the predicted class, one output, the dataset's label, or per row.
    device : None, "cpu", "cuda", "cuda:1"...
        None runs on the model's device. Otherwise a private copy of the model is moved
        there once for the run (on each Dask worker: the worker's copy); the user's model
        stays where it is.
    engine : {"local", "dask"}
        ``"dask"`` runs chunks on the workers of ``client`` (a ``distributed.Client``) or on
        a LocalCluster of ``n_workers`` processes started and closed for this call.
    retries : int
        Dask engine: reruns of a chunk whose task raised (chunks of a dead worker are
        rerun by the scheduler anyway).
    overwrite : bool
        Discard an existing store at ``out`` instead of resuming it (also the way out when
        the data differ from those the store was written from).
    progress : bool
        Show a tqdm progress bar with the throughput (inputs/s).
    **options
        Method options (constructor or explain() options), e.g. ``n_steps=32``, ``batch_size=128``.

    Returns
    -------
    StoredExplanation
        The store, opened lazily (see :func:`lumos.open_store`).
    """
    _deps.zarr()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "dask":
        _deps.require("distributed", "engine='dask'")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer (rows per chunk), got {chunk_rows!r}")
    path = st.check_out_path(out)
    explainer, call_options = make_explainer(model, method, options)
    if getattr(type(explainer), "stochastic", False) and getattr(explainer, "seed", 0) is None:
        # one seed for the whole run, not one per chunk; a resumed run keeps the seed it recorded
        recorded = None if overwrite else (st.read_attrs(path) or {}).get("seed")
        explainer = copy.copy(explainer)
        explainer.seed = int(recorded) if isinstance(recorded, int) else explainer._call_seed()
    source = as_source(data)
    targets = Targets(target, len(source))
    described = source.describe()
    fingerprint = {
        "method": explainer.name, "explainer": st.explainer_digest(explainer),
        "model": st.model_digest(explainer.model), "options": st.digest(to_jsonable(call_options)),
        "data": described, "chunk_rows": chunk_rows, "target": targets.describe(),
    }
    header = {"method": explainer.name, "params": explainer.params(), "options": call_options,
              "fingerprint": fingerprint, "n_rows": len(source), "chunk_rows": chunk_rows,
              "sample_shape": described["sample_shape"], "lumos_version": _lumos_version()}
    st.prepare(path, header, overwrite=overwrite)
    job = Job(explainer, source, targets, call_options, path, chunk_rows, device=device)
    pending = job.verify()  # recorded chunks are checked, not trusted; other input data are refused
    todo = set(pending)
    done_rows = sum(job.bounds(i)[1] - job.bounds(i)[0] for i in range(job.n_chunks) if i not in todo)
    with progress_bar(job, done_rows, progress, f"{explainer.name} [{engine}]") as bar:
        if engine == "local":
            moved = private_copy_on(explainer.model, device)
            if moved is not None:
                job.explainer = explainer.with_model(moved)
            run_local(job, pending, bar)
        else:
            if device is not None:
                torch.device(device)  # a malformed name fails here, not on every worker
            first_alone = (st.read_attrs(path) or {}).get("fields") is None
            if first_alone and pending:  # arrays from a small probe here: no chunk has to run alone
                first_alone = not job.create_arrays_from_probe()
            run_dask(job, pending, bar, client=client, n_workers=n_workers, retries=retries, first_alone=first_alone)
    return open_store(Path(path))
