"""AttnLRP (Achtibat et al. 2024, "AttnLRP: Attention-Aware Layer-Wise Relevance
Propagation for Transformers", ICML, arXiv:2402.05602) on lumos's LRP machinery: each
rule is a :class:`~lumos.core.hooks.BackwardRule` of a module type (what
:func:`lumos.core.hooks.attach_rules` would attach), relevance starts at the target logit.

Rules (the paper's section 3; LXT's ``lxt.explicit.functional`` implements the same):

- ``nn.Linear`` / ``nn.Conv2d``: LRP-ε (eq. 8), ``R_j = Σ_k a_j w_jk / stab(z_k) R_k``;
- ``nn.Softmax``: the first-order Taylor (DTD) rule at the input (Prop. 3.1),
  ``R_i = x_i (R_i^out − s_i Σ_j R_j^out)`` (masked ``−inf`` scores count as 0);
- the bilinear products ``QKᵀ`` and ``A·V`` (:class:`lumos.models.transformer.MatMul`):
  the uniform rule (Prop. 3.3), each factor receives half of the ε-rule relevance with the
  other factor held constant, ``R_a = ½ a ⊙ (R ⊘ stab(ab)) bᵀ``, likewise for ``b``;
- ``nn.LayerNorm``: the identity rule on the division by the standard deviation
  (Prop. 3.4: the normalisation is treated as a constant), LRP-ε on what stays linear,
  the centring and the affine map ``(x − μ)/σ · γ + β``;
- elementwise activations (GELU...) pass relevance (identity rule, eq. 9); residual sums
  (:class:`lumos.methods.relevance.Add`) split it in proportion to the summands.

Why modules: ``nn.MultiheadAttention`` computes softmax and both products functionally,
where no rule can be given to them; LXT patches functions (``monkey_patch``) instead. lumos
gives rules to modules, so AttnLRP explains models whose attention is written with modules
(``lumos.models.TextEncoder``, ``VisionTransformer``) and refuses the others by name.
``stab(z) = z + ε·sign(z)`` as everywhere in lumos (LXT's explicit functions add +ε whatever
the sign); ``epsilon=0`` is LXT's efficient Gradient×Input variant exactly.

How it runs: the rules above are the definition (and what the tests compare with). The
explainer computes them as LXT does, in the Gradient×Input form: relevance at every tensor
is ``a ⊙ g``, each rule becomes the autograd backward of its module (see the comment above
:func:`_eps_scaled`), and the modules of the call's private view get forwards that apply
these functions (:func:`patch_rules`; lumos ``SelfAttention`` gets one fused function for
``softmax(QKᵀ)V``). One forward and one backward pass, no per-module hooks; ε > 0 costs a
few elementwise passes per layer over ε = 0. Rules are assigned by layer type
(:func:`static_rules`); a layer without a rule raises when it runs.

Conservation: every rule but the softmax's is conservative up to its bias terms and
stabiliser; the softmax's Taylor rule is not (the paper's Prop. 3.1 keeps a non-zero
bias term of the expansion at the input). Hence, with every bias zero, ``Σ R_input =
f_c(x) − Σ_layers absorbed_softmax`` up to O(ε), and the absorbed part is reported per
input in ``extras["softmax_absorbed"]``; ``delta = Σ R − f_c(x)``.

Text models (token ids ``(N, T)``): relevance is read at the output of the token
embedding (the first ``nn.Embedding`` that runs) and summed over the embedding axis;
values are ``(N, T)``. Images: relevance at the pixels, ``(N, C, H, W)``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.hooks import BackwardRule, LayerCall
from lumos.core.registry import register
from lumos.methods.base import Chunk, State, record_completeness
from lumos.methods.relevance.canonizers import BATCHNORMS
from lumos.methods.relevance.composites import ACTIVATIONS, Composite, _computes_weights
from lumos.methods.relevance.rules import (WEIGHTED, Epsilon, Gradient, Norm, Pass, _check_stabiliser, layer_forward,
                                           layer_vjp, stabilise)
from lumos.methods.transformer.capture import to_model_input
from lumos.methods.transformer.tokens import TokenExplainer
from lumos.models.transformer import MatMul, PrefixPositions


class UniformMatMul(BackwardRule):
    """Uniform rule for ``out = scale · (a @ b)``: each factor gets half the ε-relevance."""

    supports = (MatMul,)

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = _check_stabiliser(epsilon, "epsilon")

    def backward(self, module, inputs, output, grad_output):
        a, b = inputs
        s = grad_output / stabilise(2 * output, self.epsilon) * module.scale
        return a * torch.matmul(s, b.transpose(-1, -2)), b * torch.matmul(a.transpose(-1, -2), s)


class SoftmaxTaylor(BackwardRule):
    """``R_i = x_i (R_i − s_i Σ_j R_j)`` along the softmax axis; ``absorbed`` collects, per
    backward pass, ``Σ R_out − Σ R_in`` per row of the batch."""

    supports = (nn.Softmax,)

    def __init__(self):
        self.absorbed: list[torch.Tensor] = []

    def backward(self, module, inputs, output, grad_output):
        (x,) = inputs
        x = torch.where(torch.isneginf(x), torch.zeros_like(x), x)
        dim = module.dim if module.dim is not None else -1
        rel = x * (grad_output - output * grad_output.sum(dim, keepdim=True))
        self.absorbed.append((grad_output - rel).flatten(1).sum(1).detach())
        return (rel,)


class LayerNormIdentity(BackwardRule):
    """LayerNorm with its standard deviation held constant (identity rule on the division)
    and LRP-ε on the linear rest ``(x − μ)/σ · γ + β``."""

    supports = (nn.LayerNorm,)

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = _check_stabiliser(epsilon, "epsilon")

    def backward(self, module, inputs, output, grad_output):
        (x,) = inputs
        dims = tuple(range(-len(module.normalized_shape), 0))
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            mean = xg.mean(dims, keepdim=True)
            std = (xg.detach().var(dims, keepdim=True, unbiased=False) + module.eps).sqrt()
            y = (xg - mean) / std
            if module.weight is not None:
                y = y * module.weight
            if module.bias is not None:
                y = y + module.bias
            (g,) = torch.autograd.grad(y, xg, grad_output / stabilise(output, self.epsilon))
        return (x * g,)


class Share(BackwardRule):
    """Relevance in proportion to the input's share of the output of a module adding
    constants to it (CLS token and learned positions): ``R_in = x ⊙ Jᵀ(R ⊘ stab(out))``."""

    supports = (PrefixPositions,)

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = _check_stabiliser(epsilon, "epsilon")

    def backward(self, module, inputs, output, grad_output):
        with torch.enable_grad():
            xs = [t.detach().requires_grad_(True) for t in inputs]
            grads = torch.autograd.grad(module.forward(*xs), xs, grad_output / stabilise(output, self.epsilon))
        return tuple(x * g for x, g in zip(inputs, grads))


class EmbeddingInput(BackwardRule):
    """Token ids carry no relevance: the embedding's output is where it is read."""

    supports = (nn.Embedding,)

    def backward(self, module, inputs, output, grad_output):  # pragma: no cover - ids never require grad
        return (None,) * len(inputs)


