"""Layer-wise relevance propagation (Bach et al. 2015, PLOS ONE 10(7): e0130140; rules as
in Montavon et al. 2019, "Layer-wise relevance propagation: an overview").

Relevance starts at the target logit, R_out = f_c(x), and flows back layer by layer by
the rules of a composite (see :mod:`~lumos.methods.relevance.rules`):

    R_j = Σ_k a_j ρ(w_jk) / (ε + Σ_j a_j ρ(w_jk)) · R_k

Technically the rules replace each layer's backward pass (:func:`lumos.core.hooks.attach_rules`),
and the backward pass is started with ``one_hot(target) · logits``; what reaches the input
is the relevance. Conservation: Σ_i R_i = f_c(x) − (relevance absorbed by biases and
stabilisers); ``delta = Σ R − f_c(x)`` is returned per input. With LRP-0 on a ReLU network
the relevance equals Gradient x Input (Kindermans et al. 2016, arXiv:1611.07270; Ancona
et al. 2018, arXiv:1711.06104).

Caveat: only modules can carry rules. Operations written in ``forward`` with functions or
operators (``x + y``, ``F.relu``, ``x * 2``) pass relevance as a gradient; write residual
sums with :class:`~lumos.methods.relevance.layers.Add`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from lumos.core.hooks import attach_rules, capture_activations, find_layer, trace_calls
from lumos.core.registry import register
from lumos.methods.base import Chunk, Explainer, State, record_completeness
from lumos.methods.relevance.canonizers import BATCHNORMS, batchnorm_pairs, fold_batchnorm
from lumos.methods.relevance.composites import Composite, as_composite


@contextlib.contextmanager
def relevance_rules(adapter, composite: Composite, probe: torch.Tensor, canonize: bool = True) -> Iterator[dict]:
    """Trace one forward pass on ``probe``, fold batch norms (restored on exit) and yield
    the ``{module: rule}`` mapping of ``composite`` for the (folded) model."""
    model = adapter.model
    with torch.no_grad(), trace_calls(model) as calls:
        reference = adapter.forward(probe)
    calls = list(calls)
    if canonize:
        pairs, refused = batchnorm_pairs(calls)
    else:
        pairs, refused = [], {c.name: "canonize=False" for c in calls if isinstance(c.module, BATCHNORMS)}
    with fold_batchnorm(pairs) as folded:
        if pairs:
            with torch.no_grad():
                folded_out = adapter.forward(probe)
            err = float((folded_out - reference).abs().max())
            scale = max(float(reference.abs().max()), 1.0)
            if err > 1e-4 * scale:
                names = ", ".join(f"{bn} into {layer}" for layer, _, bn, _ in pairs)
                raise ValueError(f"folding batch norm ({names}) changed the model's output by {err:.3g}; a folded "
                                 "layer's output is probably also used outside a module. Pass canonize=False")
        yield composite.resolve(calls, folded, refused)


def propagate(adapter, rules: dict, x: torch.Tensor, choose, layer: torch.nn.Module | None = None):
    """Relevance at the input (or at ``layer``'s output) of a batch, the logits and the
    targets, from one forward and one backward pass; ``choose(scores) -> LongTensor``
    gives the targets from the scores."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), attach_rules(rules):
        with capture_activations(adapter.model, {"layer": layer} if layer is not None else {}) as acts:
            scores = adapter.forward(x)
        if not torch.isfinite(scores).all():
            raise ValueError("the model returned NaN or infinite scores; check the model and the inputs")
        t = choose(scores.detach())
        idx = t.view(-1, 1)
        start = torch.zeros_like(scores).scatter_(1, idx, scores.gather(1, idx)).detach()
        wrt = acts.get("layer") if layer is not None else x
        if wrt is None:
            raise ValueError("the chosen layer did not run in the forward pass")
        if not scores.requires_grad:
            raise ValueError("the model's output has no gradient path to its input; LRP cannot explain it")
        (rel,) = torch.autograd.grad(scores, wrt, start, allow_unused=True)
    if rel is None:
        raise ValueError("the target scores do not depend on the input (or on the chosen layer)")
    return rel.detach(), scores.detach(), t


@register("lrp", "layerwise_relevance_propagation")
class LRP(Explainer):
    """Layer-wise relevance propagation with a composite of rules.

    Parameters
    ----------
    model : torch.nn.Module
    composite : Composite, str or dict, default "epsilon_plus"
        ``"lrp0"``, ``"epsilon"``, ``"epsilon_plus"``, ``"epsilon_alpha2_beta1"``, a
        :class:`Composite` (e.g. ``EpsilonGammaBox(low=0, high=1)``), or a dict
        ``{layer type or layer name: rule}`` (standard rules fill in parameter-free layers).
    canonize : bool, default True
        Fold batch norms into the preceding Linear/Conv layer (of the call's private view
        of the model; the user's parameters are never written).
    batch_size : int, optional
        Rows per forward/backward pass.

    ``explain(x, target=None, layer=None)``: ``layer`` (a module name or object) returns
    the relevance of that layer's output instead of the input's (values have its shape).
    """

    needs_gradients = True
    torchscript = False
    call_options = {"layer": None}

    def __init__(self, model, composite="epsilon_plus", *, canonize: bool = True, output: str = "raw", **kwargs):
        super().__init__(model, output=output, **kwargs)
        if output != "raw":
            raise ValueError(f"LRP starts from the target logit; output must be 'raw', got {output!r}")
        self.composite = as_composite(composite)
        self.canonize = bool(canonize)

    def params(self):
        return {**super().params(), "composite": repr(self.composite), "canonize": self.canonize}

    def prepare(self, x, call, layer=None):
        model = call.model
        if layer is not None:
            name = find_layer(self.model, layer)[0] if isinstance(layer, torch.nn.Module) else layer
            layer_name, layer_module = find_layer(model, name)
        else:
            layer_name, layer_module = None, None
        probe = call.adapter.to_tensor(x[:1])
        rules = call.stack.enter_context(relevance_rules(call.adapter, self.composite, probe, self.canonize))
        return State(call, rules=rules, layer_name=layer_name, layer_module=layer_module)

    def attribute_chunk(self, x, targets, state):
        xt = state.adapter.to_tensor(x)
        rel, scores, t = propagate(state.adapter, state.rules, xt, targets, state.layer_module)
        return Chunk(rel, scores, t)

    def finish(self, x, result, state):
        record_completeness(result, np.zeros(len(result.target), dtype=result.prediction.dtype))  # R_out = the logit
        if state.layer_name is not None:
            result.meta = {**result.meta, "layer": state.layer_name}
