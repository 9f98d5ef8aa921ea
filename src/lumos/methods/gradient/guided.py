"""Guided Backpropagation (Springenberg et al. 2015, arXiv:1412.6806) and Deconvnet
(Zeiler & Fergus 2014, arXiv:1311.2901): gradients whose backward pass through every
``nn.ReLU`` follows a rule (as zennit's ``GuidedBackprop`` and ``ExcitationBackprop``
composites), attached with :func:`lumos.core.hooks.attach_rules` to the call's private
view of the model (the forward values are unchanged and no module is swapped):

- Guided backprop: ``R_in = ReLU(R_out) * 1[x > 0]`` (only positive signal through
  units that were active);
- Deconvnet: ``R_in = ReLU(R_out)`` (the forward mask is ignored).

Activations called functionally (``F.relu``) cannot be reached by module hooks: the
explainers refuse models without ``nn.ReLU`` modules.
"""
from __future__ import annotations

import torch
from torch import nn

from lumos.core.hooks import BackwardRule, attach_rules
from lumos.core.registry import register
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


def relu_rules(model: nn.Module, rule: BackwardRule, method: str):
    """A context attaching ``rule`` to every ``nn.ReLU`` of ``model`` (removed on exit)."""
    return attach_rules({m: rule for m in relu_modules(model, method)})


class ModifiedReLUGradient(GradientExplainer):
    """The input gradient with a rule on every ReLU's backward pass; scores and targets
    come from the same forward pass (the rules change only the backward pass)."""

    single_pass = True
    torchscript = False
    rule: type[BackwardRule] = BackwardRule

    def prepare(self, x, call):
        call.stack.enter_context(relu_rules(call.model, self.rule(), type(self).__name__))
        return super().prepare(x, call)

    def from_gradient(self, x, grad):
        return grad


@register("guided_backprop", "guided_backpropagation")
class GuidedBackprop(ModifiedReLUGradient):
    """Gradient with every ReLU's backward replaced by ``relu(grad) * 1[x > 0]``."""

    rule = GuidedReLURule


@register("deconvnet", "deconvolution")
class Deconvnet(ModifiedReLUGradient):
    """Gradient with every ReLU's backward replaced by ``relu(grad)``."""

    rule = DeconvReLURule
