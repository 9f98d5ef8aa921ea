"""The explainer base class: configuration in ``__init__``, data in ``explain()``.

Subclasses implement ``_explain(x, target, **options) -> Explanation`` (or, for gradient
methods, the batched ``_attribute``). The base class validates inputs, resolves targets
from the model's scores, and runs the subclass inside :func:`lumos.core.guard.model_guard`
so that the model is left exactly as found.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from lumos.core.explanation import Explanation
from lumos.core.guard import model_guard
from lumos.core.model import ModelAdapter, as_adapter
from lumos.core.batching import chunk_slices
from lumos.core.validate import as_array, check_finite, require_float, resolve_target


class Explainer:
    """Base of every lumos explainer.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The model to explain. Gradient-based methods need a torch module; model-agnostic
        methods accept any ``numpy -> scores`` callable.
    output : {"raw", "softmax", "log_softmax", "sigmoid"}
        Which score to explain; ``"raw"`` (default) is the logit.
    batch_size : int
        Maximum rows per forward pass.
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    scope: ClassVar[str] = "local"
    """``"global"`` for methods that explain a whole labelled set (permutation importance)."""

    def __init__(self, model, *, output: str = "raw", batch_size: int = 256):
        self.adapter: ModelAdapter = as_adapter(model, output=output, batch_size=batch_size)
        if self.needs_gradients and not self.adapter.is_torch:
            raise TypeError(
                f"{type(self).__name__} needs gradients, so the model must be a torch.nn.Module; "
                f"got {type(self.adapter.model).__name__}. Use a model-agnostic method "
                "(occlusion, lime, kernel_shap) for other models."
            )

    @property
    def model(self):
        return self.adapter.model

    def params(self) -> dict[str, Any]:
        """The configuration recorded in each Explanation."""
        return {"output": self.adapter.output, "batch_size": self.adapter.batch_size}

    def explain(self, inputs, target=None, **options) -> Explanation:
        """Explain a batch of inputs.

        Parameters
        ----------
        inputs : array or tensor, shape (N, ...)
            A batch: (N, d) tables, (N, C, T) time series, (N, C, H, W) images.
        target : None, int or sequence of ints
            Output to explain: None for the predicted class, an int for all inputs,
            or one int per input.
        """
        x = as_array(inputs)
        if self.needs_gradients:
            require_float(x, type(self).__name__)
        with model_guard(self.adapter.model):
            return self._run(x, target, **options)

    def _run(self, x: np.ndarray, target, **options) -> Explanation:
        """Score the inputs, resolve the targets, then explain (inside the guard)."""
        scores = self.adapter.scores(x)
        t = self.adapter.targets(target, scores)
        return self._explain(x, t, scores, **options)

    def _explain(self, x: np.ndarray, target: np.ndarray, scores: np.ndarray, **options) -> Explanation:
        raise NotImplementedError

    def _result(self, values, x, target, scores, **fields) -> Explanation:
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        return Explanation(values=values, target=target, method=self.name, params=self.params(),
                           prediction=scores, inputs=x, **fields)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({params})"


def one_pass_chunks(n: int, target, batch_size: int, step):
    """Explanations whose scores come from the same forward pass as the attribution.

    ``step(rows, choose)`` runs one chunk of rows (a slice): one forward pass giving the
    scores, ``choose(scores) -> LongTensor`` resolving the targets from them (None: the
    predicted class), the backward pass; it returns ``(scores, targets, values)``.
    Returns the scores as numpy (checked finite), the targets as numpy and the list of
    per-chunk values.
    """
    if target is not None and np.ndim(target) == 1 and len(target) != n:
        raise ValueError(f"target has {len(target)} entries but there are {n} inputs; give one per input or a single int")
    scores, targets, values = [], [], []
    for sl in chunk_slices(n, batch_size):
        part = target[sl] if target is not None and np.ndim(target) == 1 else target

        def choose(s, part=part):
            return torch.as_tensor(resolve_target(part, s.cpu().numpy()), device=s.device)

        s, t, v = step(sl, choose)
        scores.append(s)
        targets.append(t)
        values.append(v)
    scores = torch.cat(scores).cpu().numpy()
    check_finite(scores, "model scores")
    return scores, torch.cat(targets).cpu().numpy(), values
