"""AttnLRP (Achtibat et al. 2024, "AttnLRP: Attention-Aware Layer-Wise Relevance
Propagation for Transformers", ICML, arXiv:2402.05602) on lumos's LRP machinery: each
rule is a :class:`~lumos.core.hooks.BackwardRule` attached to a module of the call's
private view (:func:`lumos.core.hooks.attach_rules`), relevance starts at the target logit.

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
where no hook can attach a rule; LXT patches functions (``monkey_patch``) instead. lumos
keeps one rule mechanism, so AttnLRP explains models whose attention is written with
modules (``lumos.models.TextEncoder``, ``VisionTransformer``) and refuses the others by
name. ``stab(z) = z + ε·sign(z)`` as everywhere in lumos (LXT's explicit functions add
+ε whatever the sign; LXT's efficient Gradient×Input variant is the ε → 0 limit).

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
from torch import nn

from lumos.core.hooks import BackwardRule, attach_rules, capture_activations, trace_calls
from lumos.core.registry import register
from lumos.methods.base import Chunk, State, record_completeness
from lumos.methods.relevance.composites import Composite
from lumos.methods.relevance.rules import Epsilon, _check_stabiliser, stabilise
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


def _graph_start(module, inputs, output):
    return output.detach().requires_grad_(True)


@register("attnlrp", "attn_lrp")
class AttnLRP(TokenExplainer):
    """AttnLRP relevance of the input tokens (text) or pixels (images).

    Parameters
    ----------
    model : torch.nn.Module
        A transformer whose attention is written with modules (``lumos.models.TextEncoder``,
        ``lumos.models.VisionTransformer``, or any model built from ``MatMul``, ``nn.Softmax``,
        ``nn.Linear``, ``nn.LayerNorm``, activations and ``Add``).
    epsilon : float, default 1e-6
        Stabiliser of the ε, uniform, LayerNorm and residual rules.

    ``extras["softmax_absorbed"]``: relevance absorbed by the softmax Taylor rule, per input.
    """

    needs_gradients = True
    needs_attention_modules = True

    def __init__(self, model, *, epsilon: float = 1e-6, output: str = "raw", **kwargs):
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
        probe = to_model_input(call.adapter, x[:1])
        embedding = None
        if x.ndim == 2:
            with torch.no_grad(), trace_calls(model) as calls:
                call.adapter.forward(probe)
            embedding = next((c.module for c in calls if isinstance(c.module, nn.Embedding)
                              and isinstance(c.output, torch.Tensor) and c.output.shape[:2] == probe.shape), None)
            if embedding is None:
                raise ValueError("token inputs (N, T) need a token embedding (nn.Embedding) in the model")
            handle = embedding.register_forward_hook(_graph_start)
            call.stack.callback(handle.remove)
        composite, softmax = attnlrp_composite(self.epsilon)
        with torch.no_grad(), trace_calls(model) as calls:
            call.adapter.forward(probe)
        rules = composite.resolve(list(calls))
        return State(call, rules=rules, softmax=softmax, embedding=embedding)

    def attribute_chunk(self, x, targets, state):
        adapter = state.adapter
        xt = to_model_input(adapter, x)
        if xt.is_floating_point():
            xt = xt.detach().requires_grad_(True)
        state.softmax.absorbed.clear()
        layers = {"embedding": state.embedding} if state.embedding is not None else {}
        with torch.enable_grad(), attach_rules(state.rules), capture_activations(state.call.model, layers) as acts:
            scores = adapter.forward(xt)
            if not torch.isfinite(scores).all():
                raise ValueError("the model returned NaN or infinite scores")
            if not scores.requires_grad:
                raise ValueError("the model's output has no gradient path to its input (it detaches, rounds or "
                                 "takes an argmax); AttnLRP cannot explain it")
            t = targets(scores.detach())
            idx = t.view(-1, 1)
            start = torch.zeros_like(scores).scatter_(1, idx, scores.gather(1, idx)).detach()
            wrt = acts["embedding"] if state.embedding is not None else xt
            (rel,) = torch.autograd.grad(scores, wrt, start)
        rel = rel.detach()
        absorbed = torch.stack(state.softmax.absorbed).sum(0) if state.softmax.absorbed else torch.zeros(len(x))
        extras = {"softmax_absorbed": absorbed}
        if state.embedding is not None:
            extras["embedding_relevance"] = rel
            rel = rel.sum(-1)
        return Chunk(rel, scores.detach(), t, extras)

    def finish(self, x, result, state):
        record_completeness(result, np.zeros(len(result.target), dtype=result.prediction.dtype))  # R_out = the logit
