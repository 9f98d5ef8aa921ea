"""Small reference networks: an MLP for tables, 1-D and 2-D CNNs with a global-average-
pooling head (so CAM applies), and a recurrent classifier for (N, C, T) series."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """``Linear -> ReLU`` blocks then a linear classifier: (N, d) -> (N, n_classes)."""

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (64, 32), bias: bool = True,
                 activation: type[nn.Module] = nn.ReLU):
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h, bias=bias), activation()]
            width = h
        layers.append(nn.Linear(width, n_classes, bias=bias))
        super().__init__(*layers)


def _conv_features(conv: type[nn.Module], pool: type[nn.Module], in_channels: int, channels: Sequence[int],
                   kernel_size: int, bias: bool, pool_every: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_channels
    for i, c in enumerate(channels):
        layers += [conv(width, c, kernel_size, padding=kernel_size // 2, bias=bias), nn.ReLU()]
        if pool_every and i < len(channels) - 1:
            layers.append(pool(2))
        width = c
    return nn.Sequential(*layers)


class CNN1d(nn.Module):
    """Time-series CNN: conv blocks -> global average pooling over time -> linear.

    (N, C, T) -> (N, n_classes). ``features`` is the last conv block (CAM's layer),
    ``gap`` the pooling, ``classifier`` the linear head.
    """

    def __init__(self, in_channels: int, n_classes: int, channels: Sequence[int] = (16, 32, 32),
                 kernel_size: int = 7, bias: bool = True):
        super().__init__()
        self.features = _conv_features(nn.Conv1d, nn.MaxPool1d, in_channels, channels, kernel_size, bias, True)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels[-1], n_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.gap(self.features(x))))


class CNN2d(nn.Module):
    """Image CNN: conv blocks -> global average pooling -> linear; (N, C, H, W) -> (N, K)."""

    def __init__(self, in_channels: int, n_classes: int, channels: Sequence[int] = (16, 32, 32),
                 kernel_size: int = 3, bias: bool = True):
        super().__init__()
        self.features = _conv_features(nn.Conv2d, nn.MaxPool2d, in_channels, channels, kernel_size, bias, True)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels[-1], n_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.gap(self.features(x))))


class RecurrentClassifier(nn.Module):
    """GRU or LSTM over the time axis of (N, C, T) inputs, last hidden state -> linear."""

    def __init__(self, in_channels: int, n_classes: int, hidden: int = 32, cell: str = "gru",
                 bidirectional: bool = False):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(in_channels, hidden, batch_first=True, bidirectional=bidirectional)
        self.classifier = nn.Linear(hidden * (2 if bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.transpose(1, 2))  # (N, T, H)
        return self.classifier(out[:, -1])