def attnlrp_composite(epsilon: float = 1e-6) -> tuple[Composite, SoftmaxTaylor]:
    """The AttnLRP composite (and its softmax rule, which records what it absorbs)."""
    softmax = SoftmaxTaylor()
    composite = Composite([((nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d), Epsilon(epsilon)),
                           (MatMul, UniformMatMul(epsilon)), (nn.Softmax, softmax),
                           (nn.LayerNorm, LayerNormIdentity(epsilon)), (PrefixPositions, Share(epsilon)),
                           (nn.Embedding, EmbeddingInput())], norm_stabilizer=epsilon, name="AttnLRP")
    return composite, softmax


class _EmbeddingStart:
    """Forward hook on every ``nn.Embedding``: the first to return ``(N, T, D)`` for ids ``(N, T)``
    (``expected``) starts the graph there (its output, detached, is where relevance is read)."""

    def __init__(self):
        self.expected: tuple | None = None
        self.output: torch.Tensor | None = None

    def __call__(self, module, inputs, output):
        if self.output is None and isinstance(output, torch.Tensor) and tuple(output.shape[:2]) == self.expected:
            self.output = output.detach().requires_grad_(True)
            return self.output
        return None


def static_rules(model: nn.Module, composite: Composite, stack) -> dict:
    """The composite's rule of every layer of ``model`` by type, without a traced forward pass.
    A layer no rule applies to raises the composite's error when it runs (a pre-hook on it,
    removed by ``stack``), so layers that never run are no error, as with a traced pass."""
    if composite.first_map or composite.name_map:
        raise ValueError("static_rules maps layers by type only (no first_map / name_map)")
    rules: dict = {}
    for name, module in model.named_modules():
        if _computes_weights(name):
            continue
        if any(True for _ in module.children()) and not any(True for _ in module.parameters(recurse=False)):
            continue  # a container: its children carry the rules
        rule = None if isinstance(module, BATCHNORMS) else composite._rule(name, module, False)
        if rule is None:  # the composite's own error, raised if the layer runs
            try:
                composite.resolve([LayerCall(name, module, (), None)])
            except ValueError as err:
                stack.callback(module.register_forward_pre_hook(_refusal(err)).remove)
            continue
        composite._check(rule, name, module)
        if not isinstance(rule, Gradient):
            rules[module] = rule
    return rules


