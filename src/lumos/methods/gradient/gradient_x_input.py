"""Gradient x Input (Shrikumar et al. 2016, arXiv:1605.01713): ``x ⊙ ∂f_c/∂x``.

For a linear model f(x) = wᵀx + b it gives ``w ⊙ x``; for ReLU networks it equals
LRP-0 (Kindermans et al. 2016; Ancona et al. 2018).
"""
from __future__ import annotations

from lumos.core.registry import register
from lumos.methods.gradient.base import GradientExplainer


@register("gradient_x_input", "gxi", "input_x_gradient")
class GradientXInput(GradientExplainer):
    """Elementwise product of the input and the gradient of the target score."""

    single_pass = True

    def from_gradient(self, x, grad):
        return x * grad
