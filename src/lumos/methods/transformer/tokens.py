"""Token relevance and how it is laid out on the inputs.

Text inputs are token ids ``(N, T)`` (the ``tabular`` layout): values are ``(N, T)``, one
per token. Image inputs ``(N, C, H, W)`` to a vision transformer give one value per token;
the CLS token is dropped and the patch tokens, when their number is a square, are put on
their grid and each patch's value is spread over its pixels (``(N, 1, H, W)``). The raw
token values are kept in ``extras["tokens"]``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lumos.core.validate import as_array
from lumos.methods.base import Explainer, _LAYOUT_SHAPES, layout_of


def square_grid(n_tokens: int, cls_token: int | None) -> tuple[int, bool] | None:
    """``(side, drop_cls)``: the patch grid of ``n_tokens`` tokens; the first token is
    dropped when ``n_tokens - 1`` is a square and there is a CLS token; None without a grid."""
    if cls_token is not None and n_tokens > 1 and math.isqrt(n_tokens - 1) ** 2 == n_tokens - 1:
        return math.isqrt(n_tokens - 1), True
    if math.isqrt(n_tokens) ** 2 == n_tokens:
        return math.isqrt(n_tokens), False
    return None


def tokens_to_grid(tokens: torch.Tensor, cls_token: int | None = 0) -> torch.Tensor:
    """``(N, T)`` token values -> ``(N, g, g)`` patch values (CLS at ``cls_token`` dropped when
    ``T - 1`` is a square). Raises ``ValueError`` when the tokens form no square grid."""
    grid = square_grid(tokens.shape[1], cls_token)
    if grid is None:
        raise ValueError(f"{tokens.shape[1]} tokens form no square patch grid (with or without a CLS token)")
    side, drop = grid
    if drop:
        keep = [i for i in range(tokens.shape[1]) if i != (cls_token % tokens.shape[1])]
        tokens = tokens[:, keep]
    return tokens.reshape(tokens.shape[0], side, side)


def spread_patches(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, g, g)`` -> ``(N, 1, H, W)``, each patch's value on its pixels (nearest)."""
    return F.interpolate(grid[:, None].to(torch.float64 if grid.dtype == torch.float64 else torch.float32),
                         size=tuple(size), mode="nearest-exact")


class TokenExplainer(Explainer):
    """Base of the transformer explainers: token ids or images in, token values laid out
    on the inputs (see the module docstring)."""

    layouts = ("tabular", "image")
    torchscript = False
    needs_transformer = True
    """Needs a transformer whose attention lumos can read (see :mod:`~lumos.methods.transformer.capture`)."""

    @classmethod
    def applicability(cls, model, layout):
        why = super().applicability(model, layout)
        if why is not None:
            return why
        from lumos.methods.transformer.capture import model_kind

        try:
            kind = model_kind(model)
        except (ValueError, TypeError):
            return "needs a transformer (lumos reference, nn.MultiheadAttention or Hugging Face attention)"
        if getattr(cls, "needs_attention_modules", False) and kind != "lumos":
            return "needs attention written with modules (lumos.models.transformer), not fused attention"
        return None

    def __init__(self, model, *, cls_token: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        if not self.adapter.is_torch:
            raise TypeError(f"{type(self).__name__} reads attention inside the model: it needs a torch.nn.Module")
        if cls_token is not None and (isinstance(cls_token, bool) or not isinstance(cls_token, int)):
            raise TypeError(f"cls_token must be an int position or None, got {cls_token!r}")
        self.cls_token = cls_token

    def params(self):
        return {**super().params(), "cls_token": self.cls_token}

    def _validate(self, inputs) -> np.ndarray:
        x = as_array(inputs)
        layout = layout_of(x.shape)
        if layout not in self.layouts:
            shapes = " or ".join(f"{k} {_LAYOUT_SHAPES[k]}" for k in self.layouts)
            raise ValueError(f"{type(self).__name__} needs token ids (N, T) or images (N, C, H, W): {shapes}; "
                             f"got shape {x.shape}")
        if layout == "image" or not np.issubdtype(x.dtype, np.integer):
            from lumos.core.validate import require_float

            if layout == "image":
                require_float(x, type(self).__name__)
        return x

    def token_rows(self, rel: torch.Tensor) -> torch.Tensor:
        """The relevance of every token for the output token: the CLS row of a ``(n, T, T)``
        map, or the mean over rows when there is no CLS token."""
        if self.cls_token is None:
            return rel.mean(1)
        return rel[:, self.cls_token, :]

    def lay_out(self, tokens: torch.Tensor, x: np.ndarray) -> torch.Tensor:
        """Token values ``(n, T)`` as values for inputs ``x``."""
        if x.ndim == 4:
            return spread_patches(tokens_to_grid(tokens, self.cls_token), x.shape[2:])
        if tokens.shape[1] != x.shape[1]:
            raise ValueError(f"the model attends over {tokens.shape[1]} tokens but the inputs have {x.shape[1]}")
        return tokens
