"""Loaders for the bundled scikit-learn sets and the offline real-data archives.

The real archives (MNIST, ECG200, P300 EEG...) are looked up in ``$LUMOS_DATA``, then in a
``shared/data`` folder beside or above the working directory. They are never shipped
with lumos; loaders raise ``FileNotFoundError`` with the searched places when absent.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    """A train/test split with the names needed to read explanations.

    ``layout`` is ``"tabular"`` (N, d), ``"timeseries"`` (N, C, T) or ``"image"`` (N, C, H, W).
    ``feature_names`` names the columns of a table or the channels of a series.
    Synthetic sets with a known ground truth also carry ``mask_train`` / ``mask_test``:
    boolean arrays shaped like ``X`` that are True where the class evidence was planted.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    layout: str
    class_names: list[str]
    feature_names: list[str] | None = None
    sfreq: float | None = None
    times: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    mask_train: np.ndarray | None = None
    mask_test: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        """Size of one input (features, or C*T, or C*H*W)."""
        return int(np.prod(self.X_train.shape[1:]))

    def __repr__(self) -> str:
        parts = [f"{self.name!r}", self.layout, f"train={tuple(self.X_train.shape)}", f"test={tuple(self.X_test.shape)}",
                 f"classes={self.class_names}"]
        if self.sfreq:
            parts.append(f"sfreq={self.sfreq:g} Hz")
        if self.mask_test is not None:
            parts.append("ground-truth masks")
        return f"Dataset({', '.join(parts)})"


def find_data_dir(required: str | None = None) -> Path:
    """The folder holding the offline archives (``$LUMOS_DATA`` or ``shared/data``)."""
    candidates = []
    if os.environ.get("LUMOS_DATA"):
        candidates.append(Path(os.environ["LUMOS_DATA"]))
    here = Path.cwd().resolve()
    for base in [here, *here.parents]:
        candidates += [base / "shared" / "data", base / ".." / "shared" / "data"]
    pkg = Path(__file__).resolve()
    for base in pkg.parents:
        candidates.append(base / "shared" / "data")
    for c in candidates:
        if c.is_dir() and (required is None or (c / required).exists()):
            return c.resolve()
    what = required or "the data folder"
    raise FileNotFoundError(
        f"{what} not found; set LUMOS_DATA to the folder holding it (searched {len(candidates)} places, e.g. {candidates[0]})"
    )


def load_npz_dataset(path: str | Path, name: str | None = None, layout: str = "timeseries") -> Dataset:
    """Load an archive with ``X_train, y_train, X_test, y_test`` and optional
    ``class_names``, ``ch_names``, ``sfreq``, ``times`` (no pickle)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as d:
        missing = {"X_train", "y_train", "X_test", "y_test"} - set(d.files)
        if missing:
            raise ValueError(f"{path} lacks the arrays {sorted(missing)}")
        y_train, y_test = d["y_train"].astype(np.int64), d["y_test"].astype(np.int64)
        classes = [str(c) for c in d["class_names"]] if "class_names" in d.files else [str(c) for c in np.unique(y_train)]
        extra = {k: d[k] for k in d.files if k not in {"X_train", "y_train", "X_test", "y_test", "class_names", "ch_names", "sfreq", "times"}}
        return Dataset(
            name=name or path.stem, X_train=d["X_train"], y_train=y_train, X_test=d["X_test"], y_test=y_test,
            layout=layout, class_names=classes,
            feature_names=[str(c) for c in d["ch_names"]] if "ch_names" in d.files else None,
            sfreq=float(d["sfreq"]) if "sfreq" in d.files else None,
            times=d["times"] if "times" in d.files else None, extra=extra,
        )


def load_mnist(subset: bool = True, data_dir: str | Path | None = None) -> Dataset:
    """MNIST as float32 images (N, 1, 28, 28) scaled to [0, 1].

    ``subset=True`` returns the fixed stratified 10k/2k subset of the archive.
    """
    folder = Path(data_dir) if data_dir else find_data_dir("mnist.npz")
    with np.load(folder / "mnist.npz", allow_pickle=False) as d:
        Xtr, ytr, Xte, yte = d["X_train"], d["y_train"], d["X_test"], d["y_test"]
        if subset:
            Xtr, ytr = Xtr[d["subset_train_idx"]], ytr[d["subset_train_idx"]]
            Xte, yte = Xte[d["subset_test_idx"]], yte[d["subset_test_idx"]]
    prep = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return Dataset("mnist", prep(Xtr), ytr.astype(np.int64), prep(Xte), yte.astype(np.int64), "image",
                   [str(i) for i in range(10)])


def load_ecg200(data_dir: str | Path | None = None) -> Dataset:
    """UCR ECG200 heartbeats (N, 1, 96): 0 = normal, 1 = myocardial infarction."""
    folder = Path(data_dir) if data_dir else find_data_dir("ecg200.npz")
    return load_npz_dataset(folder / "ecg200.npz", "ecg200")


def load_p300(data_dir: str | Path | None = None, which: str = "bnci2015003") -> Dataset:
    """Visual P300 EEG epochs (N, channels, times) in µV: 0 = non-target, 1 = target."""
    folder = Path(data_dir) if data_dir else find_data_dir(f"p300_{which}.npz")
    return load_npz_dataset(folder / f"p300_{which}.npz", f"p300_{which}")


def _sklearn(loader, name: str, test_fraction: float, seed: int, layout: str) -> Dataset:
    from sklearn.model_selection import train_test_split

    b = loader()
    X = b.data.astype(np.float32)
    y = b.target.astype(np.int64)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Dataset(name, Xtr, ytr, Xte, yte, layout, [str(c) for c in b.target_names],
                   feature_names=[str(f) for f in getattr(b, "feature_names", [])] or None)


def load_breast_cancer(standardize: bool = True, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled Wisconsin breast-cancer table (30 features), standardised
    with training-set statistics by default."""
    from sklearn.datasets import load_breast_cancer as sk

    ds = _sklearn(sk, "breast_cancer", test_fraction, seed, "tabular")
    if standardize:
        mu, sd = ds.X_train.mean(0), ds.X_train.std(0) + 1e-8
        ds.X_train, ds.X_test = (ds.X_train - mu) / sd, (ds.X_test - mu) / sd
        ds.extra.update(mean=mu, std=sd)
    return ds


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits as images (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits as sk

    ds = _sklearn(sk, "digits", test_fraction, seed, "image")
    ds.X_train = (ds.X_train / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    ds.X_test = (ds.X_test / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    ds.feature_names = None
    return ds
