"""A recurrent classifier with additive attention over time steps (Bahdanau, Cho, Bengio
2015, arXiv:1409.0473), for (N, C, T) series that may be padded.

    h_t = RNN(x)_t,   e_t = v^T tanh(W h_t + b),   alpha = softmax over valid steps of e,
    c = sum_t alpha_t h_t,   logits = Linear(c).

Padded steps (given by ``lengths`` or a boolean ``mask``) get ``alpha_t = 0`` and, with
``lengths`` (or a prefix mask), are packed away so they do not change the hidden states.
``attention="uniform"`` builds the same architecture with ``alpha_t = 1 / length``: the
baseline of Wiegreffe & Pinter (2019, arXiv:1908.04626).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class AdditiveAttention(nn.Module):
    """``alpha = softmax_t(v^T tanh(W h_t + b))`` over the steps where ``mask`` is True."""

    def __init__(self, hidden: int, attention_size: int):
        super().__init__()
        self.W = nn.Linear(hidden, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        e = self.v(torch.tanh(self.W(h))).squeeze(-1)  # (N, T)
        if mask is not None:
            e = e.masked_fill(~mask, float("-inf"))
        return torch.softmax(e, dim=1)


def step_mask(x: torch.Tensor, lengths=None, mask=None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(mask (N, T) bool or None, lengths (N,) or None)`` from either description of padding."""
    n, t = x.shape[0], x.shape[-1]
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device).long().reshape(-1)
        if lengths.shape[0] != n or bool((lengths < 1).any()) or bool((lengths > t).any()):
            raise ValueError(f"lengths must be {n} integers in [1, {t}], got {lengths.tolist()}")
        return torch.arange(t, device=x.device)[None] < lengths[:, None], lengths
    if mask is not None:
        mask = torch.as_tensor(mask, device=x.device).bool()
        if mask.shape != (n, t):
            raise ValueError(f"mask must have shape {(n, t)} (batch, time), got {tuple(mask.shape)}")
        if not bool(mask.any(1).all()):
            raise ValueError("every sequence needs at least one unmasked step")
        counts = mask.sum(1)
        prefix = torch.arange(t, device=x.device)[None] < counts[:, None]
        return mask, (counts if bool((prefix == mask).all()) else None)
    return None, None


class AttentionRNN(nn.Module):
    """GRU/LSTM encoder, additive attention over time, linear classifier on the context.

    Parameters
    ----------
    in_channels, n_classes : int
    hidden : int
        Hidden size per direction.
    cell : {"gru", "lstm"}
    bidirectional : bool
    attention : {"additive", "uniform"}
        ``"uniform"`` gives every valid step the weight ``1 / length`` (no parameters).
    attention_size : int, optional
        Size of ``W h_t`` (defaults to the encoder's output size).
    conv_channels : int, optional
        When given, a ``Conv1d(in_channels, conv_channels, conv_kernel, padding="same") -> ReLU``
        front-end (named ``frontend``) reads local shape before the recurrent layer; time
        steps, and so the attention positions, are unchanged.

    ``forward(x, lengths=None, mask=None, return_attention=False, uniform_attention=False)``
    takes ``x`` of shape (N, C, T) and returns logits (N, K), or ``(logits, alpha)`` with
    ``alpha`` (N, T) when ``return_attention``. ``uniform_attention=True`` evaluates the
    trained encoder and classifier with uniform weights instead of the learned ones.
    """

    def __init__(self, in_channels: int, n_classes: int, hidden: int = 32, cell: str = "gru",
                 bidirectional: bool = False, attention: str = "additive", attention_size: int | None = None,
                 conv_channels: int | None = None, conv_kernel: int = 7):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        if attention not in ("additive", "uniform"):
            raise ValueError(f"attention must be 'additive' or 'uniform', got {attention!r}")
        self.config = dict(in_channels=in_channels, n_classes=n_classes, hidden=hidden, cell=cell,
                           bidirectional=bidirectional, attention=attention, attention_size=attention_size,
                           conv_channels=conv_channels, conv_kernel=conv_kernel)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.frontend = None
        if conv_channels:
            self.frontend = nn.Sequential(nn.Conv1d(in_channels, conv_channels, conv_kernel, padding="same"), nn.ReLU())
        self.rnn = rnn(conv_channels or in_channels, hidden, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.attention = AdditiveAttention(width, attention_size or width) if attention == "additive" else None
        self.classifier = nn.Linear(width, n_classes)

    def uniform_copy(self) -> "AttentionRNN":
        """An untrained model of the same architecture with uniform attention."""
        return AttentionRNN(**{**self.config, "attention": "uniform"})

    def encode(self, x: torch.Tensor, lengths=None, mask=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states (N, T, H) and the valid-step mask."""
        if x.ndim != 3:
            raise ValueError(f"AttentionRNN takes (N, C, T) inputs, got shape {tuple(x.shape)}")
        mask, lengths = step_mask(x, lengths, mask)
        if self.frontend is not None:
            x = self.frontend(x if mask is None else x * mask[:, None].to(x.dtype))
        seq = x.transpose(1, 2)
        if lengths is None:
            h, _ = self.rnn(seq)
        else:
            packed = pack_padded_sequence(seq, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=seq.shape[1])
        return h, mask

    def forward(self, x, lengths=None, mask=None, return_attention: bool = False, uniform_attention: bool = False):
        h, mask = self.encode(x, lengths, mask)
        if self.attention is None or uniform_attention:
            valid = torch.ones(h.shape[:2], device=h.device, dtype=h.dtype) if mask is None else mask.to(h.dtype)
            alpha = valid / valid.sum(1, keepdim=True)
        else:
            alpha = self.attention(h, mask)
        context = torch.einsum("nt,nth->nh", alpha, h)
        logits = self.classifier(context)
        return (logits, alpha) if return_attention else logits
