"""Shared plumbing of the evaluation metrics.

- :class:`MetricInfo` / :func:`metric`: every metric declares the data it applies to,
  whether higher is better, and what it needs (attributions or an explainer).
- :func:`attributions_of`: the attribution array of an :class:`Explanation` or array,
  broadcast (read-only) to the input shape; metrics never write into it.
- :func:`region_map`: one integer region id per feature of a sample, for tables
  (windows of features), time series (windows of time steps, all channels together)
  and images (r x r patches, all channels together). Every perturbation metric works
  on this map, so regions are defined once for all layouts.
- :func:`scorer`: the adapter a metric scores perturbed copies with, bound to a private
  view of the user's model (:func:`lumos.core.view.model_view`) and sized by the metric's
  one memory knob ``batch_size`` (:class:`~lumos.core.batching.RowBudget`, forward calls).
- :func:`explain_fn`: turns an explainer object, a class or a callable into one
  function ``(model, inputs, target, row_offset=0) -> attributions``; an explainer asked
  about another model (a randomised copy) is rebound with its ``with_model``.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from lumos.core.batching import RowBudget
from lumos.core.explanation import Explanation
from lumos.core.model import ModelAdapter, as_adapter
from lumos.core.validate import as_array, check_finite
from lumos.core.view import model_view

LAYOUTS = ("tabular", "timeseries", "image")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric applies to and how to read it.

    ``needs`` is ``"attributions"`` (called as ``fn(model, inputs, attributions, target)``),
    ``"explainer"`` (``fn(explainer, model, inputs, target)``) or ``"attributions_only"``
    (``fn(attributions)``, no model). ``higher_is_better`` is None when neither direction is.
    """

    name: str
    category: str
    higher_is_better: bool | None
    data: tuple[str, ...] = LAYOUTS
    needs: str = "attributions"

    @property
    def direction(self) -> str:
        """``"higher is better"``, ``"lower is better"`` or ``"no better direction"``."""
        return {True: "higher is better", False: "lower is better"}.get(self.higher_is_better, "no better direction")

    @property
    def requires(self) -> tuple[str, ...]:
        """What the metric is computed from, beyond the inputs: among ``"attributions"``,
        ``"model"``, ``"explainer"`` (it re-runs it), ``"mask"`` (ground truth), ``"labels"``."""
        return _REQUIRES.get(self.needs, (self.needs,))

    def describe(self) -> str:
        """One line for a tooltip: the name, the direction and what it needs."""
        return f"{self.name} ({self.category}): {self.direction}; needs {', '.join(self.requires)}"


_REQUIRES = {"attributions": ("model", "attributions"), "explainer": ("model", "explainer"),
             "attributions_only": ("attributions",), "mask": ("attributions", "mask"),
             "labels": ("model", "attributions", "labels")}


def metric(name: str, category: str, higher_is_better: bool | None, data=LAYOUTS, needs: str = "attributions"):
    """Decorator attaching a :class:`MetricInfo` as ``fn.info``."""

    def deco(fn):
        fn.info = MetricInfo(name, category, higher_is_better, tuple(data), needs)
        return fn

    return deco


def per_sample(result: Any) -> np.ndarray:
    """The per-input scores of a metric result (an array or an object with ``.scores``)."""
    scores = getattr(result, "scores", result)
    return np.asarray(scores, dtype=np.float64).reshape(-1)


# -- inputs and attributions ------------------------------------------------------
def inputs_of(inputs: Any, explanation: Any = None) -> np.ndarray:
    if inputs is None:
        if isinstance(explanation, Explanation) and explanation.inputs is not None:
            return explanation.inputs
        raise ValueError("inputs are required (the explanation does not carry them)")
    return as_array(inputs)


