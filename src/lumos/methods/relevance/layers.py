"""Modules that make a computation visible to LRP.

A residual block written ``x + f(x)`` adds two tensors with the ``+`` operator, which no
hook can see; relevance would then flow through the sum as a gradient (copied to both
summands, not split). Writing the sum as ``self.add(x, f(x))`` with :class:`Add` lets the
``Norm`` rule split the relevance in proportion to the summands:
``R_a = a / (a + b) · R`` and ``R_b = b / (a + b) · R``.
"""
from __future__ import annotations

import torch
from torch import nn


class Add(nn.Module):
    """Elementwise sum of any number of tensors of the same shape (a residual join)."""

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if not tensors:
            raise ValueError("Add needs at least one tensor")
        out = tensors[0]
        for t in tensors[1:]:
            out = out + t
        return out


class Residual(nn.Module):
    """``x + block(x)`` with the sum made by :class:`Add`, so LRP splits it proportionally."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(x, self.block(x))
