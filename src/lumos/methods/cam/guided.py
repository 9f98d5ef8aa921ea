"""Guided Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391): the upsampled Grad-CAM map
``(N, 1, ...)`` times guided backprop ``(N, C, ...)``
(:class:`lumos.methods.gradient.GuidedBackprop`), both for the targets of the Grad-CAM pass."""
from __future__ import annotations

from lumos.core.registry import register
from lumos.methods.base import Chunk
from lumos.methods.cam.gradcam import GradCAM
from lumos.methods.gradient.base import input_gradients
from lumos.methods.gradient.guided import GuidedReLURule, relu_rules

# the guided rules live in the gradient family; re-exported for old imports
from lumos.methods.gradient.guided import Deconvnet, GuidedBackprop  # noqa: F401,E402


@register("guided_grad_cam", "guided_gradcam")
class GuidedGradCAM(GradCAM):
    """Upsampled Grad-CAM times guided backprop, shaped like the input.

    ``extras`` keep ``grad_cam`` (upsampled, ``(N, 1, ...)``), ``guided_backprop`` and the
    Grad-CAM ``layer_map``.
    """

    def attribute_chunk(self, x, targets, state):
        cam = super().attribute_chunk(x, targets, state)  # its pass resolved the targets
        xt = state.adapter.to_tensor(x)
        with relu_rules(state.call.model, GuidedReLURule(), type(self).__name__):
            guided = input_gradients(state.adapter, xt, cam.targets).detach()
        cam.extras.update(grad_cam=cam.values, guided_backprop=guided)
        return Chunk(cam.values * guided, cam.scores, cam.targets, cam.extras)
