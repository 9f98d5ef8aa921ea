"""Gradient x Input (Shrikumar et al. 2016, arXiv:1605.01713): ``x ⊙ ∂f_c/∂x``.

For a linear model f(x) = wᵀx + b it gives ``w ⊙ x``; for ReLU networks it equals
LRP-0 (Kindermans et al. 2016; Ancona et al. 2018).

On token ids it is ``e_t ⊙ ∂f_c/∂e_t`` on the output of the token ``nn.Embedding``, summed
over the embedding axis: captum's ``LayerGradientXActivation`` on that embedding (equal to
1e-6, ``tests/test_text_gxi_transformer.py``). On transformers it is a poor token relevance,
a property of the method, not of this code: a LayerNorm is scale invariant, so by Euler's
theorem ``∂f/∂x_t · x_t = 0`` for a token whose input ``x_t = e_t + p_t`` reaches the output
only through a LayerNorm (every non-``<cls>`` token of a one-block pre-norm encoder), and then
``∂f/∂e_t · e_t = −∂f/∂p_t · p_t`` — the gradient times the *position* embedding, whatever the
token. It fails the planted-token test there (tests/test_text.py) while Integrated Gradients,
occlusion, KernelSHAP, Chefer and AttnLRP pass; Ali et al. 2022 (arXiv:2202.07304) identify
LayerNorm and attention as why gradients explain transformers unreliably.
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
