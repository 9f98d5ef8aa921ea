"""LXT's AttnLRP on the lumos reference transformers, for tests and benchmarks.

LXT (``lxt``, Achtibat et al.) implements AttnLRP for Hugging Face and torchvision models by
patching their forward functions; its efficient variant computes relevance as
Gradient × Input with the rules built into the gradient: ``divide_gradient`` on the
query/key (1/4: two uniform rules in a row) and value (1/2), ``layer_norm_forward`` (the
standard deviation detached) and ``identity_rule_implicit`` on the activation. Here the
same LXT functions are applied to the modules of :class:`lumos.models.TextEncoder` /
:class:`lumos.models.VisionTransformer`: a forward pass written with LXT's rules over the
very weights of the lumos model. It is the ε → 0 limit of lumos's rule-by-rule AttnLRP.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lumos.models.transformer import TextEncoder, VisionTransformer


def lxt_efficient():
    """LXT's ``lxt.efficient.rules`` and ``lxt.efficient.patches`` modules.

    ``import lxt.efficient`` imports LXT's copies of Hugging Face model files (``models/bert.py``
    imports ``transformers.modeling_attn_mask_utils``, gone in transformers 5), so with a recent
    transformers the package does not import; its two rule files, which need only torch, are
    then loaded by path under a package entry without its ``__init__``."""
    try:
        from lxt.efficient import patches, rules
        return rules, patches
    except ImportError:
        pass
    import importlib.util
    import os
    import sys
    import types

    import lxt

    folder = os.path.join(os.path.dirname(lxt.__file__), "efficient")
    pkg = sys.modules.get("lxt.efficient")
    if pkg is None or not hasattr(pkg, "__path__"):
        pkg = types.ModuleType("lxt.efficient")
        pkg.__path__ = [folder]
        sys.modules["lxt.efficient"] = pkg
    out = []
    for name in ("rules", "patches"):
        full = f"lxt.efficient.{name}"
        if full not in sys.modules:
            spec = importlib.util.spec_from_file_location(full, os.path.join(folder, f"{name}.py"))
            mod = importlib.util.module_from_spec(spec)
            sys.modules[full] = mod
            spec.loader.exec_module(mod)
        out.append(sys.modules[full])
    return tuple(out)


def lxt_attnlrp(model, x: torch.Tensor, target) -> torch.Tensor:
    """LXT relevance of token ids ``(N, T)`` (summed over the embedding axis) or images
    ``(N, C, H, W)`` (per pixel) for the logits ``target`` (int or (N,) ints)."""
    rules, patches = lxt_efficient()
    layer_norm_forward = patches.layer_norm_forward
    divide_gradient, identity_rule_implicit = rules.divide_gradient, rules.identity_rule_implicit

    def split(a, t):
        n, s, _ = t.shape
        return t.view(n, s, a.heads, a.head_dim).transpose(1, 2)

    def block(b, h):
        a = b.attn
        z = layer_norm_forward(b.ln1, h)
        q = divide_gradient(split(a, a.q(z)), 4)
        k = divide_gradient(split(a, a.k(z)), 4)
        v = divide_gradient(split(a, a.v(z)), 2)
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * a.qk.scale, dim=-1)
        h = h + a.o(torch.matmul(p, v).transpose(1, 2).reshape(h.shape))
        u = identity_rule_implicit(F.gelu, b.fc1(layer_norm_forward(b.ln2, h)))
        return h + b.fc2(u)

    with torch.enable_grad():
        if isinstance(model, TextEncoder):
            ids = x.round().long() if x.is_floating_point() else x
            leaf = model.tokens(ids).detach().requires_grad_(True)
            pos = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
            h = leaf + model.positions(pos)
        elif isinstance(model, VisionTransformer):
            leaf = x.detach().clone().requires_grad_(True)
            h = model.prefix(model.patch_embed(leaf).flatten(2).transpose(1, 2))
        else:
            raise TypeError(f"lxt_attnlrp runs on lumos TextEncoder / VisionTransformer, not {type(model).__name__}")
        for b in model.blocks:
            h = block(b, h)
        logits = model.head(layer_norm_forward(model.norm, h)[:, 0])
        t = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
        sel = logits.gather(1, t.view(-1, 1)).sum()
        (g,) = torch.autograd.grad(sel, leaf)
    rel = (leaf * g).detach()
    return rel.sum(-1) if isinstance(model, TextEncoder) else rel
