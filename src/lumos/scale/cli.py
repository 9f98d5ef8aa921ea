"""``lumos explain-dataset``: the command-line face of :func:`lumos.explain_dataset`.

The click command :data:`explain_dataset_command` is registered on the ``lumos`` group by
``lumos.cli`` (``main.add_command(explain_dataset_command)``).

    lumos explain-dataset model.pt X_test.npy --method ig --out ig.zarr --batch-size 256 \\
        -O n_steps=32 --device cuda --engine dask --scheduler tcp://head-node:8786
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np


def load_model(path: str):
    """A TorchScript archive, or a whole module saved with ``torch.save(model, path)``
    (this unpickles the file: load only files you trust)."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 (any failure gets the same advice)
        raise click.BadParameter(f"cannot load a model from {path!r}: {err}", param_hint="MODEL") from err
    if isinstance(model, dict):
        raise click.BadParameter(
            f"{path!r} holds a state_dict, not a model; save the module itself (torch.save(model, path)) or a "
            "TorchScript archive (torch.jit.script(model).save(path))", param_hint="MODEL")
    return model


def load_data(path: str, key: str | None):
    """``.npy`` (memory-mapped), ``.npz`` (array ``key``), or a Zarr array/group folder."""
    p = Path(path)
    if p.suffix == ".npy":
        return np.load(p, mmap_mode="r")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as archive:
            names = archive.files
            if key is None and len(names) != 1:
                raise click.BadParameter(f"{path!r} holds several arrays {names}; choose one with --key",
                                         param_hint="DATA")
            name = key or names[0]
            if name not in names:
                raise click.BadParameter(f"{path!r} has no array {name!r}; it holds {names}", param_hint="--key")
            return archive[name]
    if p.is_dir():
        from lumos.scale import _deps

        zarr = _deps.zarr()
        node = zarr.open(str(p), mode="r")
        if hasattr(node, "shape"):
            return node
        if key is None:
            raise click.BadParameter(f"{path!r} is a Zarr group; name its array with --key", param_hint="DATA")
        return node[key]
    raise click.BadParameter(f"{path!r}: expected a .npy or .npz file or a Zarr folder", param_hint="DATA")


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value (``n_steps=32``, ``window=[1,10]``), a ``.npy`` /
    single-array ``.npz`` file loaded as an array (``background=bg.npy``), or a string."""
    if "=" not in text:
        raise ValueError(f"--option {text!r} is not key=value")
    key, raw = text.split("=", 1)
    if raw.endswith((".npy", ".npz")):
        return key.strip(), _load_array(raw, key.strip())
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _load_array(path: str, key: str):
    if not Path(path).is_file():
        raise ValueError(f"--option {key}={path}: no such file")
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if len(loaded.files) != 1:
            raise ValueError(f"--option {key}={path} holds {len(loaded.files)} arrays ({', '.join(loaded.files)}); "
                             "give a .npy or a .npz with one array")
        return loaded[loaded.files[0]]


def parse_target(text: str | None):
    if text is None or text == "predicted":
        return None
    if text == "label":
        return "label"
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use 'predicted', 'label' or an output index", param_hint="--target")


@click.command("explain-dataset")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("data_path", metavar="DATA", type=click.Path(exists=True))
@click.option("--method", "-m", default="integrated_gradients", show_default=True, help="Registered method name.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Folder of the Zarr store to write or resume.")
@click.option("--key", default=None, help="Array name inside an .npz archive or a Zarr group.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1), help="Rows per chunk.")
@click.option("--target", default=None, help="'predicted' (default), 'label' or an output index.")
@click.option("--device", default=None, help="Torch device for the run, e.g. cuda (the model is moved back after).")
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
def explain_dataset_command(model_path, data_path, method, out, key, batch_size, target, device, engine, scheduler,
                            n_workers, retries, overwrite, progress, quiet, options):
    """Explain every row of DATA with MODEL into a resumable Zarr store (rerun to resume)."""
    ctx = click.get_current_context(silent=True)
    parent = ctx.find_root().obj if ctx is not None else None
    if quiet or (isinstance(parent, dict) and parent.get("quiet")):
        progress = False
    from lumos.scale import explain_dataset

    model = load_model(model_path)
    data = load_data(data_path, key)
    client = None
    if scheduler is not None:
        if engine != "dask":
            raise click.BadParameter("--scheduler needs --engine dask", param_hint="--scheduler")
        from distributed import Client

        client = Client(scheduler_file=scheduler) if Path(scheduler).is_file() else Client(scheduler)
    try:
        store = explain_dataset(model, data, method, out=out, batch_size=batch_size, target=parse_target(target),
                                device=device, engine=engine, client=client, n_workers=n_workers, retries=retries,
                                overwrite=overwrite, progress=progress, **dict(parse_option(o) for o in options))
    except (ValueError, TypeError, FileNotFoundError, PermissionError, ImportError) as err:
        from lumos.cli import UserError  # one "lumos: error:" line and exit code 2, as every command

        raise UserError(str(err)) from err
    finally:
        if client is not None:
            client.close()
    click.echo(f"{store.method}: {len(store)} rows in {store.path} "
               f"({int(store.done.sum())}/{store.done.size} chunks done)")