def attributions_of(explanation: Any, inputs: np.ndarray, name: str = "attributions") -> np.ndarray:
    """Attributions shaped like ``inputs`` (a read-only broadcast view when smaller,
    e.g. a CAM map ``(N, 1, H, W)`` for ``(N, 3, H, W)`` images)."""
    if isinstance(explanation, Explanation):
        if explanation.scope != "local":
            raise ValueError(f"{name}: a global explanation has no per-input attributions")
        values = explanation.values
    elif isinstance(explanation, torch.Tensor):
        values = explanation.detach().cpu().numpy()
    else:
        values = np.asarray(explanation)
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {values.dtype}")
    check_finite(values, name)
    if values.shape == inputs.shape:
        return values
    if values.ndim == inputs.ndim - 1 and values.shape[0] == inputs.shape[0] and inputs.ndim >= 3:
        values = values[:, None]  # (N, H, W) map for (N, C, H, W) inputs
    try:
        view = np.broadcast_to(values, inputs.shape)
    except ValueError:
        raise ValueError(
            f"{name} of shape {values.shape} do not match the inputs of shape {inputs.shape}"
        ) from None
    if values.shape[0] != inputs.shape[0]:
        raise ValueError(f"{name} have {values.shape[0]} rows but there are {inputs.shape[0]} inputs")
    return view


def infer_layout(sample_shape: tuple[int, ...]) -> str:
    return {1: "tabular", 2: "timeseries"}.get(len(sample_shape), "image")


