"""The gradient family: attributions computed from ∂f_target/∂x on batches of rows.

A method either maps the input gradient of one forward/backward pass to its attribution
(``single_pass = True``: saliency, Gradient x Input, guided backprop, Deconvnet; the
scores and the predicted targets come from that same pass) or computes its attribution
of rows with known targets in :meth:`GradientExplainer.gradient_rows` (IG, which
SmoothGrad can wrap). An explanation whose input gradients are all exactly zero is
refused: the model then has no gradient path to its input (it rounds, thresholds or
takes an argmax), and a map of zeros would say nothing while looking like an answer.
When the autograd graph holds no such step function, all-zero gradients may be true
saturation (IG's motivating example) and only a warning is given.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from lumos.core.explanation import Explanation
from lumos.methods.base import Chunk, Explainer


def scores_and_gradients(adapter, x: torch.Tensor, choose_target, call=None):
    """One forward pass giving the scores, the targets chosen from them by
    ``choose_target(scores) -> LongTensor`` and ∂f_target/∂x (rows are independent in
    eval mode, so the gradient of the summed target scores is the per-row gradient)."""
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
        raise ValueError("the model's output does not depend differentiably on its input; use a model-agnostic method")
    if call is not None:
        call.note_gradient(grad)
        if not call.gradient_seen and call.step_functions is None:
            call.step_functions = step_functions(selected.grad_fn)
    return scores.detach(), target, grad


STEP_FUNCTIONS = ("RoundBackward", "FloorBackward", "CeilBackward", "TruncBackward", "SignBackward",
                  "FracBackward")


def step_functions(fn, limit: int = 100_000) -> list[str]:
    """Names of the piecewise-constant operations (round, floor, sign...) in an autograd
    graph: their gradient is zero everywhere, so nothing before them gets a gradient."""
    found, seen, todo = set(), set(), [fn]
    while todo and len(seen) < limit:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        name = type(f).__name__
        if name.startswith(STEP_FUNCTIONS):
            found.add(name.rstrip("0123456789").replace("Backward", "").lower())
        todo.extend(nxt for nxt, _ in getattr(f, "next_functions", ()))
    return sorted(found)


def input_gradients(adapter, x: torch.Tensor, target: torch.Tensor, call=None) -> torch.Tensor:
    """∂f_target/∂x for every row of ``x`` in one forward and one backward pass."""
    return scores_and_gradients(adapter, x, lambda scores: target, call)[2]


class GradientExplainer(Explainer):
    """Base of the methods computed from input gradients."""

    needs_gradients = True
    single_pass = False
    """True: the attribution is ``from_gradient(x, ∂f/∂x)`` of one pass."""

    def from_gradient(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Single-pass methods: the attribution from the input gradient."""
        raise NotImplementedError

    def gradient_rows(self, x: torch.Tensor, target: torch.Tensor, index: torch.Tensor, state) -> torch.Tensor:
        """Attributions of rows ``x`` for known targets; ``index[i]`` is the position in the
        explained batch of row ``i`` (SmoothGrad passes noisy copies of the same input)."""
        return self.from_gradient(x, input_gradients(state.adapter, x, target, state.call))

    def attribute_chunk(self, x, targets, state):
        adapter = state.adapter
        xt = adapter.to_tensor(x)
        if self.single_pass:
            s, t, g = scores_and_gradients(adapter, xt, targets, state.call)
            return Chunk(self.from_gradient(xt, g).detach(), s, t)
        known = getattr(state, "x_scores", None)  # the inputs' scores, when prepare computed them for the call
        if known is not None:
            s = torch.as_tensor(known[np.asarray(targets.index)], device=xt.device)
        else:
            with torch.no_grad():
                s = adapter.forward(xt)
        t = targets(s)
        index = torch.as_tensor(targets.index, device=xt.device)
        return Chunk(self.gradient_rows(xt, t, index, state).detach(), s, t)

    def finish(self, x, result: Explanation, state) -> None:
        call = state.call
        if call.gradient_seen:
            return
        if call.step_functions:
            raise ValueError(
                f"every input gradient of the target score is exactly zero: the model's output passes through "
                f"{', '.join(call.step_functions)}, whose gradient is zero everywhere, so it has no gradient path to "
                "its input and a gradient map would be all zeros; explain the scores before that step, or use a "
                "model-agnostic method (occlusion, kernel_shap, lime)"
            )
        warnings.warn(
            f"every input gradient of the target score is exactly zero for these {len(x)} input(s): the model is "
            "saturated there (or its output does not depend on the input), so this map carries no information; "
            "Integrated Gradients or a model-agnostic method (occlusion, kernel_shap) still attribute the score",
            stacklevel=3)
