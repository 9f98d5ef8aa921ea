"""Sentence classifiers over token ids ``(N, T)`` (``<pad>`` = 0 at the end of a row), small
enough to train from scratch on a CPU in minutes, for the text workshop:

- :class:`KimCNN`: Kim (2014, arXiv:1408.5882) CNN-rand: random word embeddings (300-d),
  filter widths 3, 4, 5 with 100 feature maps each, ReLU, max-over-time pooling, dropout
  0.5 on the penultimate layer, a linear softmax layer (whose rows Kim keeps at l2 norm
  <= 3: ``max_norm`` in :func:`fit_text`). Each sentence is zero-padded by ``w - 1`` on
  both sides for a width ``w`` (Kim's padding); windows that hold no real token are left
  out of the max, so the output does not depend on how much padding a batch carries.
- :class:`BiLSTMAttention`: the encoder of Jain & Wallace (2019, arXiv:1902.10186), a
  bidirectional LSTM with additive (Bahdanau et al. 2015) attention
  ``α = softmax_t(vᵀ tanh(W h_t + b))`` over the real tokens and a linear layer on
  ``c = Σ_t α_t h_t``. The attention is exposed: ``forward(..., return_attention=True)``
  returns it; ``attention=`` replaces it by a given distribution (Jain & Wallace's
  adversarial attention), ``uniform=True`` evaluates with ``α_t = 1/length``, and a model
  built with ``attention="uniform"`` is trained with attention frozen uniform (the
  baseline of Wiegreffe & Pinter 2019, arXiv:1908.04626); ``detach_attention=True`` cuts
  the gradient through ``α`` (Jain & Wallace's gradient importance).
- :class:`TransformerText`: a small post-norm ``nn.TransformerEncoder`` (learned
  positions, key-padding mask) read at position 0, where the ids carry ``<cls>``
  (:func:`lumos.data.text.with_cls`); its attention is read by lumos's rollout and
  Chefer relevance through the ``nn.MultiheadAttention`` hooks.

Token ids may arrive as floats (lumos casts inputs to the model's dtype); they are rounded
back to integers. Every model starts from an ``nn.Embedding`` named ``embedding``.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


PAD_ID = 0


def as_ids(ids: torch.Tensor) -> torch.Tensor:
    """Token ids as int64 (floats rounded)."""
    ids = torch.as_tensor(ids)
    return ids.round().long() if ids.is_floating_point() else ids.long()


def real_lengths(ids: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """Position of the last non-pad token + 1 per row (a pad inside a sentence, e.g. an
    occluded word, does not shorten it); at least 1."""
    real = ids != pad_id
    pos = torch.arange(1, ids.shape[1] + 1, device=ids.device).expand_as(ids)
    return (pos * real).amax(1).clamp_min(1)


class KimCNN(nn.Module):
    """Kim (2014) CNN-rand; see the module docstring."""

    def __init__(self, vocab: int, n_classes: int = 2, embed_dim: int = 300, widths=(3, 4, 5), maps: int = 100,
                 dropout: float = 0.5, pad_id: int = PAD_ID):
        super().__init__()
        self.pad_id, self.widths = int(pad_id), tuple(int(w) for w in widths)
        self.embedding = nn.Embedding(vocab, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList([nn.Conv1d(embed_dim, maps, w, padding=w - 1) for w in self.widths])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(maps * len(self.widths), n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = as_ids(ids)
        real = (ids != self.pad_id).to(torch.float32)
        x = self.embedding(ids).transpose(1, 2)  # (N, D, T)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            z = conv(x)  # (N, maps, T + w - 1); window j covers tokens j-w+1 .. j
            covered = F.conv1d(real[:, None], real.new_ones(1, 1, w), padding=w - 1)[:, 0] > 0
            z = z.masked_fill(~covered[:, None], float("-inf"))
            pooled.append(F.relu(z.amax(2)))
        return self.classifier(self.dropout(torch.cat(pooled, 1)))


class BiLSTMAttention(nn.Module):
    """Bidirectional LSTM + additive attention; see the module docstring."""

    def __init__(self, vocab: int, n_classes: int = 2, embed_dim: int = 128, hidden: int = 64,
                 attention: str = "additive", attention_size: int | None = None, dropout: float = 0.0,
                 pad_id: int = PAD_ID):
        super().__init__()
        if attention not in ("additive", "uniform"):
            raise ValueError(f"attention must be 'additive' or 'uniform', got {attention!r}")
        self.pad_id, self.mode = int(pad_id), attention
        self.embedding = nn.Embedding(vocab, embed_dim, padding_idx=pad_id)
        self.rnn = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        width = 2 * hidden
        self.W = nn.Linear(width, attention_size or width)
        self.v = nn.Linear(attention_size or width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, n_classes)

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states ``(N, T, 2H)`` and the mask of real positions ``(N, T)``."""
        ids = as_ids(ids)
        lengths = real_lengths(ids, self.pad_id)
        e = self.embedding(ids)
        packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None]
        return h, mask

    def attend(self, h: torch.Tensor, mask: torch.Tensor, uniform: bool = False) -> torch.Tensor:
        """``α`` ``(N, T)``: additive attention over the real positions (or uniform)."""
        if uniform or self.mode == "uniform":
            m = mask.to(h.dtype)
            return m / m.sum(1, keepdim=True)
        e = self.v(torch.tanh(self.W(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.softmax(e, 1)

    def decode(self, h: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Logits from hidden states and attention."""
        return self.classifier(self.dropout(torch.einsum("nt,nth->nh", alpha, h)))

    def forward(self, ids, return_attention: bool = False, attention: torch.Tensor | None = None,
                uniform: bool = False, detach_attention: bool = False):
        h, mask = self.encode(ids)
        alpha = self.attend(h, mask, uniform) if attention is None else torch.as_tensor(attention).to(h)
        if detach_attention:
            alpha = alpha.detach()
        logits = self.decode(h, alpha)
        return (logits, alpha) if return_attention else logits


class TransformerText(nn.Module):
    """A small ``nn.TransformerEncoder`` classifier read at position 0 (``<cls>``)."""

    def __init__(self, vocab: int, n_classes: int = 2, dim: int = 64, depth: int = 2, heads: int = 4,
                 ff: int = 128, max_len: int = 128, dropout: float = 0.1, pad_id: int = PAD_ID):
        super().__init__()
        self.pad_id = int(pad_id)
        self.embedding = nn.Embedding(vocab, dim, padding_idx=pad_id)
        self.positions = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.classifier = nn.Linear(dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = as_ids(ids)
        if ids.shape[1] > self.positions.num_embeddings:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_len={self.positions.num_embeddings}")
        pos = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        pad = torch.arange(ids.shape[1], device=ids.device)[None] >= real_lengths(ids, self.pad_id)[:, None]
        x = self.embedding(ids) + self.positions(pos)
        return self.classifier(self.encoder(x, src_key_padding_mask=pad)[:, 0])


def _last_real(X: np.ndarray, pad_id: int) -> np.ndarray:
    """Numpy twin of :func:`real_lengths` (a batch is cut after its last real token)."""
    real = np.asarray(X) != pad_id
    return np.maximum((real * np.arange(1, real.shape[1] + 1)).max(1), 1)


def fit_text(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int = 5, lr: float = 1e-3,
             batch_size: int = 50, weight_decay: float = 0.0, seed: int = 0, max_norm: float | None = None,
             pad_id: int = PAD_ID, progress: bool = False) -> nn.Module:
    """Adam + cross-entropy on token ids, each batch cut to its longest sentence;
    ``max_norm`` rescales the rows of ``model.classifier.weight`` to l2 norm <= ``max_norm``
    after each step (Kim 2014: 3). Deterministic for a seed given the initial weights (see
    :func:`lumos.models.train.fit`); returns the model in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = np.asarray(X)
    lengths = _last_real(X, pad_id)
    Xt, yt = torch.as_tensor(X, dtype=torch.long), torch.as_tensor(np.asarray(y), dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        order = rng.permutation(len(X))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            t = int(lengths[idx].max())
            opt.zero_grad()
            loss = F.cross_entropy(model(Xt[idx, :t]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            if max_norm is not None:
                with torch.no_grad():
                    w = model.classifier.weight
                    w.mul_((max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))
        if progress:
            print(f"    epoch {epoch + 1}/{epochs}: loss {total / len(X):.4f} ({time.perf_counter() - start:.1f} s)",
                  flush=True)
    return model.eval()


def predict_text(model: nn.Module, X: np.ndarray, batch_size: int = 500, pad_id: int = PAD_ID, **forward) -> np.ndarray:
    """Logits ``(N, K)`` in eval mode, batches cut to their longest sentence."""
    X = np.asarray(X)
    lengths = _last_real(X, pad_id)
    out = []
    was = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(X), batch_size):
            t = int(lengths[s:s + batch_size].max())
            r = model(torch.as_tensor(X[s:s + batch_size, :t], dtype=torch.long), **forward)
            out.append((r[0] if isinstance(r, tuple) else r).float().numpy())
    model.train(was)
    return np.concatenate(out)


def text_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, **forward) -> float:
    """Share of correct predictions."""
    return float((predict_text(model, X, **forward).argmax(1) == np.asarray(y)).mean())
