"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) and Grad-CAM++ (Chattopadhyay et
al. 2018, arXiv:1710.11063), for layers with any number of position axes.

Both are ``L^c = ReLU(sum_k alpha_k^c A_k)``; they differ only in the channel weights:

- Grad-CAM: ``alpha_k = mean_u dy^c/dA_k(u)``.
- Grad-CAM++: ``alpha_k = sum_u a_k(u) ReLU(g_k(u))`` with ``g = dy^c/dA`` and
  ``a_k(u) = g^2 / (2 g^2 + sum_v A_k(v) g^3)`` (the paper's closed form for an
  exponentiated score; ``a = 0`` where the denominator vanishes).

Gradients with respect to the activation come from ``torch.autograd.grad`` on the
activation captured by :func:`lumos.core.hooks.capture_activations`: no backward hooks.
The scores, the targets, the activation and its gradient come from one forward and one
backward pass per chunk. On a GAP -> linear head, Grad-CAM equals ``ReLU(CAM) / Z`` with
``Z`` the number of positions.
"""
from __future__ import annotations

import torch

from lumos.core.registry import register
from lumos.methods.cam.cam import LayerMapExplainer, layer_output
from lumos.methods.cam.layers import to_channels_first


def activation_and_gradient(state, x: torch.Tensor, choose, channel_axis):
    """The layer's output ``A``, ``dy^c/dA`` (both ``(N, C, *positions)``), the scores and
    the targets, from one forward pass; ``choose(scores) -> LongTensor`` picks the targets
    from the (detached) scores."""
    name, module = state.name, state.module
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)  # parameters are frozen: the graph starts at the input
        scores, act = layer_output(state.call.model, xg, name, module, state.adapter.forward)
        if not isinstance(act, torch.Tensor):
            raise TypeError(f"layer {name!r} returned {type(act).__name__}, not a tensor")
        target = choose(scores.detach())
        selected = scores.gather(1, target.view(-1, 1)).sum()
        if not selected.requires_grad:
            raise ValueError("the model's output has no gradient path to its input (it detaches, rounds or takes an "
                             "argmax); use a model-agnostic method")
        (grad,) = torch.autograd.grad(selected, act, allow_unused=True)
    if grad is None:
        raise ValueError(f"the target score does not depend on layer {name!r}; choose a layer before the output")
    return (to_channels_first(act.detach(), module, channel_axis), to_channels_first(grad, module, channel_axis),
            scores.detach(), target)


@register("grad_cam", "gradcam")
class GradCAM(LayerMapExplainer):
    """Gradient-weighted class activation map ``ReLU(sum_k alpha_k A_k)``,
    ``alpha_k = mean_u dy^c/dA_k(u)``; upsampled to the input (see :class:`LayerMapExplainer`).

    ``relu=False`` keeps the signed map (useful to see evidence against a class).
    ``extras["layer_map"]`` is the map at layer resolution, ``extras["channel_weights"]`` the alphas.
    """

    def __init__(self, model, layer=None, *, relu: bool = True, channel_axis="auto", **kwargs):
        super().__init__(model, layer, channel_axis=channel_axis, **kwargs)
        self.relu = bool(relu)

    def params(self):
        return {**super().params(), "relu": self.relu}

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` weights of the channels."""
        return grad.flatten(2).mean(2)

    def layer_map(self, x, targets, state):
        act, grad, scores, t = activation_and_gradient(state, x, targets, self.channel_axis)
        w = self.channel_weights(act, grad)
        cam = torch.einsum("nc...,nc->n...", act, w)
        return scores, t, torch.relu(cam) if self.relu else cam, {"channel_weights": w.detach()}


@register("grad_cam_plus_plus", "gradcam++", "grad_cam++", "gradcampp")
class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: channel weights ``sum_u a_k(u) ReLU(g_k(u))`` with
    ``a = g^2 / (2 g^2 + sum_v A_k(v) g^3)`` (Chattopadhyay et al. 2018, eq. 19)."""

    def channel_weights(self, act, grad):
        g2 = grad * grad
        total = act.flatten(2).sum(2).view(*act.shape[:2], *([1] * (act.ndim - 2)))
        denom = 2 * g2 + total * g2 * grad
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        a = torch.where(denom != 0, g2 / safe, torch.zeros_like(g2))
        return (a * torch.relu(grad)).flatten(2).sum(2)
