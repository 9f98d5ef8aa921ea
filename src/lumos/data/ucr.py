"""UCR / UEA time-series archives: ``.tsv`` / ``.txt`` (UCR 2018), ``.ts`` (sktime / UEA)
and ``.arff`` (univariate or UEA relational), plus ``.npz``.

Every reader returns ``X`` as float32 ``(N, C, T)`` and the raw labels as strings; the
loader maps labels to ``0..K-1`` in sorted order (numerically when all labels are numbers)
and keeps the original labels as ``class_names``. Missing values (``NaN``, ``?``) are kept
as NaN; series of unequal length are right-padded with NaN.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lumos.data.loaders import Dataset, load_npz_dataset

SUFFIXES = (".tsv", ".txt", ".ts", ".arff")


def _float(token: str) -> float:
    token = token.strip()
    return float("nan") if token in ("?", "", "NaN", "nan") else float(token)


def _stack(series: list[list[np.ndarray]]) -> np.ndarray:
    """List (cases) of lists (channels) of 1-D arrays -> (N, C, T), NaN-padded."""
    if not series:
        raise ValueError("no time series found in the file")
    n_ch = {len(s) for s in series}
    if len(n_ch) != 1:
        raise ValueError(f"cases have different numbers of channels: {sorted(n_ch)}")
    length = max(len(ch) for s in series for ch in s)
    out = np.full((len(series), n_ch.pop(), length), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        for c, ch in enumerate(s):
            out[i, c, :len(ch)] = ch
    return out


def read_ucr_tsv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """UCR 2018 ``.tsv`` (tab) or legacy ``.txt`` (whitespace/comma): label, then values."""
    series, labels = [], []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        tokens = [t for t in re.split(r"[\t, ]+", line.strip()) if t]
        if len(tokens) < 2:
            raise ValueError(f"{path}:{lineno}: expected a label and at least one value")
        labels.append(tokens[0])
        try:
            series.append([np.array([_float(t) for t in tokens[1:]])])
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: {err}") from None
    return _stack(series), np.array(labels)


def read_ts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """sktime/UEA ``.ts``: ``@`` header lines, then ``dim1:dim2:...:label`` per case with
    comma-separated values in each dimension."""
    series, labels, in_data, has_labels = [], [], False, True
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            key = line.split()[0].lower()
            if key == "@classlabel":
                has_labels = line.split()[1].lower() == "true" if len(line.split()) > 1 else True
            if key == "@data":
                in_data = True
            continue
        if not in_data:
            continue
        parts = line.split(":")
        if has_labels:
            labels.append(parts[-1].strip())
            parts = parts[:-1]
        try:
            series.append([np.array([_float(t) for t in p.split(",")]) for p in parts])
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: {err}") from None
    if not in_data:
        raise ValueError(f"{path}: no @data section; is this a .ts file?")
    return _stack(series), np.array(labels if has_labels else ["?"] * len(series))


def _split_arff_row(line: str) -> list[str]:
    """Split on commas outside single or double quotes."""
    out, cur, quote = [], [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def read_arff(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Weka ``.arff`` as used by the UCR/UEA archives. Univariate: numeric attributes then
    the class. Multivariate (UEA): a relational attribute whose value is a quoted string with
    one line (``\\n``) per channel, then the class."""
    text = Path(path).read_text()
    head, sep, body = re.split(r"(?im)^\s*(@data)\s*$", text, maxsplit=1) if re.search(r"(?im)^\s*@data\s*$", text) else (text, "", "")
    if not sep:
        raise ValueError(f"{path}: no @data section; is this an .arff file?")
    relational = re.search(r"(?im)^\s*@attribute\s+\S+\s+relational", head) is not None
    series, labels = [], []
    for lineno, line in enumerate(body.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("%"):
            continue
        fields = _split_arff_row(line)
        labels.append(fields[-1].strip())
        try:
            if relational:
                rows = fields[0].replace("\\n", "\n").split("\n")
                series.append([np.array([_float(t) for t in r.split(",")]) for r in rows if r.strip()])
            else:
                series.append([np.array([_float(t) for t in fields[:-1]])])
        except ValueError as err:
            raise ValueError(f"{path}: data line {lineno}: {err}") from None
    return _stack(series), np.array(labels)


def read_series(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the suffix: ``.tsv``/``.txt``, ``.ts`` or ``.arff``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".txt"):
        return read_ucr_tsv(path)
    if suffix == ".ts":
        return read_ts(path)
    if suffix == ".arff":
        return read_arff(path)
    raise ValueError(f"{path}: unknown time-series format {suffix!r}; expected one of {SUFFIXES} or .npz")


def _encode(y_train: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    labels = sorted(set(y_train.tolist()) | set(y_test.tolist()))
    try:
        labels = sorted(labels, key=float)
        names = [f"{float(v):g}" for v in labels]
    except ValueError:
        names = list(labels)
    index = {v: i for i, v in enumerate(labels)}
    return (np.array([index[v] for v in y_train], dtype=np.int64),
            np.array([index[v] for v in y_test], dtype=np.int64), names)


def _find_split(folder: Path, split: str) -> Path:
    for suffix in SUFFIXES:
        hits = sorted(folder.glob(f"*_{split}{suffix}")) + sorted(folder.glob(f"*_{split.lower()}{suffix}"))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"no *_{split}{{{','.join(SUFFIXES)}}} file in {folder}")


def load_ucr(train: str | Path, test: str | Path | None = None, name: str | None = None,
             sfreq: float | None = None) -> Dataset:
    """Load a UCR/UEA dataset as a :class:`Dataset` with ``X`` of shape (N, C, T).

    Parameters
    ----------
    train : path
        The training file (``.tsv``, ``.txt``, ``.ts``, ``.arff`` or an ``.npz`` with
        ``X_train, y_train, X_test, y_test``), or the dataset's folder holding
        ``<Name>_TRAIN.<ext>`` and ``<Name>_TEST.<ext>``.
    test : path, optional
        The test file; found beside ``train`` (``_TRAIN`` -> ``_TEST``) when omitted.
    sfreq : float, optional
        Sampling rate in Hz, when known (the archives do not state it).
    """
    train = Path(train)
    if train.suffix == ".npz":
        return load_npz_dataset(train, name)
    if train.is_dir():
        test = test or _find_split(train, "TEST")
        train = _find_split(train, "TRAIN")
    elif test is None:
        guess = train.with_name(train.name.replace("_TRAIN", "_TEST").replace("_train", "_test"))
        if guess == train or not guess.exists():
            raise FileNotFoundError(f"no test file given and {guess.name} not found beside {train}")
        test = guess
    if not train.exists():
        raise FileNotFoundError(f"{train} does not exist")
    Xtr, ytr = read_series(train)
    Xte, yte = read_series(test)
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(f"train has {Xtr.shape[1]} channels but test has {Xte.shape[1]}")
    if Xtr.shape[2] != Xte.shape[2]:  # pad the shorter split so both share T
        length = max(Xtr.shape[2], Xte.shape[2])
        pad = lambda a: np.pad(a, ((0, 0), (0, 0), (0, length - a.shape[2])), constant_values=np.nan)  # noqa: E731
        Xtr, Xte = pad(Xtr), pad(Xte)
    ytr_i, yte_i, names = _encode(ytr, yte)
    stem = name or re.sub(r"_(TRAIN|train)$", "", train.stem)
    return Dataset(stem, Xtr, ytr_i, Xte, yte_i, "timeseries", names,
                   feature_names=[f"dim{c}" for c in range(Xtr.shape[1])] if Xtr.shape[1] > 1 else ["signal"],
                   sfreq=sfreq, extra={"labels_train": ytr, "labels_test": yte})
