"""Saliency maps (Simonyan, Vedaldi, Zisserman 2014, arXiv:1312.6034).

``S(x) = |∂f_c/∂x|`` (or the signed gradient with ``absolute=False``); for images the
maximum over colour channels can be taken (``reduce_channels="max"``), which keeps the
channel axis with length 1 so the map broadcasts to the input.
"""
from __future__ import annotations

from lumos.core.registry import register
from lumos.core.validate import check_choice
from lumos.methods.gradient.base import GradientExplainer


@register("saliency", "gradient", "vanilla_gradient")
class Saliency(GradientExplainer):
    """Gradient of the target score with respect to the input.

    Parameters
    ----------
    absolute : bool, default True
        Return ``|∂f/∂x|`` as in the paper; False gives the signed gradient.
    reduce_channels : {None, "max"}
        ``"max"`` takes the maximum over axis 1 (colour channels), keeping it with length 1.
    """

    single_pass = True

    def __init__(self, model, *, absolute: bool = True, reduce_channels: str | None = None, **kwargs):
        super().__init__(model, **kwargs)
        self.absolute = bool(absolute)
        self.reduce_channels = check_choice(reduce_channels, "reduce_channels", {None, "max"})

    def params(self):
        return {**super().params(), "absolute": self.absolute, "reduce_channels": self.reduce_channels}

    def from_gradient(self, x, g):
        if self.absolute:
            g = g.abs()
        if self.reduce_channels == "max":
            if g.ndim < 3:
                raise ValueError(f"reduce_channels='max' needs a channel axis, inputs have shape {tuple(x.shape)}")
            g = g.amax(dim=1, keepdim=True) if self.absolute else g.gather(1, g.abs().argmax(1, keepdim=True))
        return g
