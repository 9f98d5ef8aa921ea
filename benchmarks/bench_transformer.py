"""Transformer family.

- AttnLRP against LXT: lumos's rule-by-rule AttnLRP (BackwardRules attached to the modules
  of ``lumos.models.TextEncoder`` / ``VisionTransformer``) against LXT's efficient rules
  (``divide_gradient``, ``layer_norm_forward``, ``identity_rule_implicit``: Gradient x Input)
  applied to the same weights (:func:`lumos.methods.transformer.reference.lxt_attnlrp`).
  lumos runs with ε = 1e-9 for the agreement (LXT's efficient variant is the ε → 0 limit).
  LXT's own Hugging Face BERT patch (``lxt.efficient.models.bert``) does not import with
  transformers 5 (it imports ``transformers.modeling_attn_mask_utils``).
- Attention rollout on a 12-layer ``nn.TransformerEncoder`` (d=256, 8 heads) over 512
  tokens: time and peak memory per input; no peer. The heads are fused as each layer runs
  (``attention_hooks(reduce=)``), so one (T, T) float32 map per layer is held instead of
  (heads, T, T): 106 -> 34 MB per input in a fresh process (the rest is one layer's
  per-head softmax inside ``nn.MultiheadAttention``), time unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.methods.transformer import AttentionRollout, AttnLRP
from lumos.models.transformer import TextEncoder, TorchTextEncoder, VisionTransformer

FAMILY = "transformer"


def _agreement(a, b):
    a = np.asarray(a.values if hasattr(a, "values") else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    diff = float(np.abs(a - b).max())
    return diff, diff / max(float(np.abs(b).max()), 1e-30)


def run(h):
    from lumos.methods.transformer.reference import lxt_attnlrp

    dev = h.device
    torch.manual_seed(0)
    text = h.to(TextEncoder(vocab=1000, dim=64, depth=4, heads=4, max_len=128, num_classes=4).eval())
    ids = np.random.default_rng(0).integers(0, 1000, (16, 128))
    idt = h.to(torch.as_tensor(ids))
    vit = h.to(VisionTransformer(image_size=32, patch=4, dim=64, depth=4, heads=4, num_classes=4).eval())
    img = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)
    imt = h.to(torch.as_tensor(img))
    for setting, model, x, xt in (("text encoder 4x64, 16 x 128 tokens", text, ids, idt),
                                  ("ViT 4x64, 16 x 32x32 images (65 tokens)", vit, img, imt)):
        h.compare(FAMILY, "AttnLRP", lambda: AttnLRP(model, epsilon=1e-9, device=dev).explain(x, target=1),
                  lambda: lxt_attnlrp(model, xt, 1), "lxt (efficient rules on the same model)", setting,
                  max_ratio=2.0, agreement=_agreement,
                  note="float32; lumos epsilon=1e-9 (LXT's efficient variant is the epsilon -> 0 limit)")

    # rollout: 12 layers, 512 tokens
    torch.manual_seed(0)
    big = h.to(TorchTextEncoder(vocab=1000, dim=256, depth=12, heads=8, max_len=512, ff=512).eval())
    n = 2 if h.quick else 4
    x512 = np.random.default_rng(1).integers(0, 1000, (n, 512))
    explainer = AttentionRollout(big, device=dev)
    explainer.explain(x512[:1])  # warm-up
    from benchmarks.harness import _peak_memory

    times = [h.time_once(lambda: explainer.explain(x512)) for _ in range(h.repeats)]
    mem, _ = _peak_memory(lambda: explainer.explain(x512), dev)
    with torch.no_grad():
        fwd = [h.time_once(lambda: big(h.to(torch.as_tensor(x512)))) for _ in range(h.repeats)]
    per = float(np.median(times)) / n
    h.record(FAMILY, "attention_rollout", per, "12-layer nn.TransformerEncoder d=256, 8 heads, 512 tokens (per input)",
             note=f"peak memory {mem / n:.0f} MB per input ({n} inputs per call; heads fused per layer as it "
                  f"runs); the plain forward pass "
                  f"(fast path on, no weights) takes {float(np.median(fwd)) / n:.3f} s per input",
             mem_mb=mem / n, floor_s=float(np.median(fwd)) / n, floor_label="forward pass without attention weights")


if __name__ == "__main__":
    from benchmarks.harness import Harness

    run(Harness(repeats=3))