def _refusal(err: ValueError):
    def hook(module, args):
        raise ValueError(str(err))

    return hook


# -- the rules in the Gradient x Input form ---------------------------------------------------
# Every rule above passes relevance that is, at each tensor a, the product R_a = a ⊙ g_a of the
# tensor and a "gradient" g_a (by induction from the output, where R = f_c = z_c · 1). Written on
# g, each rule is autograd's own backward with one change (LXT's efficient rules are the ε = 0
# case), so AttnLRP is one forward and one backward pass through these functions, patched into
# the private view's modules (no hooks, no relevance recomputed per module):
#
# - ε-type rules, R_in = x ⊙ Jᵀ(R_out ⊘ stab(c·out)) (LRP-ε on Linear/Conv, c = 1; Norm on Add and
#   average pooling; Share; the uniform rule, c = 2): g_in = Jᵀ(g ⊙ out ⊘ stab(c·out)), i.e. the
#   gradient with g scaled by |out| / (c|out| + ε) (exactly 1/c for ε = 0);
# - LayerNorm with σ constant: g_x = (γ ⊙ g') / σ − mean((γ ⊙ g') / σ) with g' scaled as above;
# - the softmax's Taylor rule: R_in = x ⊙ (R − s Σ R) = x ⊙ (softmax's own gradient of g): the
#   plain gradient; only what it absorbs, Σ s ⊙ g − Σ x ⊙ g_x per row, is recorded;
# - the identity rule on an activation y = f(x): x ⊙ g_x = y ⊙ g_y, g_x = g_y ⊙ y / x (0 where x = 0).
#
# ε = 0 takes 0/0 (an output that is exactly 0) as the gradient, as LXT does; for ε > 0 every
# value equals the rule-by-rule BackwardRules above to rounding.

def _eps_scaled(g: torch.Tensor, out: torch.Tensor, epsilon: float, c: float = 1.0) -> torch.Tensor:
    """``c · g ⊙ out ⊘ stab(c·out)`` = ``g ⊙ |out| / (|out| + ε/c)``, a new tensor (ε > 0)."""
    e = epsilon / c
    return torch.addcdiv(g, g, out.abs().add_(e), value=-e)


class _RatioGrad(torch.autograd.Function):
    """Identity forward; backward ``g ⊙ out ⊘ stab(out)`` (the ε-type rules of parameter-free sums)."""

    @staticmethod
    def forward(ctx, out, epsilon):
        ctx.epsilon = epsilon
        ctx.save_for_backward(out)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return _eps_scaled(g, out, ctx.epsilon), None


