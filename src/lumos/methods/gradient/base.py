"""Shared plumbing of gradient methods: gradients of the target score with respect to the
input, computed batch-wise, and the base class whose subclasses only define
``_attribute(x, target, index)`` on a batch of tensors."""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import chunk_slices
from lumos.core.explanation import Explanation
from lumos.methods.base import Explainer


def input_gradients(adapter, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∂f_target/∂x for every row of ``x`` in one forward and one backward pass.

    Rows are independent in eval mode, so the gradient of the summed target scores with
    respect to the batch is the per-row gradient.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = adapter.forward(x)
        selected = scores.gather(1, target.view(-1, 1)).sum()
        if not selected.requires_grad:
            raise ValueError(
                "the model's output has no gradient path to its input (it detaches, rounds or "
                "takes an argmax); gradient methods cannot explain it, use a model-agnostic method"
            )
        (grad,) = torch.autograd.grad(selected, x, allow_unused=True)
    if grad is None:
        raise ValueError("the model's output does not depend differentiably on its input")
    return grad


class GradientExplainer(Explainer):
    """Base for methods computed from input gradients on a batch."""

    needs_gradients = True

    def _attribute(self, x: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Attributions for a batch. ``index[i]`` is the position in the explained batch
        of row ``i`` (SmoothGrad passes noisy copies of the same input)."""
        raise NotImplementedError

    def _setup(self, x: np.ndarray, target: np.ndarray, options: dict) -> None:
        """Hook for per-call preparation (baselines...) before ``_attribute`` runs."""

    def _explain(self, x, target, scores, **options) -> Explanation:
        self._setup(x, target, options)
        if options:
            raise TypeError(f"{type(self).__name__}.explain() got unexpected options: {sorted(options)}")
        xt = self.adapter.to_tensor(x)
        tt = torch.as_tensor(target, device=xt.device)
        idx = torch.arange(x.shape[0], device=xt.device)
        parts = [self._attribute(xt[sl], tt[sl], idx[sl]).detach() for sl in chunk_slices(x.shape[0], self.adapter.batch_size)]
        values = torch.cat(parts).cpu().numpy()
        return self._result(values, x, target, scores, **self._fields(x, target, scores, values))

    def _fields(self, x, target, scores, values) -> dict:
        """Extra Explanation fields (base_value, delta...) after attribution."""
        return {}
