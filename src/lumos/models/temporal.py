"""Reference sequence classifiers for the time-series benchmarks, and the white-box
regressor of the rare-feature / rare-time experiments.

All take lumos's (N, C, T) layout and return logits (N, n_classes) (no softmax: lumos
explains the raw score unless asked), are differentiable end to end (every gradient
method applies) and are plain modules with named layers (hook-based methods find them).
Each trains in seconds on a CPU at the benchmarks' sizes.

- :class:`GRUClassifier` / :class:`LSTMClassifier`: a recurrent layer ``rnn`` and a linear
  head ``classifier`` on the hidden state of the last step. ``forward_all`` returns the
  head at every step (N, K, T): for a causal recurrent network, the logits of step ``t``
  are those of ``forward(x[..., :t+1])``, so one pass over the whole sequence trains the
  per-step task of tint's HMM experiment (``StateClassifier``: predict ``y_t`` from the
  prefix ``x_{0..t}``, a random ``t`` per batch there, every ``t`` at once here); see
  :class:`AllSteps`.
- :class:`TCN`: dilated causal convolutions (Bai, Kolter & Koltun 2018, arXiv:1803.01271)
  in residual blocks (``features``), pooled over time (``pool``: max as in Ismail et al.'s
  reference TCN, or average) -> linear ``classifier``. Plain ``Conv1d`` (no weight norm),
  so Grad-CAM and the other layer methods find the convolutions.
- :class:`TransformerClassifier`: a linear embedding, sinusoidal positions,
  ``nn.TransformerEncoder`` (causal attention mask by default, as Ismail et al.'s
  reference transformer), pooled over time -> linear. Dropout is off in eval mode, the
  encoder's fused inference path only runs without gradients, so explanations that take
  gradients and those that do not see the same function.
- :class:`SalientSquares`: ``f(x) = sum_{(c, t) in A} x_{c,t}^2`` for a fixed mask ``A``,
  the white box of Crabbé & van der Schaar 2021 (tint's ``Arma.get_white_box``), output
  (N, 1). tint's white box outputs one value per step, ``f_t = sum_c A_{c,t} x_{c,t}^2``,
  and explains ``f_t`` with the inputs of step ``t``; since ``f_t`` depends only on step
  ``t``, the attribution of the sum to cell ``(c, t)`` equals that of ``f_t`` for every
  method linear in the output (IG, occlusion, LIME, Shapley values, gradient x input) and
  for gradient magnitudes.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["GRUClassifier", "LSTMClassifier", "AllSteps", "TCN", "CausalConvBlock", "TransformerClassifier",
           "SalientSquares"]


class _Recurrent(nn.Module):
    cell: type[nn.Module] = nn.GRU

    def __init__(self, in_channels: int, n_classes: int, hidden: int = 32, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.rnn = self.cell(in_channels, hidden, num_layers=num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at every step: (N, C, T) -> (N, n_classes, T)."""
        out, _ = self.rnn(x.transpose(1, 2))
        return self.classifier(self.dropout(out)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the last step: (N, C, T) -> (N, n_classes)."""
        out, _ = self.rnn(x.transpose(1, 2))
        return self.classifier(self.dropout(out[:, -1]))


class GRUClassifier(_Recurrent):
    """GRU over time, linear head on the last hidden state (``forward``) or on every
    step's (``forward_all``). Layers: ``rnn``, ``classifier``."""

    cell = nn.GRU


class LSTMClassifier(_Recurrent):
    """LSTM over time, linear head on the last hidden state (``forward``) or on every
    step's (``forward_all``). Layers: ``rnn``, ``classifier``."""

    cell = nn.LSTM


class AllSteps(nn.Module):
    """``model.forward_all`` as the forward: (N, C, T) -> (N, K, T), for training a
    per-step task with ``lumos.models.train.fit`` (cross-entropy accepts (N, K, T) logits
    with (N, T) labels). The trained weights are ``self.model``'s."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_all(x)


class CausalConvBlock(nn.Module):
    """Two dilated causal convolutions (left padding, ReLU, dropout) with a residual
    connection (a 1x1 convolution when the widths differ), as in Bai et al.'s TCN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation)
        self.relu1, self.relu2, self.relu = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.downsample = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop1(self.relu1(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        out = self.drop2(self.relu2(self.conv2(nn.functional.pad(out, (self.pad, 0)))))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


def _pool(kind: str) -> nn.Module:
    if kind == "max":
        return nn.AdaptiveMaxPool1d(1)
    if kind == "avg":
        return nn.AdaptiveAvgPool1d(1)
    raise ValueError(f"pool must be 'max' or 'avg', got {kind!r}")


class TCN(nn.Module):
    """Temporal convolutional network: residual blocks of dilated causal convolutions
    (dilation ``2**i`` in block ``i``) -> pooling over time -> linear.

    (N, C, T) -> (N, n_classes). Layers: ``features`` (the blocks; its last block's
    output is Grad-CAM's layer), ``pool``, ``classifier``.
    """

    def __init__(self, in_channels: int, n_classes: int, channels: Sequence[int] = (32, 32, 32),
                 kernel_size: int = 4, dropout: float = 0.1, pool: str = "max"):
        super().__init__()
        blocks, width = [], in_channels
        for i, c in enumerate(channels):
            blocks.append(CausalConvBlock(width, c, kernel_size, 2 ** i, dropout))
            width = c
        self.features = nn.Sequential(*blocks)
        self.pool = _pool(pool)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (Vaswani et al. 2017) added to (N, T, d) embeddings."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequences of {x.shape[1]} steps exceed max_len={self.pe.shape[0]}")
        return x + self.pe[: x.shape[1]]


class TransformerClassifier(nn.Module):
    """Small transformer encoder for (N, C, T) series: linear embedding of each step,
    sinusoidal positions, ``nn.TransformerEncoder`` (pre-norm layers, causal attention
    when ``causal``), pooling over time, linear head. Layers: ``embed``, ``encoder``,
    ``pool``, ``classifier``."""

    def __init__(self, in_channels: int, n_classes: int, d_model: int = 32, heads: int = 4, layers: int = 2,
                 dim_feedforward: int = 64, dropout: float = 0.1, causal: bool = True, pool: str = "max",
                 max_len: int = 512):
        super().__init__()
        self.causal = bool(causal)
        self.embed = nn.Linear(in_channels, d_model)
        self.position = PositionalEncoding(d_model, max_len)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.pool = _pool(pool)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.position(self.embed(x.transpose(1, 2)))  # (N, T, d)
        mask = None
        if self.causal:
            t = h.shape[1]
            mask = torch.triu(torch.full((t, t), float("-inf"), device=h.device, dtype=h.dtype), diagonal=1)
        h = self.encoder(h, mask=mask)
        return self.classifier(self.flatten(self.pool(h.transpose(1, 2))))


class SalientSquares(nn.Module):
    """White-box regressor ``f(x) = sum_{(c, t) in A} x_{c,t}^2`` (N, C, T) -> (N, 1), for a
    fixed boolean mask ``A`` (C, T): the true saliency is exactly ``A``."""

    def __init__(self, mask):
        super().__init__()
        m = torch.as_tensor(np.asarray(mask, dtype=bool))
        if m.ndim != 2:
            raise ValueError(f"mask must be (C, T), got shape {tuple(m.shape)}")
        self.register_buffer("mask", m.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x * self.mask).sum(dim=(1, 2)).unsqueeze(1)