# -- regions ------------------------------------------------------------------------
def region_map(sample_shape: tuple[int, ...], region: int | tuple[int, ...] = 1) -> np.ndarray:
    """Region id of every feature of one sample, shape ``sample_shape``, ids ``0..R-1``.

    - ``(d,)`` tables: consecutive windows of ``region`` features.
    - ``(C, T)`` series / ``(C, H, W)`` images: axis 0 is the channel axis and is never
      split; the other axes are cut into blocks of ``region`` (an int for every axis or
      one size per axis), so a region holds all channels of an r x r patch or a window.
    When a size does not divide an axis, the grid is centred and the border regions are
    smaller (the same grid as Quantus, which pads symmetrically).
    """
    axes = sample_shape if len(sample_shape) == 1 else sample_shape[1:]  # regions span all channels
    sizes = (region,) * len(axes) if np.isscalar(region) else tuple(region)
    if len(sizes) != len(axes):
        raise ValueError(f"region {region!r} needs one size per axis of {tuple(axes)}")
    for s, n in zip(sizes, axes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 or s > n:
            raise ValueError(f"region size must be an integer in [1, {n}], got {s!r}")
    block_ids = []
    counts = []
    for s, n in zip(sizes, axes):
        pad = (-n) % s
        ids = (np.arange(n) + pad // 2) // s
        block_ids.append(ids)
        counts.append(int(ids[-1]) + 1)
    grids = np.meshgrid(*block_ids, indexing="ij")
    flat = np.ravel_multi_index(tuple(grids), tuple(counts)) if len(counts) > 1 else grids[0]
    if len(sample_shape) == 1:
        return flat.astype(np.int64)
    return np.broadcast_to(flat, sample_shape).astype(np.int64)


def region_sums(values: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Sum of ``values`` (N, ...) over each region: (N, R)."""
    n = values.shape[0]
    r = int(regions.max()) + 1
    flat = np.asarray(values, dtype=np.float64).reshape(n, -1)
    idx = regions.reshape(1, -1) + r * np.arange(n)[:, None]
    return np.bincount(idx.ravel(), weights=flat.ravel(), minlength=n * r).reshape(n, r)


# -- scoring --------------------------------------------------------------------------
@contextlib.contextmanager
def scorer(model: Any, sample_numel: int, output: str = "raw", batch_size: int | None = None
           ) -> Iterator[ModelAdapter]:
    """The adapter that scores a metric's inputs: ``output`` scores of a private view of
    ``model`` (eval mode, frozen parameters sharing the user's storage: the user's model,
    its mode and its ``requires_grad`` flags are never written, so a training loop in
    another thread is not affected), at most ``RowBudget(batch_size).rows(sample_numel,
    "forward")`` rows per model call. A :class:`ModelAdapter` keeps its own ``output``."""
    base = as_adapter(model, output=output)
    rows = RowBudget(batch_size).rows(sample_numel, "forward")
    with model_view(base.model, warn_training=False) as view:
        yield base.bound(view, batch_size=rows)


def inputs_per_call(batch_size: int | None, sample_numel: int, copies: int) -> int:
    """Inputs per chunk when each input expands into ``copies`` perturbed rows, so that a
    chunk holds about one model call's rows (at least one input)."""
    return RowBudget(batch_size).inputs_per_chunk(sample_numel, copies, "forward")


# -- explainers --------------------------------------------------------------------
def _accepts_model(fn: Callable) -> bool:
    try:
        return "model" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def explain_fn(explainer: Any, with_prediction: bool = False) -> Callable[..., np.ndarray]:
    """``(model, inputs, target, row_offset=0) -> attributions`` for any explainer.

    ``with_prediction=True`` returns ``(attributions, prediction)`` instead, ``prediction``
    the model's scores at the inputs from the explainer's own forward pass when it returns
    an :class:`Explanation` that holds them in the model's raw outputs, None otherwise (a
    metric that needs the scores then runs the model itself).

    Accepted: an object with ``.explain(inputs, target=...)`` that holds a torch model as
    ``.adapter.model`` or ``.model`` (every lumos explainer; asked about another model, it
    is rebound with :meth:`~lumos.methods.base.Explainer.with_model`, so a randomised copy
    is explained with the same configuration and finds its own layers; an object without
    ``with_model`` is deep-copied with that model in place of its own), an explainer class
    (built as ``cls(model)``), or a callable ``fn(inputs, target)`` /
    ``fn(inputs, target, model=...)`` returning an :class:`Explanation` or an array.

    ``row_offset`` (the position of the first input in a larger set) is passed on to lumos
    explainers, so that a stochastic method draws the same noise for a row however a
    metric chunks its inputs; other explainers do not receive it.
    """
    values = _with_prediction if with_prediction else _values
    if isinstance(explainer, type):
        def run(model, x, target, row_offset=0):
            return values(_explain(explainer(model), x, target, row_offset))
        return run
    if hasattr(explainer, "explain"):
        def run(model, x, target, row_offset=0):
            obj = explainer
            bound = _bound_model(explainer)
            if bound is not None and model is not None and model is not bound:
                obj = rebind(explainer, bound, model)
            return values(_explain(obj, x, target, row_offset))
        return run
    if callable(explainer):
        takes_model = _accepts_model(explainer)

        def run(model, x, target, row_offset=0):
            out = explainer(x, target, model=model) if takes_model else explainer(x, target)
            return values(out)
        return run
    raise TypeError(
        f"an explainer must be an object with .explain(inputs, target=...), an explainer class or a "
        f"callable fn(inputs, target), got {type(explainer).__name__}"
    )


def rebinds(explainer: Any) -> bool:
    """Whether :func:`explain_fn` passes a different model to this explainer."""
    if isinstance(explainer, type):
        return True
    if hasattr(explainer, "explain"):
        return _bound_model(explainer) is not None
    return callable(explainer) and _accepts_model(explainer)


def rebind(explainer: Any, bound: torch.nn.Module, model: Any) -> Any:
    """``explainer`` with the same configuration on ``model`` instead of ``bound``: its
    ``with_model(model)`` (lumos explainers: layers are held by name and found again in
    ``model``), otherwise a deep copy in which every reference to ``bound`` (also in nested
    objects) points to ``model``."""
    with_model = getattr(explainer, "with_model", None)
    if callable(with_model):
        return with_model(model)
    return copy.deepcopy(explainer, memo={id(bound): model})


def _is_lumos_explainer(obj: Any) -> bool:
    from lumos.methods.base import Explainer

    return isinstance(obj, Explainer)


def _explain(obj: Any, x: np.ndarray, target: Any, row_offset: int) -> Any:
    if row_offset and _is_lumos_explainer(obj) and obj.scope == "local":
        return obj.explain(x, target=target, row_offset=int(row_offset))
    return obj.explain(x, target=target)


def _bound_model(explainer: Any):
    """The torch model an explainer object holds (``.adapter.model`` or ``.model``), if any."""
    adapter = getattr(explainer, "adapter", None)
    model = adapter.model if isinstance(adapter, ModelAdapter) else getattr(explainer, "model", None)
    return model if isinstance(model, torch.nn.Module) else None


def _with_prediction(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(values, prediction)``: the scores an :class:`Explanation` holds at its inputs
    when they are the raw outputs (``params["output"]`` absent or ``"raw"``), else None."""
    pred = getattr(out, "prediction", None) if isinstance(out, Explanation) else None
    if pred is not None and (out.params or {}).get("output", "raw") != "raw":
        pred = None
    return _values(out), pred


def _values(out: Any) -> np.ndarray:
    if isinstance(out, Explanation):
        return out.values
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    return np.asarray(out)


def method_name(explainer: Any) -> str:
    name = getattr(explainer, "name", "") or ""
    if name:
        return str(name)
    return getattr(explainer, "__name__", type(explainer).__name__)
