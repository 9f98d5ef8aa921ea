"""The model adapter: a ``torch.nn.Module`` or any ``numpy -> scores`` callable, seen
by every explainer as a function from a batch of inputs to a ``(N, K)`` score matrix.

- Scores are the model's raw outputs (logits) unless ``output`` asks for
  ``"softmax"``, ``"log_softmax"`` or ``"sigmoid"``.
- A model returning ``(N,)`` is read as one output ``(N, 1)``; a model returning a tuple
  (e.g. logits and attention weights) is read through its first element.
- Large batches are evaluated in chunks of ``batch_size`` rows.
- Torch models run on the device and dtype of their parameters.

Models as users have them (:func:`as_model`, the one place that reads them, for the Python
API and every command alike): a ``torch.nn.Module``; a TorchScript module or a
``torch.export`` program (hook-free methods only, see :func:`hook_free_kind`); a Keras 3
model (:mod:`lumos.integrations.keras`); an ONNX model (:mod:`lumos.integrations.onnx`:
onnx2torch for methods that need a torch module, onnxruntime for the others); a
scikit-learn estimator or pipeline (:class:`EstimatorScores`); any ``numpy -> scores``
callable. A pandas DataFrame's columns reach the model again: an estimator fitted on a
table is called with a DataFrame of its own columns.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from lumos.core.batching import chunk_slices
from lumos.core.validate import check_choice, resolve_target

OUTPUTS = ("raw", "softmax", "log_softmax", "sigmoid")


def _first(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return out[0]
    if isinstance(out, dict):
        for key in ("logits", "scores", "output"):
            if key in out:
                return out[key]
        raise TypeError(f"the model returned a dict without a 'logits' entry (keys: {sorted(out)})")
    return out


_MODEL_ERRORS = (RuntimeError, ValueError, IndexError, TypeError, AssertionError, KeyError, AttributeError)


def expected_input(model) -> str:
    """What the model's first layer expects, for error messages ("12 features", "2 channels")."""
    if not isinstance(model, torch.nn.Module):
        return ""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            return f"its first layer takes {m.in_features} features"
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return f"its first layer takes {m.in_channels} channels ({type(m).__name__})"
        if isinstance(m, torch.nn.RNNBase):
            return f"its first layer takes {m.input_size} features per step ({type(m).__name__})"
    return ""


