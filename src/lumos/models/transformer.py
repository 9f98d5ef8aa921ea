"""Small reference transformers: a text encoder and a vision transformer whose every
operation that relevance must see is a module.

``nn.MultiheadAttention`` computes ``softmax(QKᵀ)`` and ``A·V`` functionally, so no hook
can give those operations an LRP rule. :class:`SelfAttention` writes them as modules:
``MatMul`` (the two bilinear products, the ``1/√d`` scale folded into the first),
``nn.Softmax`` and ``nn.Linear`` projections; blocks are pre-norm (``nn.LayerNorm``) with
residual sums written by :class:`lumos.methods.relevance.Add`, and the MLP uses ``nn.GELU``.
AttnLRP (:class:`lumos.methods.transformer.AttnLRP`) attaches its rules to exactly these
modules. The same models serve rollout and Chefer's relevance, which read the softmax
output ``attn.softmax`` of every block.

:class:`TorchTextEncoder` is the same text classifier on ``nn.TransformerEncoder`` (for
attention read from ``nn.MultiheadAttention``).

Token ids arrive as floats when lumos moves a batch to the model's dtype; the text
models round them back to integers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lumos.methods.relevance.layers import Add


class MatMul(nn.Module):
    """``scale · (a @ b)``: a bilinear product that LRP rules can attach to."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(a, b)
        return out * self.scale if self.scale != 1.0 else out

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class SelfAttention(nn.Module):
    """Multi-head self-attention with its products and softmax as modules."""

    def __init__(self, dim: int, heads: int, bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.o = nn.Linear(dim, dim, bias=bias)
        self.qk = MatMul(1.0 / math.sqrt(self.head_dim))
        self.softmax = nn.Softmax(dim=-1)
        self.av = MatMul()

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, s, _ = t.shape
        return t.view(n, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = self.qk(q, k.transpose(-1, -2))
        if mask is not None:  # (N, T) True = a real token
            scores = scores.masked_fill(~mask[:, None, None, :].bool(), float("-inf"))
        attn = self.softmax(scores)
        out = self.av(attn, v).transpose(1, 2).reshape(x.shape)
        return self.o(out)


class Block(nn.Module):
    """Pre-norm encoder block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, bias: bool = True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.ln1 = nn.LayerNorm(dim, bias=bias)
        self.attn = SelfAttention(dim, heads, bias=bias)
        self.add1 = Add()
        self.ln2 = nn.LayerNorm(dim, bias=bias)
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.add2 = Add()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.add1(x, self.attn(self.ln1(x), mask))
        return self.add2(x, self.fc2(self.act(self.fc1(self.ln2(x)))))


class PrefixPositions(nn.Module):
    """Prepend a learned CLS token to ``(N, P, D)`` patch tokens and add learned positions."""

    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cls.expand(p.shape[0], -1, -1), p], dim=1) + self.pos


class _Encoder(nn.Module):
    def _encode(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x[:, 0]))  # the CLS token (position 0)


class TextEncoder(_Encoder):
    """A BERT-like classifier over token ids ``(N, T)``: token + position embeddings (summed
    by ``Add``), ``depth`` pre-norm blocks, LayerNorm and a linear head on position 0 (CLS).
    ``bias=False`` drops every bias (Linear and LayerNorm), the setting in which AttnLRP's
    relevance is conserved up to the softmax's Taylor remainder."""

    def __init__(self, vocab: int = 100, dim: int = 32, depth: int = 2, heads: int = 4, num_classes: int = 3,
                 max_len: int = 64, mlp_ratio: float = 2.0, bias: bool = True):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(max_len, dim)
        self.embed_add = Add()
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, bias=bias)
        self.head = nn.Linear(dim, num_classes, bias=bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.is_floating_point():
            ids = ids.round().long()
        pos = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        x = self.embed_add(self.tokens(ids), self.positions(pos))
        return self._encode(x, mask)


class VisionTransformer(_Encoder):
    """A ViT over images ``(N, C, H, W)``: non-overlapping ``patch`` x ``patch`` patches
    embedded by a strided Conv2d, a CLS token first and learned positions (``PrefixPositions``),
    ``depth`` pre-norm blocks and a linear head on the CLS token."""

    def __init__(self, image_size: int = 16, patch: int = 4, channels: int = 3, dim: int = 32, depth: int = 2,
                 heads: int = 4, num_classes: int = 3, mlp_ratio: float = 2.0, bias: bool = True):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch}")
        self.grid = image_size // patch
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch, bias=bias)
        self.prefix = PrefixPositions(self.grid * self.grid, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, bias=bias)
        self.head = nn.Linear(dim, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed(x).flatten(2).transpose(1, 2)
        return self._encode(self.prefix(p))


class TorchTextEncoder(nn.Module):
    """The text classifier on ``nn.TransformerEncoder`` (batch first, post-norm by default):
    its attention lives in ``nn.MultiheadAttention`` modules, which lumos reads by hooks."""

    def __init__(self, vocab: int = 100, dim: int = 32, depth: int = 2, heads: int = 4, num_classes: int = 3,
                 max_len: int = 64, ff: int = 64, norm_first: bool = False):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():
            ids = ids.round().long()
        pos = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        return self.head(self.encoder(self.tokens(ids) + self.positions(pos))[:, 0])
