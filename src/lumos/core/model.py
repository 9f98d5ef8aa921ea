"""The model adapter: a ``torch.nn.Module`` or any ``numpy -> scores`` callable, seen
by every explainer as a function from a batch of inputs to a ``(N, K)`` score matrix.

- Scores are the model's raw outputs (logits) unless ``output`` asks for
  ``"softmax"``, ``"log_softmax"`` or ``"sigmoid"``.
- A model returning ``(N,)`` is read as one output ``(N, 1)``; a model returning a tuple
  (e.g. logits and attention weights) is read through its first element.
- Large batches are evaluated in chunks of ``batch_size`` rows.
- Torch models run on the device and dtype of their parameters.
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
    own = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"the model could not process inputs of shape {tuple(shape)} (dtype {dtype}): {own}")


def run_model(model, x, **kwargs):
    """``model(x, **kwargs)`` with a model failure turned into one clear ``ValueError``."""
    try:
        return model(x, **kwargs)
    except _MODEL_ERRORS as err:
        error = model_error(err, x.shape, x.dtype)
        hint = expected_input(model)
        if hint:
            error = ValueError(f"{error}; {hint}")
        raise error from err


class EstimatorScores:
    """A scikit-learn estimator (or pipeline) seen as a ``numpy -> scores`` callable: its
    ``predict_proba`` (classifiers), else ``decision_function``, else ``predict``
    (regressors). ``method`` says which one is used; ``estimator`` is the estimator."""

    def __init__(self, estimator, method: str):
        self.estimator, self.method = estimator, method
        self._fn = getattr(estimator, method)
        self.__qualname__ = f"{type(estimator).__name__}.{method}"

    def __call__(self, x):
        return self._fn(x)

    def __repr__(self) -> str:
        return f"{type(self.estimator).__name__}.{self.method}"


def estimator_scores(model):
    """``model`` itself, or, for a scikit-learn style estimator that is not callable, the
    :class:`EstimatorScores` of its ``predict_proba`` / ``decision_function`` / ``predict``."""
    if isinstance(model, torch.nn.Module) or callable(model):
        return model
    for method in ("predict_proba", "decision_function", "predict"):
        if callable(getattr(model, method, None)):
            return EstimatorScores(model, method)
    return model


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
                 on_rows: Callable[[int], None] | None = None):
        if isinstance(model, ModelAdapter):
            model = model.model
        model = estimator_scores(model)
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

    def bound(self, model, batch_size: int | None = None, on_rows: Callable[[int], None] | None = None) -> "ModelAdapter":
        """The same output transformation on ``model`` (one call's private view of the
        user's model), ``batch_size`` rows per scores call, ``on_rows(n)`` told of every
        ``n`` rows evaluated (progress bars)."""
        bound = ModelAdapter(model, output=self.output, batch_size=batch_size or self.batch_size, on_rows=on_rows)
        bound._placement = (bound.device, bound.dtype)  # one call's view does not move: read once
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
            )
        return scores

    def scores(self, x: np.ndarray | torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        """Scores ``(N, K)`` as numpy, without gradients, evaluated in chunks."""
        n = x.shape[0]
        bs = batch_size or self.batch_size
        parts = []
        for sl in chunk_slices(n, bs):
            parts.append(self._scores_chunk(x[sl]))
        out = np.concatenate(parts, axis=0)
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
        if out.dtype == object or not np.issubdtype(out.dtype, np.number):
            raise TypeError(f"the model returned {out.dtype} values, expected numeric scores")
        out = self.transform(torch.from_numpy(np.ascontiguousarray(out, dtype=np.float64))).numpy()
        if out.shape[0] != arr.shape[0]:
            raise ValueError(
                f"the model returned scores of shape {out.shape} for {arr.shape[0]} inputs; "
                "expected (N,) or (N, n_outputs)"
            )
        return out

    def targets(self, target: Any, scores: np.ndarray) -> np.ndarray:
        return resolve_target(target, scores)


def accepts_keyword(model, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (or ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def as_adapter(model: Any, output: str = "raw", batch_size: int = 256) -> ModelAdapter:
    if isinstance(model, ModelAdapter):
        return model
    return ModelAdapter(model, output=output, batch_size=batch_size)
