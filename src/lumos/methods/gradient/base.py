"""Shared plumbing of gradient methods: gradients of the target score with respect to the
input, computed batch-wise, and the base class whose subclasses only define
``_attribute(x, target, index)`` on a batch of tensors."""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import chunk_slices
from lumos.core.explanation import Explanation
from lumos.methods.base import Explainer, one_pass_chunks


def input_gradients(adapter, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∂f_target/∂x for every row of ``x`` in one forward and one backward pass.

    Rows are independent in eval mode, so the gradient of the summed target scores with
    respect to the batch is the per-row gradient.
    """
    return scores_and_gradients(adapter, x, lambda scores: target)[2]


def scores_and_gradients(adapter, x: torch.Tensor, choose_target):
    """One forward pass giving the scores, the target chosen from them by
    ``choose_target(scores) -> LongTensor``, and ∂f_target/∂x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = adapter.forward(x)
        target = choose_target(scores.detach())
        selected = scores.gather(1, target.view(-1, 1)).sum()
        if not selected.requires_grad:
            raise ValueError(
                "the model's output has no gradient path to its input (it detaches, rounds or "
                "takes an argmax); gradient methods cannot explain it, use a model-agnostic method"
            )
        (grad,) = torch.autograd.grad(selected, x, allow_unused=True)
    if grad is None:
        raise ValueError("the model's output does not depend differentiably on its input")
    return scores.detach(), target, grad


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

    def _from_gradient(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Single-pass methods (saliency, gradient x input) map the input gradient to
        their attribution here; they then need one forward pass per chunk, not two."""
        raise NotImplementedError

    def _run(self, x, target, **options):
        if type(self)._from_gradient is GradientExplainer._from_gradient:
            return super()._run(x, target, **options)
        if options:
            raise TypeError(f"{type(self).__name__}.explain() got unexpected options: {sorted(options)}")
        xt = self.adapter.to_tensor(x)

        def step(sl, choose):
            s, t, g = scores_and_gradients(self.adapter, xt[sl], choose)
            return s, t, self._from_gradient(xt[sl], g).detach()

        scores, targets, values = one_pass_chunks(x.shape[0], target, self.adapter.batch_size, step)
        return self._result(torch.cat(values), x, targets, scores)

    def _fields(self, x, target, scores, values) -> dict:
        """Extra Explanation fields (base_value, delta...) after attribution."""
        return {}