class _EpsilonLayer(torch.autograd.Function):
    """A Linear/ConvNd layer whose input gradient is LRP-ε's (weights get none)."""

    @staticmethod
    def forward(ctx, x, module, weight, bias, epsilon):
        out = layer_forward(module, x, weight, bias)
        ctx.module, ctx.epsilon = module, epsilon
        ctx.save_for_backward(x, weight, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight, out = ctx.saved_tensors
        return layer_vjp(ctx.module, x, weight, _eps_scaled(g, out, ctx.epsilon)), None, None, None, None


class _UniformMatMul(torch.autograd.Function):
    """``scale · (a @ b)`` (equal batch axes) whose backward is the uniform rule: each factor gets
    the gradient of half the ε-relevance; constants are folded into the smaller tensors."""

    @staticmethod
    def forward(ctx, a, b, scale, epsilon):
        out = torch.matmul(a, b)
        if scale != 1.0:
            out.mul_(scale)
        ctx.scale, ctx.epsilon = scale, epsilon
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        u = _eps_scaled(g, out, ctx.epsilon, 2.0) if ctx.epsilon > 0 else g
        factor = ctx.scale / 2
        small = out.numel() <= a.numel() + b.numel()
        if small:
            u = u.mul_(factor) if ctx.epsilon > 0 else u * factor
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = torch.matmul(u, b.transpose(-1, -2))
            if not small:
                ga.mul_(factor)
        if ctx.needs_input_grad[1]:
            gb = torch.matmul(a.transpose(-1, -2), u)
            if not small:
                gb.mul_(factor)
        return ga, gb, None, None


class _HalfGrad(torch.autograd.Function):
    """Identity forward; backward ``g / 2`` (the uniform rule's half, ε = 0)."""

    @staticmethod
    def forward(ctx, out):
        return out.view_as(out)

    @staticmethod
    def backward(ctx, g):
        return g * 0.5


def _row_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Σ x ⊙ y`` per row of the batch (large tensors: a BLAS dot per row, no product allocated)."""
    n = x.shape[0]
    x, y = x.reshape(n, -1), y.reshape(n, -1)
    if x.numel() <= 1 << 18:
        return torch.linalg.vecdot(x, y)
    return torch.stack([torch.dot(x[i], y[i]) for i in range(n)])


class _SoftmaxTaylor(torch.autograd.Function):
    """Softmax whose backward is its own gradient (the Taylor rule in this form) and records, per
    row, the relevance the rule absorbs: ``Σ s ⊙ g − Σ x ⊙ g_x`` (masked −inf scores count as 0)."""

    @staticmethod
    def forward(ctx, x, dim, sink):
        s = torch.softmax(x, dim)
        ctx.dim, ctx.sink = dim, sink
        ctx.save_for_backward(x, s)
        return s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        gx = torch._softmax_backward_data(g, s, ctx.dim, x.dtype)
        r_in = _row_dot(x, gx)
        if not bool(torch.isfinite(r_in).all()):  # -inf (masked) scores times a zero gradient
            r_in = _row_dot(torch.where(torch.isneginf(x), torch.zeros_like(x), x), gx)
        ctx.sink.append((_row_dot(s, g) - r_in).detach())
        return gx, None, None


class _LayerNormIdentity(torch.autograd.Function):
    """LayerNorm whose input gradient holds the standard deviation constant (ε-scaled)."""

    @staticmethod
    def forward(ctx, x, shape, weight, bias, ln_eps, epsilon):
        out, _, rstd = torch.native_layer_norm(x, shape, weight, bias, ln_eps)
        ctx.dims, ctx.epsilon = tuple(range(-len(shape), 0)), epsilon
        ctx.save_for_backward(weight, rstd, out if epsilon > 0 else None)
        return out

    @staticmethod
    def backward(ctx, g):
        weight, rstd, out = ctx.saved_tensors
        u = _eps_scaled(g, out, ctx.epsilon) if ctx.epsilon > 0 else g
        if weight is not None:
            u = u.mul_(weight) if ctx.epsilon > 0 else u * weight
        elif ctx.epsilon == 0:
            u = u.clone()
        u.sub_(u.mean(ctx.dims, keepdim=True)).mul_(rstd)
        return u, None, None, None, None, None


class _IdentityRule(torch.autograd.Function):
    """``y = f(x)`` passing relevance unchanged: ``g_x = g_y ⊙ y / x`` (0 where x = 0)."""

    @staticmethod
    def forward(ctx, x, fn):
        out = fn(x)
        ctx.save_for_backward(torch.nan_to_num_(out / x, nan=0.0))
        return out

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        return g * ratio, None


class _Attention(torch.autograd.Function):
    """The core of :class:`lumos.models.transformer.SelfAttention`, ``softmax(s·QKᵀ [masked]) V``,
    with the rules of its three modules (uniform on both products, Taylor on the softmax) in one
    backward. What the softmax absorbs, ``Σ R_A − Σ R_S``, is summed on the small tensors:
    ``Σ R_A = ½ Σ O ⊙ u_O`` (u_O the ε-scaled gradient of ``O = A V``) and, for ε = 0,
    ``Σ R_S = 2 Σ Q ⊙ g_Q`` (for ε > 0 from ``S`` itself)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale, av_scale, epsilon, sink):
        s = torch.matmul(q, k.transpose(-1, -2))
        if scale != 1.0:
            s.mul_(scale)
        scores = s
        if mask is not None:  # (N, T) True = a real token, as SelfAttention.forward
            keep = ~mask[:, None, None, :].bool()
            scores = s.masked_fill(keep, float("-inf")) if epsilon > 0 else s.masked_fill_(keep, float("-inf"))
        a = torch.softmax(scores, -1)
        out = torch.matmul(a, v)
        if av_scale != 1.0:
            out.mul_(av_scale)
        ctx.scale, ctx.av_scale, ctx.epsilon, ctx.sink = scale, av_scale, epsilon, sink
        ctx.save_for_backward(q, k, v, a, out, s if epsilon > 0 else None)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, a, out, s = ctx.saved_tensors
        eps = ctx.epsilon
        u = _eps_scaled(g, out, eps, 2.0) if eps > 0 else g
        h = u * (ctx.av_scale / 2)
        r_a = _row_dot(out, u) * 0.5  # Σ R_A = Σ A ⊙ (h Vᵀ) = Σ (A V) ⊙ h
        gv = torch.matmul(a.transpose(-1, -2), h)
        gs = torch._softmax_backward_data(torch.matmul(h, v.transpose(-1, -2)), a, -1, a.dtype)
        half = ctx.scale / 2
        if eps > 0:  # s (the scores before masking) is this function's own: scaled in place
            r_s = _row_dot(s, gs)
            e = eps / 2
            gs.addcdiv_(gs, s.abs_().add_(e), value=-e)
        gq = torch.matmul(gs, k).mul_(half)
        gk = torch.matmul(gs.transpose(-1, -2), q).mul_(half)
        if eps == 0:
            r_s = 2 * _row_dot(q, gq)  # Σ_ij S_ij gS_ij = s Σ_i q_i · (gS K)_i
        ctx.sink.append((r_a - r_s).detach())
        return gq, gk, gv, None, None, None, None, None


