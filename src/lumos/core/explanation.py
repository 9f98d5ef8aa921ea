"""The one result type every lumos explainer returns.

An :class:`Explanation` holds attributions shaped like the input batch plus what is
needed to read them: the explained target per sample, the model's scores at the input,
and, where a method defines them, the base value (``f(baseline)`` or ``E[f]``) and the
completeness error ``delta = sum(values) - (prediction[target] - base_value)``.

Global methods (permutation importance) return ``scope="global"`` explanations whose
``values`` have one entry per feature and no batch axis.

Files are written as a NumPy ``.npz`` archive with a JSON metadata string; loading
never unpickles anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

_PER_SAMPLE = ("target", "prediction", "base_value", "delta", "inputs")
_FORMAT = "lumos.explanation/1"


def to_jsonable(value: Any) -> Any:
    """Convert method parameters to JSON: numpy scalars and small arrays become plain
    Python values; anything else (a module, a function) is kept as its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size <= 64:
            return value.tolist()
        return f"<array shape={tuple(value.shape)} dtype={value.dtype}>"
    return repr(value)


@dataclass
class Explanation:
    """Attributions for a batch of inputs (or for the features of a dataset).

    Attributes
    ----------
    values : ndarray
        Attributions. Local methods: same shape as the input batch ``(N, ...)`` (or
        broadcastable to it, e.g. a CAM map ``(N, 1, H, W)``). Global methods: ``(d,)``.
    target : ndarray of int, shape (N,)
        The output index explained for each sample.
    method : str
        Registry name of the method that produced the values.
    params : dict
        The method's configuration (JSON-serialisable).
    prediction : ndarray, shape (N, K)
        The model's scores at the inputs.
    base_value : ndarray, shape (N,), optional
        Reference score: ``f(baseline)`` for path methods, ``E[f]`` over the background
        for Shapley values.
    delta : ndarray, shape (N,), optional
        Completeness error ``values.sum() - (prediction[target] - base_value)`` per sample.
    feature_names : list of str, optional
        Names of the features (tabular columns, channels, groups).
    extras : dict of str -> ndarray
        Method-specific arrays (raw CAM map at layer resolution, standard deviations,
        a surrogate's R²...). Arrays with a leading batch axis are sliced with the batch.
    inputs : ndarray, optional
        The explained inputs, kept for plotting and evaluation.
    scope : {"local", "global"}
    """

    values: np.ndarray
    target: np.ndarray | None = None
    method: str = ""
    params: dict = field(default_factory=dict)
    prediction: np.ndarray | None = None
    base_value: np.ndarray | None = None
    delta: np.ndarray | None = None
    feature_names: list[str] | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: np.ndarray | None = None
    scope: str = "local"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = np.asarray(self.values)
        for name in _PER_SAMPLE:
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v))
        if self.scope not in ("local", "global"):
            raise ValueError(f"scope must be 'local' or 'global', got {self.scope!r}")
        self.params = to_jsonable(dict(self.params))
        self.meta = to_jsonable(dict(self.meta))
        self.extras = {k: np.asarray(v) for k, v in self.extras.items()}
        if self.feature_names is not None:
            self.feature_names = [str(n) for n in self.feature_names]

    # -- batch access ---------------------------------------------------------
    def __len__(self) -> int:
        """Number of samples (local) or of features (global)."""
        return int(self.values.shape[0])

    def _batch_size(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, index) -> "Explanation":
        """Select samples: ``exp[0]``, ``exp[2:5]``, ``exp[mask]``. The result keeps its
        batch axis, so ``exp[0].values.shape == (1, ...)``."""
        if self.scope == "global":
            raise TypeError("a global explanation has no batch axis to index; use .values")
        if isinstance(index, (int, np.integer)):
            n = self._batch_size()
            if not -n <= index < n:
                raise IndexError(f"sample index {index} out of range for {n} samples")
            index = slice(index, index + 1 if index != -1 else None)
        n = self._batch_size()
        sliced = {
            name: (getattr(self, name)[index] if getattr(self, name) is not None else None)
            for name in _PER_SAMPLE
        }
        extras = {
            k: (v[index] if v.ndim >= 1 and v.shape[0] == n else v) for k, v in self.extras.items()
        }
        return replace(self, values=self.values[index], extras=extras, **sliced)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        parts = [f"method={self.method!r}", f"values.shape={tuple(self.values.shape)}"]
        if self.target is not None and self.target.size <= 8:
            parts.append(f"target={self.target.tolist()}")
        if self.delta is not None:
            parts.append(f"max|delta|={float(np.max(np.abs(self.delta))):.3g}")
        return f"Explanation({', '.join(parts)})"

    # -- derived quantities ---------------------------------------------------
    def total(self) -> np.ndarray:
        """Sum of the attributions of each sample, shape (N,)."""
        if self.scope == "global":
            return np.asarray(self.values.sum())
        return self.values.reshape(self._batch_size(), -1).sum(axis=1)

    @property
    def tokens(self) -> np.ndarray | None:
        """Text: the token strings ``(N, T)`` given as ``tokens=`` (None otherwise)."""
        return self.extras.get("tokens")

    def words(self, index: int | None = None):
        """Text: ``[(word, relevance), ...]`` of input ``index`` (all inputs: a list of those),
        each word's relevance the sum over its tokens (``words=`` maps tokens to words; by
        default every real token is a word); see :mod:`lumos.core.text`."""
        from lumos.core.text import explanation_words

        if index is None:
            return [explanation_words(self, i) for i in range(len(self))]
        return explanation_words(self, int(index))

    def target_score(self) -> np.ndarray | None:
        """``prediction[i, target[i]]`` for each sample, or None when unknown."""
        if self.prediction is None or self.target is None:
            return None
        return np.take_along_axis(self.prediction, self.target.reshape(-1, 1).astype(int), axis=1)[:, 0]

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` archive (arrays) with a JSON metadata entry; no pickle."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        arrays = {"values": self.values}
        for name in _PER_SAMPLE:
            v = getattr(self, name)
            if v is not None:
                arrays[name] = v
        for k, v in self.extras.items():
            if v.dtype == object:
                raise TypeError(f"extra {k!r} has dtype object and cannot be saved without pickle")
            arrays[f"extra__{k}"] = v
        meta = {
            "format": _FORMAT,
            "method": self.method,
            "params": self.params,
            "feature_names": self.feature_names,
            "scope": self.scope,
            "meta": self.meta,
        }
        arrays["__meta__"] = np.asarray(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        """Read an archive written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(Path(path), allow_pickle=False) as data:
            if "__meta__" not in data.files:
                raise ValueError(f"{path} is not a lumos explanation archive (no metadata entry)")
            meta = json.loads(str(data["__meta__"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected {_FORMAT!r}")
            kwargs = {name: data[name] for name in _PER_SAMPLE if name in data.files}
            extras = {k[len("extra__"):]: data[k] for k in data.files if k.startswith("extra__")}
            return cls(
                values=data["values"],
                method=meta["method"],
                params=meta["params"],
                feature_names=meta["feature_names"],
                scope=meta["scope"],
                meta=meta["meta"],
                extras=extras,
                **kwargs,
            )

    # -- display --------------------------------------------------------------
    def plot(self, index: int = 0, *, kind: str = "auto", ax=None, show: bool | None = None, **kwargs):
        """Draw sample ``index`` and return the matplotlib Figure.

        ``kind="auto"`` uses :func:`lumos.plot.plot_explanation` (a heatmap over the image, a
        coloured line per channel for time series, bars for tables); tables also have the
        shap-style ``"waterfall"`` (this row), ``"beeswarm"`` and ``"bar"`` (all rows). Run as
        a script with an interactive matplotlib backend the figure is shown; ``ax=`` draws
        into an existing Axes; ``show`` overrides (:mod:`lumos.plot.display`).
        """
        from lumos.plot.display import draw  # imported here: core knows no plotting

        return draw(self, index, kind=kind, ax=ax, show=show, **kwargs)

    def _repr_html_(self) -> str:
        """Jupyter's view: a summary table and the first sample's figure."""
        from lumos.plot.display import to_html

        return to_html(self)


def stack(explanations: Sequence[Explanation]) -> Explanation:
    """Concatenate local explanations of the same method along the batch axis."""
    if not explanations:
        raise ValueError("stack() needs at least one explanation")
    first = explanations[0]
    methods = {e.method for e in explanations}
    if len(methods) != 1:
        raise ValueError(f"cannot stack explanations of different methods: {sorted(methods)}")

    def cat(name):
        parts = [getattr(e, name) for e in explanations]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts, axis=0)

    extras = {}
    for k in first.extras:
        parts = [e.extras.get(k) for e in explanations]
        if all(p is not None and p.ndim >= 1 for p in parts):
            extras[k] = np.concatenate(parts, axis=0)
    return replace(first, values=np.concatenate([e.values for e in explanations]), extras=extras,
                   **{name: cat(name) for name in _PER_SAMPLE})
