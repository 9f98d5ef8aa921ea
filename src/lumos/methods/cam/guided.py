"""Guided Backpropagation (Springenberg et al. 2015, arXiv:1412.6806), Deconvnet
(Zeiler & Fergus 2014, arXiv:1311.2901) and Guided Grad-CAM (Selvaraju et al. 2017).

All three are gradients in which the backward pass of every ``nn.ReLU`` is replaced,
through :func:`lumos.core.hooks.attach_rules` (the forward values are unchanged and the
modules are never swapped):

- Guided backprop: ``R_in = ReLU(R_out) * 1[x > 0]`` (only positive signal through
  units that were active);
- Deconvnet: ``R_in = ReLU(R_out)`` (the forward mask is ignored);
- Guided Grad-CAM: upsampled Grad-CAM ``(N, 1, ...)`` times guided backprop ``(N, C, ...)``.

Activations called functionally (``F.relu``) cannot be reached by module hooks: the
explainers refuse models without ``nn.ReLU`` modules.
"""
from __future__ import annotations

import torch
from torch import nn

from lumos.core.hooks import BackwardRule, attach_rules
from lumos.core.registry import register
from lumos.methods.cam.gradcam import GradCAM
from lumos.methods.gradient.base import GradientExplainer


class GuidedReLURule(BackwardRule):
    """``relu(grad_out) * 1[x > 0]``."""

    def backward(self, module, inputs, output, grad_output):
        # threshold_backward(g, x, 0) = g * 1[x > 0], the kernel of ReLU's own backward
        # (about 3x faster than building the mask and multiplying)
        return (torch.ops.aten.threshold_backward(torch.relu(grad_output), inputs[0], 0),)


class DeconvReLURule(BackwardRule):
    """``relu(grad_out)``: the deconvnet's backward ReLU ignores the forward mask."""

    def backward(self, module, inputs, output, grad_output):
        return (torch.relu(grad_output),)


def relu_modules(model: nn.Module, method: str) -> list[nn.Module]:
    found = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not found:
        raise ValueError(
            f"{method} rewrites the backward pass of nn.ReLU modules and this model has none "
            "(functional relu calls cannot be hooked); use Saliency or GradCAM instead"
        )
    return found


class _ModifiedReLUGradient(GradientExplainer):
    rule: type[BackwardRule] = BackwardRule

    def _rules(self):
        rule = self.rule()
        return attach_rules({m: rule for m in relu_modules(self.model, type(self).__name__)})

    def _run(self, x, target, **options):
        # the rules change only the backward pass, so the scores (prediction, predicted
        # target) come from the same forward pass as the gradient: one pass per chunk
        with self._rules():
            return super()._run(x, target, **options)

    def _from_gradient(self, x, grad):
        return grad


@register("guided_backprop", "guided_backpropagation")
class GuidedBackprop(_ModifiedReLUGradient):
    """Gradient with every ReLU's backward replaced by ``relu(grad) * 1[x > 0]``."""

    rule = GuidedReLURule


@register("deconvnet", "deconvolution")
class Deconvnet(_ModifiedReLUGradient):
    """Gradient with every ReLU's backward replaced by ``relu(grad)``."""

    rule = DeconvReLURule


@register("guided_grad_cam", "guided_gradcam")
class GuidedGradCAM(GradCAM):
    """Upsampled Grad-CAM times guided backprop, shaped like the input.

    ``extras`` keep ``grad_cam`` (upsampled, ``(N, 1, ...)``), ``guided_backprop`` and the
    Grad-CAM ``layer_map``.
    """

    def _run(self, x, target, **options):
        cam = super()._run(x, target, **options)  # Grad-CAM; its pass also resolved the targets
        g = GuidedBackprop(self.adapter)._run(x, cam.target).values
        cam.extras["grad_cam"] = cam.values
        cam.extras["guided_backprop"] = g
        cam.values = cam.values * g
        return cam
