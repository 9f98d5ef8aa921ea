"""Transformer family.

- AttnLRP against LXT: lumos's AttnLRP (its rules as autograd functions in the private view's
  forwards, one forward + one backward) against LXT's efficient rules (``divide_gradient``,
  ``layer_norm_forward``, ``identity_rule_implicit``: Gradient x Input) applied to the same
  weights (:func:`lumos.methods.transformer.reference.lxt_attnlrp`), at the same rules:
  lumos ``epsilon=0`` (the default) is LXT's efficient variant. One row at ε = 1e-6 (the
  stabilised rules; agreement then reflects ε). Floor: one forward + backward of the plain
  model to the embeddings / pixels. ``python -m benchmarks.bench_transformer --attnlrp``
  runs these rows alone and writes them into the family's results, keeping the other rows.
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


def _floor(model, x):
    """One forward + backward of the plain model to its token embeddings / pixels."""
    from benchmarks.floors import Floor

    def fn():
        with torch.enable_grad():
            if isinstance(model, TextEncoder):
                leaf = model.tokens(x).detach().requires_grad_(True)
                pos = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
                out = model._encode(model.embed_add(leaf, model.positions(pos)))
            else:
                leaf = x.detach().clone().requires_grad_(True)
                out = model(leaf)
            torch.autograd.grad(out[:, 1].sum(), leaf)

    return Floor(fn, "plain forward + backward to the embeddings/pixels, whole batch")


def run_attnlrp(h):
    from lumos.methods.transformer.reference import lxt_attnlrp

    dev = h.device
    torch.manual_seed(0)
    text = h.to(TextEncoder(vocab=1000, dim=64, depth=4, heads=4, max_len=128, num_classes=4).eval())
    ids = np.random.default_rng(0).integers(0, 1000, (16, 128))
    idt = h.to(torch.as_tensor(ids))
    vit = h.to(VisionTransformer(image_size=32, patch=4, dim=64, depth=4, heads=4, num_classes=4).eval())
    img = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)
    imt = h.to(torch.as_tensor(img))
    torch.manual_seed(1)
    big = h.to(TextEncoder(vocab=1000, dim=128, depth=6, heads=4, max_len=128, num_classes=4).eval())
    rows = [("AttnLRP", "text encoder 4x64, 16 x 128 tokens", text, ids, idt, 0.0),
            ("AttnLRP", "ViT 4x64, 16 x 32x32 images (65 tokens)", vit, img, imt, 0.0),
            ("AttnLRP", "text encoder 6x128, 16 x 128 tokens", big, ids, idt, 0.0),
            ("AttnLRP eps=1e-6", "text encoder 4x64, 16 x 128 tokens", text, ids, idt, 1e-6)]
    for name, setting, model, x, xt, eps in rows:
        explainer = AttnLRP(model, epsilon=eps, device=dev)
        rules = ("epsilon=0: LXT's efficient rules exactly" if eps == 0 else
                 f"lumos epsilon={eps:g} (stabilised rules; LXT's efficient variant and lumos's default is epsilon=0)")
        h.compare(FAMILY, name, lambda: explainer.explain(x, target=1),
                  lambda: lxt_attnlrp(model, xt, 1), "lxt (efficient rules on the same model)", setting,
                  max_ratio=1.0 if eps == 0 else None, agreement=_agreement, floor_fn=_floor(model, xt),
                  note=f"float32; {rules}")


def run(h):
    run_attnlrp(h)
    run_rollout(h)


def run_rollout(h):
    dev = h.device
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


def _attnlrp_only(repeats: int = 15, threads: int | None = 1) -> None:
    """Run the AttnLRP rows and replace only them in the family's results (other rows kept)."""
    import datetime
    import json
    import os
    import platform
    from pathlib import Path

    from benchmarks.harness import Harness
    from benchmarks.run import INTRO, _sections, render_section

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if threads is not None:
        torch.set_num_threads(threads)
        machine += f", torch threads {threads}"
    h = Harness(repeats=repeats)
    run_attnlrp(h)
    here = Path(__file__).resolve().parent
    store = here / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {}  # re-read: other runs may have written
    old = results.get(FAMILY, {}).get("rows", [])
    kept = [r for r in old if not str(r.get("name", "")).startswith("AttnLRP")]
    results[FAMILY] = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine,
                       "rows": h.to_dicts() + kept}
    store.write_text(json.dumps(results, indent=1))
    md = here / "RESULTS.md"
    text = md.read_text() if md.exists() else ""  # re-read right before writing; only this section changes
    sections = _sections(text)
    sections[FAMILY] = render_section(FAMILY, results[FAMILY])
    md.write_text("\n".join(["# Benchmark results", "", INTRO, ""] + [sections[f] for f in sorted(sections)]))


if __name__ == "__main__":
    import sys

    if "--attnlrp" in sys.argv:
        _attnlrp_only()
    else:
        from benchmarks.harness import Harness

        run(Harness(repeats=3))
