"""EEG epochs: ``.npz`` archives and MNE ``Epochs`` (when mne is installed) as (N, C, T)
datasets with channel names, sampling rate and the epoch time axis in seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lumos.data.loaders import Dataset, load_npz_dataset


def _split(n: int, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    idx = np.arange(n)
    stratify = y if np.unique(y).size > 1 and np.bincount(y).min() >= 2 else None
    return train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)


def load_epochs_npz(path: str | Path, name: str | None = None, test_fraction: float = 0.25,
                    seed: int = 0) -> Dataset:
    """Epochs from an ``.npz``: either a split archive (``X_train, y_train, X_test, y_test``)
    or one set ``X`` (N, C, T) with ``y``, split here (stratified, ``seed``).

    Optional arrays: ``ch_names``, ``sfreq``, ``times`` (s), ``class_names``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as d:
        files = set(d.files)
        if {"X_train", "X_test"} <= files:
            ds = load_npz_dataset(path, name, layout="timeseries")
        elif {"X", "y"} <= files:
            X, y = d["X"].astype(np.float32), d["y"].astype(np.int64)
            if X.ndim != 3:
                raise ValueError(f"{path}: X must be (epochs, channels, times), got shape {X.shape}")
            tr, te = _split(len(X), y, test_fraction, seed)
            classes = [str(c) for c in d["class_names"]] if "class_names" in files else [str(c) for c in np.unique(y)]
            ds = Dataset(name or path.stem, X[tr], y[tr], X[te], y[te], "timeseries", classes,
                         feature_names=[str(c) for c in d["ch_names"]] if "ch_names" in files else None,
                         sfreq=float(d["sfreq"]) if "sfreq" in files else None,
                         times=d["times"] if "times" in files else None)
        else:
            raise ValueError(f"{path} holds neither X_train/X_test nor X/y (found {sorted(files)})")
    if ds.X_train.ndim != 3:
        raise ValueError(f"{path}: epochs must be (epochs, channels, times), got {ds.X_train.shape}")
    if ds.times is None and ds.sfreq:
        ds.times = np.arange(ds.X_train.shape[2]) / ds.sfreq
    return ds


def from_mne(epochs, test_fraction: float = 0.25, seed: int = 0, units: str = "uV",
             name: str = "mne_epochs") -> Dataset:
    """Convert an ``mne.Epochs`` object: data in ``units`` (µV by default), labels from the
    event codes mapped to ``0..K-1`` in the order of ``epochs.event_id``."""
    try:
        import mne  # noqa: F401
    except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
        raise ImportError("from_mne needs the 'mne' package (pip install mne)") from err
    X = epochs.get_data(units=units).astype(np.float32)
    codes = epochs.events[:, 2]
    names = sorted(epochs.event_id, key=lambda k: epochs.event_id[k])
    code_to_label = {epochs.event_id[k]: i for i, k in enumerate(names)}
    y = np.array([code_to_label[c] for c in codes], dtype=np.int64)
    tr, te = _split(len(X), y, test_fraction, seed)
    return Dataset(name, X[tr], y[tr], X[te], y[te], "timeseries", names,
                   feature_names=list(epochs.ch_names), sfreq=float(epochs.info["sfreq"]),
                   times=np.asarray(epochs.times, dtype=np.float32), extra={"units": units})
