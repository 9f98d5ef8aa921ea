"""Tables from CSV files or pandas DataFrames as (N, d) float32 datasets with feature names.

Numeric columns only by default; ``categorical="onehot"`` expands text columns into
indicator columns named ``column=value``. Standardisation uses training statistics only.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lumos.data.loaders import Dataset


def _finish(name, X, y_raw, feature_names, test_fraction, seed, standardize) -> Dataset:
    from sklearn.model_selection import train_test_split

    labels = sorted(set(y_raw.tolist()), key=lambda v: (isinstance(v, str), v))
    index = {v: i for i, v in enumerate(labels)}
    y = np.array([index[v] for v in y_raw], dtype=np.int64)
    if not np.isfinite(X).all():
        bad = [feature_names[j] for j in np.where(~np.isfinite(X).all(0))[0]]
        raise ValueError(f"columns with missing or non-finite values: {bad[:5]}; impute them first")
    stratify = y if len(labels) > 1 and np.bincount(y).min() >= 2 else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=stratify)
    ds = Dataset(name, Xtr, ytr, Xte, yte, "tabular", [str(v) for v in labels], feature_names=list(feature_names))
    if standardize:
        mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-8
        ds.X_train, ds.X_test = ((Xtr - mu) / sd).astype(np.float32), ((Xte - mu) / sd).astype(np.float32)
        ds.extra.update(mean=mu, std=sd)
    return ds


def from_dataframe(df, target: str, test_fraction: float = 0.25, seed: int = 0, standardize: bool = True,
                   categorical: str = "error", name: str = "table") -> Dataset:
    """Build a tabular :class:`Dataset` from a pandas DataFrame and its label column."""
    if target not in df.columns:
        raise ValueError(f"target column {target!r} not in the table (columns: {list(df.columns)[:10]})")
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    features = df.drop(columns=[target])
    text = [c for c in features.columns if not (is_numeric_dtype(features[c]) or is_bool_dtype(features[c]))]
    if text:
        if categorical != "onehot":
            raise ValueError(f"non-numeric columns {text[:5]}; encode them or pass categorical='onehot'")
        import pandas as pd

        features = pd.get_dummies(features, columns=text, prefix_sep="=", dtype=float)
    X = features.to_numpy(dtype=np.float32)
    return _finish(name, X, df[target].to_numpy(), [str(c) for c in features.columns], test_fraction, seed,
                   standardize)


def load_csv(path: str | Path, target: str, test_fraction: float = 0.25, seed: int = 0,
             standardize: bool = True, categorical: str = "error", delimiter: str = ",") -> Dataset:
    """Read a CSV with a header row; ``target`` names the label column. Uses pandas when
    installed (any column types), else the csv module (numeric feature columns)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        import pandas as pd
    except ModuleNotFoundError:
        pd = None
    if pd is not None:
        return from_dataframe(pd.read_csv(path, sep=delimiter), target, test_fraction, seed, standardize,
                              categorical, name=path.stem)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    header, body = rows[0], [r for r in rows[1:] if r]
    if target not in header:
        raise ValueError(f"target column {target!r} not in the header {header[:10]}")
    t = header.index(target)
    names = [h for i, h in enumerate(header) if i != t]
    try:
        X = np.array([[float(v) for i, v in enumerate(r) if i != t] for r in body], dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric feature value ({err}); install pandas and pass categorical='onehot'") from None
    return _finish(path.stem, X, np.array([r[t] for r in body]), names, test_fraction, seed, standardize)
