"""EEGNet (Lawhern et al. 2018, "EEGNet: a compact convolutional neural network for
EEG-based brain-computer interfaces", arXiv:1611.08024) for (N, channels, time) epochs.

    temporal conv (1 x K, F1 filters) -> BN -> depthwise spatial conv (electrodes x 1,
    D filters each) -> BN -> ELU -> avg-pool (1 x 4) -> dropout -> separable conv
    (1 x 15 depthwise + 1 x 1 pointwise, F2 filters) -> BN -> ELU -> avg-pool (1 x 8) -> dropout

``features`` ends by dropping the electrode axis (length 1 after the spatial conv), so
its output is (N, F2, T'): a time series that CAM and Grad-CAM read over time. The
default ``head="gap"`` averages it over time before the linear classifier (so CAM
applies); ``head="flatten"`` is the paper's dense layer on all time steps (needs ``n_times``).
The paper's max-norm weight constraints are left out, and its kernels (64 and 16 samples)
are odd here (63 and 15) so that ``padding="same"`` is symmetric.
"""
from __future__ import annotations

import torch
from torch import nn


class DropElectrodeAxis(nn.Flatten):
    """(N, F, 1, T) -> (N, F, T): a Flatten of axes 1-2, so that shape-only rules (LRP's
    pass-through) recognise it."""

    def __init__(self):
        super().__init__(1, 2)


class EEGNet(nn.Module):
    """EEGNet-F1,D on (N, n_channels, n_times) inputs; see the module docstring."""

    def __init__(self, n_channels: int, n_classes: int, F1: int = 8, D: int = 2, F2: int | None = None,
                 kernel_length: int = 63, dropout: float = 0.25, head: str = "gap", n_times: int | None = None):
        super().__init__()
        if head not in ("gap", "flatten"):
            raise ValueError(f"head must be 'gap' or 'flatten', got {head!r}")
        if head == "flatten" and n_times is None:
            raise ValueError("head='flatten' needs n_times (the number of time steps per epoch)")
        F2 = F2 or F1 * D
        self.features = nn.Sequential(
            nn.Conv2d(1, F1, (1, kernel_length), padding="same", bias=False),
            nn.BatchNorm2d(F1),
            nn.Conv2d(F1, F1 * D, (n_channels, 1), groups=F1, bias=False),
            nn.BatchNorm2d(F1 * D),
            nn.ELU(),
            nn.AvgPool2d((1, 4)),
            nn.Dropout(dropout),
            nn.Conv2d(F1 * D, F1 * D, (1, 15), padding="same", groups=F1 * D, bias=False),
            nn.Conv2d(F1 * D, F2, 1, bias=False),
            nn.BatchNorm2d(F2),
            nn.ELU(),
            nn.AvgPool2d((1, 8)),
            nn.Dropout(dropout),
            DropElectrodeAxis(),
        )
        self.head = head
        if head == "gap":
            self.gap = nn.AdaptiveAvgPool1d(1)
            self.flatten = nn.Flatten()
            self.classifier = nn.Linear(F2, n_classes)
        else:
            self.flatten = nn.Flatten()
            self.classifier = nn.Linear(F2 * (n_times // 32), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"EEGNet takes (N, channels, time) epochs, got shape {tuple(x.shape)}")
        z = self.features(x.unsqueeze(1))
        if self.head == "gap":
            z = self.gap(z)
        return self.classifier(self.flatten(z))