def _attention_forward(module, rules: dict, sink: list):
    """SelfAttention's forward with :class:`_Attention` for its core, when its three inner modules
    carry the standard rules, have no hooks of their own and the forward is SelfAttention's."""
    from lumos.models.transformer import SelfAttention

    if not isinstance(module, SelfAttention) or type(module).forward is not SelfAttention.forward:
        return None
    inner = (module.qk, module.softmax, module.av)
    if not (isinstance(rules.get(module.qk), UniformMatMul) and isinstance(rules.get(module.av), UniformMatMul)
            and isinstance(rules.get(module.softmax), SoftmaxTaylor) and type(module.softmax) is nn.Softmax
            and module.softmax.dim in (-1, 3) and type(module.qk) is MatMul and type(module.av) is MatMul):
        return None
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in inner):
        return None
    eps = rules[module.qk].epsilon
    if rules[module.av].epsilon != eps:
        return None

    def attention(x, mask=None):
        q, k, v = module._split(module.q(x)), module._split(module.k(x)), module._split(module.v(x))
        out = _Attention.apply(q, k, v, mask, module.qk.scale, module.av.scale, eps, sink)
        return module.o(out.transpose(1, 2).reshape(x.shape))

    return attention


def _fast_forward(module: nn.Module, rule: BackwardRule, sink: list):
    """The forward of ``module`` carrying ``rule`` in the Gradient x Input form, or None when
    autograd's own backward already is the rule (ε = 0 sums and layers, dropout, flatten...)."""
    orig = module.forward
    if isinstance(rule, Epsilon) and isinstance(module, WEIGHTED):
        eps = rule.epsilon
        if not rule.bias and module.bias is not None:
            raise ValueError("AttnLRP's ε rule keeps the bias in the denominator (Epsilon(bias=True))")
        if eps == 0:
            return None
        return lambda x: _EpsilonLayer.apply(x, module, module.weight, module.bias, eps)
    if isinstance(rule, UniformMatMul) and isinstance(module, MatMul):
        eps, scale = rule.epsilon, module.scale

        def matmul(a, b):
            if a.ndim >= 2 and a.ndim == b.ndim and a.shape[:-2] == b.shape[:-2]:
                return _UniformMatMul.apply(a, b, scale, eps)
            out = orig(a, b)  # broadcasting: autograd's backward of g ⊙ out ⊘ stab(2·out)
            out = _RatioGrad.apply(out, eps / 2) if eps > 0 else out  # g |out| / (|out| + ε/2)
            return _HalfGrad.apply(out)

        return matmul
    if isinstance(rule, SoftmaxTaylor) and isinstance(module, nn.Softmax):
        def softmax(x):
            dim = module.dim if module.dim is not None else F._get_softmax_dim("softmax", x.ndim, 3)
            return _SoftmaxTaylor.apply(x, dim, sink)

        return softmax
    if isinstance(rule, LayerNormIdentity) and isinstance(module, nn.LayerNorm):
        eps = rule.epsilon
        return lambda x: _LayerNormIdentity.apply(x, module.normalized_shape, module.weight, module.bias,
                                                  module.eps, eps)
    if isinstance(rule, (Share, Norm)):
        eps = rule.epsilon if isinstance(rule, Share) else rule.stabilizer
        if eps == 0:
            return None
        return lambda *xs: _RatioGrad.apply(orig(*xs), eps)
    if isinstance(rule, Pass):
        if isinstance(module, ACTIVATIONS):
            return lambda x: _IdentityRule.apply(x, orig)
        return None  # dropout (eval), flatten, identity: the gradient is the rule
    if isinstance(rule, EmbeddingInput):
        return None
    raise ValueError(f"AttnLRP has no Gradient x Input form of {rule!r} on {type(module).__name__}")


