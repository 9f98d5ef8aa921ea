"""captum 0.9's Gradient x Input on the token embeddings of two small text transformers: the
reference that ``tests/test_text_gxi_transformer.py`` checks lumos against (live when captum
is installed, from the frozen ``tests/data/gxi_transformer_captum.json`` otherwise).
Regenerate with ``python -m benchmarks.gxi_transformer_reference``.

captum's form is ``LayerGradientXActivation(model, model.<token embedding>)`` summed over the
embedding axis: the gradient of the target logit with respect to the output of the token
``nn.Embedding`` times that output, which is what lumos's ``gradient_x_input`` computes for
token-id inputs. The networks, in float64 with weights drawn from numpy's seeded generator (the
reference does not depend on torch's initialisation):

- ``prenorm``: :class:`lumos.models.transformer.TextEncoder`, one pre-norm block (token +
  position embeddings, LayerNorm before attention and MLP, final LayerNorm, head on ``<cls>``);
- ``postnorm``: :class:`lumos.models.text.TransformerText` (the workshop's model:
  ``nn.TransformerEncoder``, post-norm, read at position 0), one layer, dropout 0.

The ids hold no pad (id 0) and no ``<mask>``, so both libraries explain every position.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "gxi_transformer_captum.json"
VOCAB, T, N, TARGET = 20, 7, 4, 1


def _fill(model: nn.Module, seed: int) -> nn.Module:
    """Weights ~ N(0, 1/fan_in), LayerNorm gains 1 + N(0, 0.1^2), from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):  # the LayerNorm gains
                p.copy_(torch.from_numpy(1.0 + 0.1 * rng.normal(size=tuple(p.shape))))
                continue
            fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else p.shape[0]
            p.copy_(torch.from_numpy(rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=tuple(p.shape))))
    return model.eval()


def prenorm(depth: int = 1) -> nn.Module:
    from lumos.models.transformer import TextEncoder

    model = TextEncoder(vocab=VOCAB, dim=8, depth=depth, heads=2, num_classes=2, max_len=T).double()
    return _fill(model, 0)


def postnorm() -> nn.Module:
    from lumos.models.text import TransformerText

    model = TransformerText(VOCAB, dim=8, depth=1, heads=2, ff=16, dropout=0.0, max_len=T).double()
    return _fill(model, 1)


def token_embedding(model: nn.Module) -> nn.Module:
    return model.tokens if hasattr(model, "tokens") else model.embedding


def ids() -> np.ndarray:
    """Token ids (N, T) in 3..VOCAB-1 (no pad, no unk/mask)."""
    return np.random.default_rng(2).integers(3, VOCAB, size=(N, T)).astype(np.int64)


def captum_gxi(model: nn.Module, x: np.ndarray) -> np.ndarray:
    from captum.attr import LayerGradientXActivation

    attr = LayerGradientXActivation(model, token_embedding(model)).attribute(torch.as_tensor(x), target=TARGET)
    return attr.sum(-1).detach().numpy()


def main() -> None:
    import captum

    x = ids()
    out = {"captum": captum.__version__, "target": TARGET, "ids": x.tolist(),
           "prenorm": captum_gxi(prenorm(), x).tolist(), "postnorm": captum_gxi(postnorm(), x).tolist()}
    REFERENCE.write_text(json.dumps(out))
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
