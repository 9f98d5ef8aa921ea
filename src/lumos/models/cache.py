"""Train the reference models in seconds, reproducibly, and keep the fitted weights in a
user cache directory so that the second run of a workshop or of ``lumos demo`` loads them.

The cache directory is ``$LUMOS_CACHE`` when set, else ``$XDG_CACHE_HOME/lumos``, else
``~/.cache/lumos``. A cache entry is keyed by a SHA-256 of the architecture (the module's
``repr``), the training configuration and the bytes of the training data, so any change
retrains. Weights are written atomically and read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lumos.models.reference import CNN1d, CNN2d, MLP
from lumos.models.train import accuracy, fit


def cache_dir() -> Path:
    """The folder where fitted weights are kept (created on first use)."""
    if os.environ.get("LUMOS_CACHE"):
        root = Path(os.environ["LUMOS_CACHE"])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "lumos"
    else:
        root = Path.home() / ".cache" / "lumos"
    return root.expanduser()


def cache_key(model: nn.Module, X: np.ndarray, y: np.ndarray, config: dict) -> str:
    """SHA-256 over architecture, configuration, and the training data's bytes."""
    h = hashlib.sha256()
    h.update(repr(model).encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for arr in (np.ascontiguousarray(X), np.ascontiguousarray(y)):
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:24]


def cached_fit(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int = 20, lr: float = 1e-3,
               batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0, name: str | None = None,
               progress: bool = True, cache: bool = True, directory: str | Path | None = None,
               trainer=None, trainer_options: dict | None = None) -> nn.Module:
    """Fit ``model`` with :func:`lumos.models.train.fit` unless weights for the same
    architecture, data and configuration are cached; returns the model in eval mode.

    ``trainer`` (called as ``fit``, with ``trainer_options`` added) replaces the default
    loop, e.g. :func:`lumos.models.text.fit_text` for token ids.

    ``model.lumos_cache`` is set to ``{"path", "hit", "seconds"}`` so that callers can
    report where the weights came from.
    """
    config = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed}
    if trainer is not None:  # e.g. lumos.models.text.fit_text; its name and options enter the key
        config.update(trainer=f"{trainer.__module__}.{trainer.__qualname__}", **(trainer_options or {}))
    key = cache_key(model, X, y, config)
    folder = Path(directory) if directory else cache_dir()
    path = folder / f"{name or type(model).__name__}-{key}.pt"
    start = time.perf_counter()
    if cache and path.exists():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            model.lumos_cache = {"path": str(path), "hit": True, "seconds": time.perf_counter() - start}
            return model.eval()
        except Exception:  # noqa: BLE001 - a corrupt or stale entry (any unpickling error): retrain
            pass
    torch.manual_seed(seed)
    for module in model.modules():  # same initial weights for a given seed, whatever came before
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    (trainer or fit)(model, X, y, epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, seed=seed,
                     progress=progress, **(trainer_options or {}))
    if cache:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, path)
        except OSError:
            path = None  # read-only home: still return the fitted model
    model.lumos_cache = {"path": None if path is None else str(path), "hit": False,
                         "seconds": time.perf_counter() - start}
    return model.eval()


def reference_model(layout: str, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The reference network for a data layout: MLP for tables (d,), CNN1d for series
    (C, T), CNN2d for images (C, H, W)."""
    if layout == "tabular":
        return MLP(in_shape[0], n_classes)
    if layout == "timeseries":
        return CNN1d(in_shape[0], n_classes)
    if layout == "image":
        return CNN2d(in_shape[0], n_classes)
    raise ValueError(f"unknown layout {layout!r}; expected 'tabular', 'timeseries' or 'image'")


def train_reference(dataset, epochs: int = 20, seed: int = 0, progress: bool = True, cache: bool = True,
                    model: nn.Module | None = None, **fit_options) -> tuple[nn.Module, float]:
    """Fit (or load) the reference model for ``dataset``; returns ``(model, test accuracy)``."""
    torch.manual_seed(seed)
    net = model if model is not None else reference_model(dataset.layout, dataset.X_train.shape[1:],
                                                          dataset.n_classes)
    net = cached_fit(net, dataset.X_train, dataset.y_train, epochs=epochs, seed=seed, progress=progress,
                     cache=cache, name=f"{dataset.name}-{type(net).__name__}", **fit_options)
    return net, accuracy(net, dataset.X_test, dataset.y_test)