def patch_rules(model: nn.Module, rules: dict, stack, sink: list) -> None:
    """Give every module of ``rules`` (``{module: BackwardRule}``, modules of ``model``, a private
    view) the forward of its rule's Gradient x Input form, and lumos ``SelfAttention`` blocks the
    fused core; ``stack`` restores the modules' own forwards. ``sink`` collects, per backward pass
    and softmax, the relevance its Taylor rule absorbs (per row)."""
    for module in model.modules():
        attention = _attention_forward(module, rules, sink)
        if attention is not None:
            module.forward = attention
            stack.callback(module.__dict__.pop, "forward", None)
    for module, rule in rules.items():
        forward = _fast_forward(module, rule, sink)
        if forward is not None:
            module.forward = forward
            stack.callback(module.__dict__.pop, "forward", None)


@register("attnlrp", "attn_lrp")
class AttnLRP(TokenExplainer):
    """AttnLRP relevance of the input tokens (text) or pixels (images).

    Parameters
    ----------
    model : torch.nn.Module
        A transformer whose attention is written with modules (``lumos.models.TextEncoder``,
        ``lumos.models.VisionTransformer``, or any model built from ``MatMul``, ``nn.Softmax``,
        ``nn.Linear``, ``nn.LayerNorm``, activations and ``Add``).
    epsilon : float, default 0
        Stabiliser of the ε, uniform, LayerNorm and residual rules. The default 0 is LXT's
        efficient rules exactly (an output that is exactly 0 passes its gradient, as in LXT;
        on a trained MNIST ViT 5.6e-7 from LXT in float32, 2.5e-7 in float64) and runs at
        LXT's speed; ε > 0 is the stabilised ε-rule (about 1.35× slower, and ~1e-3 from LXT
        at 1e-6 on that ViT).

    ``extras["softmax_absorbed"]``: relevance absorbed by the softmax Taylor rule, per input.
    """

    needs_gradients = True
    needs_attention_modules = True

    def __init__(self, model, *, epsilon: float = 0.0, output: str = "raw", **kwargs):
        super().__init__(model, output=output, **kwargs)
        if output != "raw":
            raise ValueError(f"AttnLRP starts from the target logit; output must be 'raw', got {output!r}")
        self.epsilon = _check_stabiliser(epsilon, "epsilon")
        fused = [n for n, m in self.model.named_modules() if isinstance(m, nn.MultiheadAttention)]
        if fused:
            raise ValueError(
                f"AttnLRP cannot attach rules inside nn.MultiheadAttention ({', '.join(fused[:3])}): it computes "
                "softmax and the attention products functionally. Build the model from lumos.models.transformer "
                "blocks (MatMul, nn.Softmax), or use LXT's monkey_patch for Hugging Face models")

    def params(self):
        return {**super().params(), "epsilon": self.epsilon}

    def prepare(self, x, call):
        model = call.model
        rules = static_rules(model, attnlrp_composite(self.epsilon)[0], call.stack)
        start = None
        if x.ndim == 2:
            embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
            if not embeddings:
                raise ValueError("token inputs (N, T) need a token embedding (nn.Embedding) in the model")
            start = _EmbeddingStart()
            for m in embeddings:
                call.stack.callback(m.register_forward_hook(start).remove)
        absorbed: list[torch.Tensor] = []
        patch_rules(model, rules, call.stack, absorbed)
        return State(call, absorbed=absorbed, start=start)

    def attribute_chunk(self, x, targets, state):
        adapter = state.adapter
        xt = to_model_input(adapter, x)
        if xt.is_floating_point():
            xt = xt.detach().requires_grad_(True)
        state.absorbed.clear()
        start = state.start
        if start is not None:
            start.expected, start.output = tuple(xt.shape), None
        with torch.enable_grad():
            scores = adapter.forward(xt)
            if start is not None and start.output is None:
                raise ValueError("token inputs (N, T) need a token embedding (nn.Embedding) in the model: none "
                                 f"returned (N, T, D) embeddings for ids of shape {tuple(xt.shape)}")
            if not torch.isfinite(scores).all():
                raise ValueError("the model returned NaN or infinite scores")
            if not scores.requires_grad:
                raise ValueError("the model's output has no gradient path to its input (it detaches, rounds or "
                                 "takes an argmax); AttnLRP cannot explain it")
            t = targets(scores.detach())
            wrt = start.output if start is not None else xt
            (g,) = torch.autograd.grad(scores, wrt, torch.zeros_like(scores).scatter_(1, t.view(-1, 1), 1.0))
        rel = wrt.detach() * g
        absorbed = torch.stack(state.absorbed).sum(0) if state.absorbed else torch.zeros(len(x))
        extras = {"softmax_absorbed": absorbed}
        if start is not None:
            extras["embedding_relevance"] = rel
            rel = rel.sum(-1)
        return Chunk(rel, scores.detach(), t, extras)

    def finish(self, x, result, state):
        record_completeness(result, np.zeros(len(result.target), dtype=result.prediction.dtype))  # R_out = the logit
