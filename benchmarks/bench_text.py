"""Text family: Integrated Gradients on the token embeddings against captum's
``LayerIntegratedGradients`` (issue #17 item 5).

Same model, same token ids, same baseline (the embedding of token 0 at every position),
50 Gauss–Legendre steps, target 1. lumos: ``lumos.explain(model, ids, "ig")`` on the token
ids (the text layout hooks the ``nn.Embedding`` of a private view; values summed over the
embedding axis). captum: ``LayerIntegratedGradients(model, model.tokens)`` on the same ids
with ``baselines`` = zeros, attributions summed over the embedding axis.

Settings: ``lumos.models.TextEncoder`` (4 pre-norm blocks, d = 64, 4 heads; 16 sentences
x 64 tokens) and a convolutional sentence classifier (embedding 64, Conv1d 64 -> 100 width 3,
max over time; 64 sentences x 40 tokens).

Floor (benchmarks/floors.py): the N x 50 interpolated embedding rows through one forward and
one backward pass to the embedding output (the model read from its embeddings, as lumos's
:class:`~lumos.core.text.EmbeddingSpace` does), at the fastest chunk size.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import lumos
from benchmarks import floors
from lumos.core.text import EmbeddingSpace
from lumos.models.transformer import TextEncoder

FAMILY = "text"
FLOOR_TARGET = 1.15  # as the gradient family (issue #15 item 6)


class ConvText(nn.Module):
    def __init__(self, vocab=1000, dim=64, maps=100):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.conv = nn.Conv1d(dim, maps, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(maps, 2)

    def forward(self, ids):
        ids = ids.round().long() if ids.is_floating_point() else ids
        return self.fc(self.act(self.conv(self.tokens(ids).transpose(1, 2))).amax(2))


def setups(quick: bool):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 8 if quick else 16
    yield (f"TextEncoder 4x64, {n} x 64 tokens",
           TextEncoder(vocab=1000, dim=64, depth=4, heads=4, max_len=64, num_classes=2).eval(),
           rng.integers(1, 1000, (n, 64)))
    n = 32 if quick else 64
    yield f"Conv1d text classifier, {n} x 40 tokens", ConvText().eval(), rng.integers(1, 1000, (n, 40))


def _agreement(a, b):
    a = np.asarray(a.values, dtype=np.float64)
    b = b.detach().cpu().double().sum(-1).numpy()
    diff = float(np.abs(a - b).max())
    return diff, diff / max(float(np.abs(b).max()), 1e-30)


def run(h):
    from captum.attr import LayerIntegratedGradients

    dev = h.device
    for setting, model, ids in setups(h.quick):
        model = h.to(model)
        idt = h.to(torch.as_tensor(ids))
        base = torch.zeros_like(idt)
        target = torch.ones(len(ids), dtype=torch.long, device=idt.device)
        with torch.no_grad():
            emb = model.tokens(idt)
        space = EmbeddingSpace(model, "tokens", idt[0])  # rows read from their embeddings
        ig_floor = floors.expansion_floor(space, emb, target, 50, "ig")
        lig = LayerIntegratedGradients(model, model.tokens)
        h.compare(FAMILY, "IG on embeddings (50 GL steps)",
                  lambda: lumos.explain(model, ids, "ig", target=1, n_steps=50, baseline_token=0, device=dev),
                  lambda: lig.attribute(idt, baselines=base, target=target, n_steps=50, method="gausslegendre"),
                  "captum LayerIntegratedGradients", setting, max_ratio=1.0, agreement=_agreement,
                  floor_fn=ig_floor, floor_target=FLOOR_TARGET,
                  note="float32; baseline = embedding of token 0 at every position; values summed over the "
                       "embedding axis")


if __name__ == "__main__":
    from benchmarks.harness import Harness

    run(Harness(repeats=3))
