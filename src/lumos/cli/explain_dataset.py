"""``lumos explain-dataset``: the command-line face of :func:`lumos.explain_dataset`.

    lumos explain-dataset model.pt X_test.npy --method ig --out ig.zarr --chunk-rows 256 \\
        -O n_steps=32 --device cuda --engine dask --scheduler tcp://head-node:8786

MODEL and DATA are read by :mod:`lumos.cli.loaders`, as by every other command (no code
from either file runs unless ``--trust-model`` is given).
"""
from __future__ import annotations

from pathlib import Path

import click

from lumos.cli.common import model_file_options, user_errors
from lumos.cli.loaders import load_array, load_model
from lumos.cli.options import parse_options, parse_target


@click.command("explain-dataset")
@click.argument("model_path", metavar="MODEL")
@click.argument("data_path", metavar="DATA")
@model_file_options
@click.option("--method", "-m", default="integrated_gradients", show_default=True, help="Registered method name.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Folder of the Zarr store to write or resume.")
@click.option("--key", default=None, help="Array name inside an .npz archive or a Zarr group.")
@click.option("--chunk-rows", default=256, show_default=True, type=click.IntRange(min=1),
              help="Rows per chunk (per explain call and per Zarr chunk); the rows per model call are the "
                   "method's batch_size option (-O batch_size=64).")
@click.option("--target", default=None,
              help="'predicted' (default; 'pred' also accepted), 'label' or an output index.")
@click.option("--device", default=None, help="Torch device for the run, e.g. cuda (a private copy of the model goes there).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None,
              help="Dask scheduler address (tcp://host:8786) or scheduler JSON file; default: a LocalCluster.")
@click.option("--n-workers", default=None, type=click.IntRange(min=1), help="Workers of the LocalCluster.")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--overwrite", is_flag=True, help="Discard an existing store instead of resuming it.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar (also off under --quiet, given here or to the group).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (as --no-progress).")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE",
              help="Method option, value read as JSON when it parses, a .npy/.npz file as an array "
                   "(e.g. -O n_steps=32 -O baseline=0.5 -O background=bg.npy).")
def explain_dataset_command(model_path, data_path, factory, trust_model, method, out, key, chunk_rows, target,
                            device, engine, scheduler, n_workers, retries, overwrite, progress, quiet, options):
    """Explain every row of DATA with MODEL into a resumable Zarr store (rerun to resume).

    MODEL: TorchScript (.pt), torch.export (.pt2), ONNX (.onnx), or a state dict with --factory (see
    `lumos explain --help` for what --trust-model adds).

    DATA: .npy (memory-mapped), .npz (--key), a Zarr folder (--key for a group), .csv, .tsv, .ts or .arff.
    """
    ctx = click.get_current_context(silent=True)
    parent = ctx.find_root().obj if ctx is not None else None
    if quiet or (isinstance(parent, dict) and parent.get("quiet")):
        progress = False
    with user_errors():
        target = parse_target(target, label=True)
        method_options = parse_options(options)
        if scheduler is not None and engine != "dask":
            raise ValueError("--scheduler needs --engine dask")
        model = load_model(model_path, factory, trust_model=trust_model, device="cpu")
        data = load_array(data_path, key)
        from lumos.scale import explain_dataset

        client = None
        if scheduler is not None:
            from distributed import Client

            client = Client(scheduler_file=scheduler) if Path(scheduler).is_file() else Client(scheduler)
        try:
            store = explain_dataset(model, data, method, out=out, chunk_rows=chunk_rows, target=target,
                                    device=device, engine=engine, client=client, n_workers=n_workers,
                                    retries=retries, overwrite=overwrite, progress=progress, **method_options)
        finally:
            if client is not None:
                client.close()
    click.echo(f"{store.method}: {len(store)} rows in {store.path} "
               f"({int(store.done.sum())}/{store.done.size} chunks done)")

