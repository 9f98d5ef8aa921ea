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


class _KimEmbedding(nn.Embedding):
    """Kim's CNN-rand word vectors: U(-0.25, 0.25) (his ``np.random.uniform(-0.25, 0.25, k)``),
    the pad row zero."""

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -0.25, 0.25)
        self._fill_padding_idx_with_zero()


class _ZeroLinear(nn.Linear):
    """The softmax layer of Kim's code (``LogisticRegression``: weights and bias start at 0)."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class KimCNN(nn.Module):
    """Kim (2014) CNN-rand; see the module docstring.

    ``init="kim"`` (default) starts as Kim's code does: word vectors U(-0.25, 0.25), the
    softmax layer at zero (the convolutions keep PyTorch's uniform fan-in init, the same
    scale as his ``sqrt(6 / (fan_in + fan_out))``); ``init="torch"``: PyTorch's defaults
    (embeddings N(0, 1)). The init lives in the layers' ``reset_parameters``, so
    :func:`lumos.models.train.reset_weights` and the weight cache re-draw it the same way."""

    def __init__(self, vocab: int, n_classes: int = 2, embed_dim: int = 300, widths=(3, 4, 5), maps: int = 100,
                 dropout: float = 0.5, pad_id: int = PAD_ID, init: str = "kim"):
        super().__init__()
        if init not in ("kim", "torch"):
            raise ValueError(f"init must be 'kim' or 'torch', got {init!r}")
        self.pad_id, self.widths = int(pad_id), tuple(int(w) for w in widths)
        embedding, linear = (_KimEmbedding, _ZeroLinear) if init == "kim" else (nn.Embedding, nn.Linear)
        self.embedding = embedding(vocab, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList([nn.Conv1d(embed_dim, maps, w, padding=w - 1) for w in self.widths])
        self.dropout = nn.Dropout(dropout)
        self.classifier = linear(maps * len(self.widths), n_classes)

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


def dev_split(n: int, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, dev rows)``: a random ``share`` of ``range(n)`` held out as the dev set
    (Kim 2014: 10 % of the training data), drawn from ``seed``; both sorted."""
    if not 0 < share < 1:
        raise ValueError(f"dev share must be in (0, 1), got {share!r}")
    order = np.random.default_rng([seed, 1408]).permutation(n)
    k = max(1, int(round(share * n)))
    return np.sort(order[k:]), np.sort(order[:k])


def _batches(rng: np.random.Generator, lengths: np.ndarray, batch_size: int, bucket: bool) -> list[np.ndarray]:
    """One epoch's batches of row indices (see :func:`fit_text`'s ``bucket``)."""
    order = rng.permutation(len(lengths))
    if not bucket:
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    window = 20 * batch_size
    batches = []
    for w in range(0, len(order), window):
        rows = order[w:w + window]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches += [rows[s:s + batch_size] for s in range(0, len(rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _optimiser(name: str, params, lr: float, weight_decay: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adadelta":  # Kim (2014) / Zeiler (2012): rho 0.95, eps 1e-6
        return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-6, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'adadelta', got {name!r}")


def fit_text(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int = 5, lr: float = 1e-3,
             batch_size: int = 50, weight_decay: float = 0.0, seed: int = 0, max_norm: float | None = None,
             optimizer: str = "adam", dev_share: float | None = None, patience: int | None = None,
             time_budget: float | None = None, bucket: bool = False, pad_id: int = PAD_ID,
             progress: bool = False) -> nn.Module:
    """Cross-entropy on token ids with Adam (``optimizer="adadelta"``: Adadelta with rho
    0.95, eps 1e-6 as Kim 2014; pass ``lr=1.0``), each batch cut to its longest sentence;
    ``max_norm`` rescales the rows of ``model.classifier.weight`` to l2 norm <= ``max_norm``
    after each step (Kim 2014: 3).

    Early stopping (Kim 2014): ``dev_share`` holds out that share of the training rows
    (:func:`dev_split` with ``seed``); after each epoch the dev accuracy is measured and the
    weights of the best epoch are kept; training stops after ``patience`` epochs without a
    better dev accuracy (never, when None), or once ``time_budget`` seconds have passed (at the
    end of an epoch). ``bucket=True`` batches sentences of similar length (each shuffled
    window of 20 batches sorted by length, cut into batches, the batches shuffled): the same
    epochs with about half the padding, hence about half the convolution work on MR.
    ``model.lumos_fit`` records ``dev_accuracy`` per epoch, ``best_epoch``
    (1-based), ``epochs_run`` and ``seconds``.

    Deterministic for a seed given the initial weights (see :func:`lumos.models.train.fit`);
    returns the model in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X, y = np.asarray(X), np.asarray(y)
    if dev_share is not None:
        train_rows, dev_rows = dev_split(len(X), dev_share, seed)
        X_dev, y_dev = X[dev_rows], y[dev_rows]
        X, y = X[train_rows], y[train_rows]
    lengths = _last_real(X, pad_id)
    Xt, yt = torch.as_tensor(X, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)
    opt = _optimiser(optimizer, model.parameters(), lr, weight_decay)
    record = {"dev_accuracy": [], "best_epoch": None, "epochs_run": 0, "seconds": 0.0}
    best, best_acc, begun = None, -1.0, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        start, total = time.perf_counter(), 0.0
        for idx in _batches(rng, lengths, batch_size, bucket):
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
        record["epochs_run"] = epoch + 1
        note = ""
        if dev_share is not None:
            acc = text_accuracy(model, X_dev, y_dev, pad_id=pad_id)
            record["dev_accuracy"].append(acc)
            if acc > best_acc:
                best_acc, record["best_epoch"] = acc, epoch + 1
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            note = f", dev accuracy {acc:.4f}"
        if progress:
            print(f"    epoch {epoch + 1}/{epochs}: loss {total / len(X):.4f}{note} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
        if patience is not None and record["best_epoch"] is not None and epoch + 1 - record["best_epoch"] >= patience:
            break
        if time_budget is not None and time.perf_counter() - begun >= time_budget:
            break
    if best is not None:
        model.load_state_dict(best)
    record["seconds"] = time.perf_counter() - begun
    model.lumos_fit = record
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