def model_error(err: BaseException, shape, dtype) -> ValueError:
    """The one message for a model that failed on lumos's inputs: what it was given, what
    its first layer expects, and the model's own words."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    own = lines[0] if lines else type(err).__name__
    if own.startswith("The following operation failed in the TorchScript interpreter") and len(lines) > 1:
        own = lines[-1]  # TorchScript puts the error itself last, after its traceback
    return ValueError(f"the model could not process inputs of shape {tuple(shape)} (dtype {dtype}): {own}")


def batch_axis_hint(model, shape) -> str:
    """``"; ... add a batch axis ..."`` when ``shape`` looks like one input of ``model``
    without its batch axis (a (C, H, W) image for a Conv2d), else ``""``."""
    if not isinstance(model, torch.nn.Module):
        return ""
    for m in model.modules():
        kind = getattr(m, "original_name", None) or type(m).__name__  # TorchScript keeps the class name
        if kind in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"):
            want = int(kind[-2]) + 2
            if len(shape) == want - 1 and shape[0] == getattr(m, "in_channels", shape[0]):
                axes = {3: "(N, C, T)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}[want]
                return (f"; the inputs look like one input without its batch axis ({kind} takes "
                        f"{axes}): add a batch axis, e.g. x[None] (shape {(1, *shape)})")
            return ""
    return ""


def run_model(model, x, **kwargs):
    """``model(x, **kwargs)`` with a model failure turned into one clear ``ValueError``."""
    try:
        return model(x, **kwargs)
    except _MODEL_ERRORS as err:
        error = model_error(err, x.shape, x.dtype)
        hint = batch_axis_hint(model, tuple(x.shape)) or (f"; {expected_input(model)}" if expected_input(model) else "")
        if hint:
            error = ValueError(f"{error}{hint}")
        raise error from err


def as_table(x, columns):
    """``x`` as a pandas DataFrame with ``columns`` (numpy rows, as explainers pass them)."""
    import pandas as pd

    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        return arr
    return pd.DataFrame(arr, columns=list(columns))


def table_columns(inputs) -> list[str] | None:
    """The column names of a pandas DataFrame (None for anything else)."""
    columns = getattr(inputs, "columns", None)
    if columns is None or not hasattr(inputs, "iloc"):
        return None
    return [str(c) for c in columns]


_ESTIMATOR_METHODS = ("predict_proba", "decision_function", "predict")


class EstimatorScores:
    """A scikit-learn estimator (or pipeline) seen as a ``numpy -> scores`` callable: its
    ``predict_proba`` (classifiers), else ``decision_function``, else ``predict``
    (regressors). ``method`` says which one is used; ``estimator`` is the estimator.

    An estimator fitted on a DataFrame (``feature_names_in_``) is called with a DataFrame
    of those columns, so scikit-learn sees the names it was fitted with. ``class_names``
    are its ``classes_`` where the score columns are one per class."""

    def __init__(self, estimator, method: str):
        self.estimator, self.method = estimator, method
        self._fn = getattr(estimator, method)
        self.__qualname__ = f"{type(estimator).__name__}.{method}"
        names = getattr(estimator, "feature_names_in_", None)
        self.columns = None if names is None else [str(n) for n in names]
        classes = getattr(estimator, "classes_", None)
        one_per_class = method == "predict_proba" or (method == "decision_function" and classes is not None
                                                       and len(classes) > 2)
        self.class_names = [str(c) for c in classes] if classes is not None and one_per_class else None

    def __call__(self, x):
        if self.columns is not None:
            x = as_table(x, self.columns)
        return self._fn(x)

    def __repr__(self) -> str:
        return f"{type(self.estimator).__name__}.{self.method}"


def estimator_scores(model):
    """``model`` itself, or, for a scikit-learn style estimator that is not callable, the
    :class:`EstimatorScores` of its ``predict_proba`` / ``decision_function`` / ``predict``
    (also for such a method given itself, ``clf.predict_proba``)."""
    owner = getattr(model, "__self__", None)
    if getattr(model, "__name__", None) in _ESTIMATOR_METHODS and hasattr(owner, "fit"):
        return EstimatorScores(owner, model.__name__)
    if isinstance(model, torch.nn.Module) or callable(model):
        return model
    for method in ("predict_proba", "decision_function", "predict"):
        if callable(getattr(model, method, None)):
            return EstimatorScores(model, method)
    return model


class ExportedModel(torch.nn.Module):
    """A ``torch.export`` program (``ExportedProgram.module()``) as a plain module: its
    train/eval mode was fixed at export, so ``train()``/``eval()`` set the flag without
    reaching the graph (which refuses). A structural copy of it (lumos' private model view)
    runs the same generated code: an fx graph module keeps its ``forward`` on a class of
    its own, which a copy does not inherit."""

    def __init__(self, graph: torch.nn.Module):
        super().__init__()
        self.graph = graph
        self._graph_forward = type(graph).forward

    def forward(self, *args, **kwargs):
        cls = type(self.graph)
        if cls.forward is not self._graph_forward:  # a copy: its own singleton class, without forward
            cls.forward = self._graph_forward
        return self.graph(*args, **kwargs)

    def train(self, mode: bool = True):
        self.training = mode
        return self


def _is_keras(model) -> bool:
    return type(model).__module__.split(".")[0] in ("keras", "tf_keras") and hasattr(model, "stateless_call")


def _is_onnx(model) -> bool:
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        import os

        return str(os.fspath(model)).lower().endswith(".onnx")
    return (type(model).__name__ in ("ModelProto", "InferenceSession")
            and type(model).__module__.split(".")[0] in ("onnx", "onnxruntime")) or \
        callable(getattr(model, "lumos_torch_module", None))


def as_model(model, *, torch_module: bool = False):
    """The model as lumos runs it (see the module docstring). ``torch_module``: the caller
    needs a ``torch.nn.Module`` (gradients or hooks), which decides how an ONNX model runs
    (onnx2torch instead of onnxruntime)."""
    if isinstance(model, torch.nn.Module):
        if _is_keras(model):
            from lumos.integrations.keras import keras_model

            return keras_model(model)
        return model
    if isinstance(model, torch.export.ExportedProgram):
        return ExportedModel(model.module())
    if _is_keras(model):  # a Keras model of another backend: predict() on numpy, model-agnostic methods
        from lumos.integrations.keras import keras_model

        return keras_model(model)
    if _is_onnx(model):
        from lumos.integrations.onnx import onnx_model

        return onnx_model(model, torch_module=torch_module)
    return estimator_scores(model)


def hook_free_kind(model) -> str | None:
    """What kind of torch model ``model`` is when its layers cannot carry hooks or rules
    ("a TorchScript module", "a torch.export program", "a Keras model"), else None."""
    if isinstance(model, torch.jit.ScriptModule):
        return "a TorchScript module"
    if isinstance(model, ExportedModel):
        return "a torch.export program"
    return getattr(model, "lumos_hook_free", None)


class ModelAdapter:
    """Wraps a model so that explainers see batched scores.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A torch module, or a function taking a numpy batch and returning scores
        (e.g. ``clf.predict_proba``).
    output : {"raw", "softmax", "log_softmax", "sigmoid"}
        Transformation applied to the model's outputs before explaining.
    batch_size : int
        Maximum rows per forward pass.
    """

    def __init__(self, model: torch.nn.Module | Callable, output: str = "raw", batch_size: int = 256,
                 on_rows: Callable[[int], None] | None = None, torch_module: bool = False):
        if isinstance(model, ModelAdapter):
            model = model.model
        model = as_model(model, torch_module=torch_module)
        if not (isinstance(model, torch.nn.Module) or callable(model)):
            raise TypeError(f"model must be a torch.nn.Module, a callable returning scores, or a scikit-learn "
                            f"estimator with predict_proba/decision_function/predict; got {type(model).__name__}")
        self.model = model
        self.output = check_choice(output, "output", OUTPUTS)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.on_rows = on_rows
        self._placement = None

    automatic = False
    """Whether ``batch_size`` was sized by lumos (no ``batch_size`` given): a method may then
    choose other call sizes within its own memory bound (see
    :func:`lumos.methods.agnostic.base.coalition_values`)."""

    def bound(self, model, batch_size: int | None = None, on_rows: Callable[[int], None] | None = None,
              automatic: bool = False) -> "ModelAdapter":
        """The same output transformation on ``model`` (one call's private view of the
        user's model), ``batch_size`` rows per scores call, ``on_rows(n)`` told of every
        ``n`` rows evaluated (progress bars); ``automatic``: see :attr:`automatic`."""
        bound = ModelAdapter(model, output=self.output, batch_size=batch_size or self.batch_size, on_rows=on_rows)
        bound._placement = (bound.device, bound.dtype)  # one call's view does not move: read once
        bound.automatic = bool(automatic)
        return bound

    # -- properties -----------------------------------------------------------
    @property
    def is_torch(self) -> bool:
        return isinstance(self.model, torch.nn.Module)

    @property
    def device(self) -> torch.device:
        if self._placement is not None:
            return self._placement[0]
        if self.is_torch:
            for t in self.model.parameters():
                return t.device
            for t in self.model.buffers():
                return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        if self._placement is not None:
            return self._placement[1]
        if self.is_torch:
            for t in self.model.parameters():
                if t.is_floating_point():
                    return t.dtype
        return torch.float32

    # -- evaluation -----------------------------------------------------------
    def transform(self, scores: torch.Tensor) -> torch.Tensor:
        if scores.ndim == 1:
            scores = scores[:, None]
        elif scores.ndim > 2:
            raise ValueError(
                f"the model returned scores of shape {tuple(scores.shape)}; lumos explains models "
                "that return (N,) or (N, n_outputs)"
            )
        if self.output == "softmax":
            return torch.softmax(scores, dim=1)
        if self.output == "log_softmax":
            return torch.log_softmax(scores, dim=1)
        if self.output == "sigmoid":
            return torch.sigmoid(scores)
        return scores

    def to_tensor(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Move a batch to the model's device, in the model's floating dtype."""
        if isinstance(x, torch.Tensor):
            t = x.to(self.device)
        else:
            arr = np.ascontiguousarray(x)
            if not arr.flags.writeable:  # read-only memmaps: torch would warn about undefined writes
                arr = arr.copy()
            t = torch.from_numpy(arr).to(self.device)
        if t.is_floating_point() or self.is_torch:
            t = t.to(self.dtype)
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable forward pass of a torch model: ``(N, ...) -> (N, K)``."""
        if not self.is_torch:
            raise TypeError("forward() with gradients needs a torch.nn.Module")
        if self.on_rows is not None:
            self.on_rows(x.shape[0])
        out = _first(run_model(self.model, x))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model returned {type(out).__name__}, expected a tensor of scores")
        scores = self.transform(out)
        if scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"the model returned {scores.shape[0]} rows of scores for {x.shape[0]} inputs"
                f"{batch_axis_hint(self.model, tuple(x.shape))}"
            )
        return scores

    def scores(self, x: np.ndarray | torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        """Scores ``(N, K)`` as numpy, without gradients, evaluated in chunks."""
        n = x.shape[0]
        bs = batch_size or self.batch_size
        if n <= bs:  # one call (the perturbation methods size their batches so): no list, no concatenated copy
            out = self._scores_chunk(x)
        else:
            out = np.concatenate([self._scores_chunk(x[sl]) for sl in chunk_slices(n, bs)], axis=0)
        if not np.isfinite(out).all():
            raise ValueError("the model returned NaN or infinite scores; check the model and the inputs")
        return out

    def _scores_chunk(self, x) -> np.ndarray:
        if self.is_torch:
            with torch.no_grad():
                return self.forward(self.to_tensor(x)).detach().cpu().numpy()
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if self.on_rows is not None:
            self.on_rows(arr.shape[0])
        raw = _first(run_model(self.model, arr))
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu()
        out = np.asarray(raw)
        if out.dtype.kind not in "iufc":  # numbers (np.number), not bool, object or strings
            raise TypeError(f"the model returned {out.dtype} values, expected numeric scores")
        # a copy in any case: the scores must not share memory with an array the model may reuse
        out = self.transform(torch.from_numpy(np.array(out, dtype=np.float64, order="C"))).numpy()
        if out.shape[0] != arr.shape[0]:
            raise ValueError(
                f"the model returned scores of shape {out.shape} for {arr.shape[0]} inputs; "
                "expected (N,) or (N, n_outputs)"
            )
        return out

    def targets(self, target: Any, scores: np.ndarray) -> np.ndarray:
        return resolve_target(target, scores)

    @property
    def class_names(self) -> list[str] | None:
        """The model's own class names, one per score column (a classifier's ``classes_``)."""
        return getattr(self.model, "class_names", None)

    def class_target(self, target: Any, class_names=None):
        """``target`` with class names (``"malignant"``) turned into score columns, read from
        ``class_names`` or the model's own (:attr:`class_names`); anything else unchanged."""
        names = list(class_names) if class_names is not None else self.class_names
        strings = isinstance(target, str) or (isinstance(target, (list, tuple, np.ndarray)) and len(target) > 0
                                              and all(isinstance(t, (str, np.str_)) for t in target))
        if not strings:
            return target
        if names is None:
            raise TypeError(f"target must be a class index, or a class name of a model that has them: got "
                            f"{_short(target)}, and the model has no class names (pass class_names=[...], one per "
                            "output)")
        index = {str(n): k for k, n in enumerate(names)}

        def one(name):
            if str(name) not in index:
                from lumos.core.registry import closest

                raise ValueError(f"target {str(name)!r} is not a class name{closest(str(name), index)}; "
                                 f"the classes are {', '.join(map(str, names))}")
            return index[str(name)]

        return one(target) if isinstance(target, str) else np.array([one(t) for t in target], dtype=np.int64)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def accepts_keyword(model, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (or ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def as_adapter(model: Any, output: str = "raw", batch_size: int = 256, torch_module: bool = False) -> ModelAdapter:
    if isinstance(model, ModelAdapter):
        return model
    return ModelAdapter(model, output=output, batch_size=batch_size, torch_module=torch_module)


#: The model formats of :func:`formats_table`, in its column order.
FORMATS = ("PyTorch nn.Module", "TorchScript / torch.export", "Keras 3 (torch backend)", "ONNX",
           "scikit-learn / callable")


def format_support(cls) -> dict[str, str]:
    """How the explainer class ``cls`` runs on each of :data:`FORMATS`, read from its declared
    capabilities: ``"✓"``, ``"—"`` (refused up front), or for ONNX the runtime used
    (``"onnx2torch"``: converted to torch modules; ``"onnxruntime"``: the file itself)."""
    caps = cls.capabilities()
    torch_needed = (caps["needs_gradients"] or caps["needs_layer"] or caps["needs_attention"]
                    or not caps["torchscript"])
    hook_free = caps["torchscript"] and not caps["needs_attention"]
    yes = "✓"
    no = "—"
    return {
        FORMATS[0]: yes,
        FORMATS[1]: yes if caps["torchscript"] else no,
        FORMATS[2]: yes if hook_free else no,
        FORMATS[3]: no if caps["needs_attention"] else ("onnx2torch" if torch_needed else "onnxruntime"),
        FORMATS[4]: no if torch_needed else yes,
    }


def formats_table() -> str:
    """The Markdown table (methods × model formats) of the README, from the registry."""
    from lumos.core import registry

    lines = ["| method | " + " | ".join(FORMATS) + " |", "|---" * (len(FORMATS) + 1) + "|"]
    for name, cls in registry.available().items():
        row = format_support(cls)
        lines.append(f"| `{name}` | " + " | ".join(row[f] for f in FORMATS) + " |")
    return "\n".join(lines)
