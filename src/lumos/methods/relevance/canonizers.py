"""Canonizers: rewrite a model into an equivalent one on which LRP rules apply.

:func:`fold_batchnorm` merges each batch norm that is fed directly by a Linear or
Conv layer into that layer's parameters (Montavon et al. 2019, sec. 10.3.3; zennit's
``MergeBatchNorm``):

    BN(Wx + b) = s ⊙ (Wx + b − μ) + β,   s = γ / sqrt(σ² + ε)
               = (s ⊙ W) x + (s ⊙ (b − μ) + β)

and turns the batch norm into the identity (γ = 1, β = 0, μ = 0, σ² = 1, ε = 0), so that
the Pass rule applies to it. Which layer feeds which is read from a traced forward pass
(not from the architecture), so any model qualifies. Folding never writes into a
parameter: the folded weights are new tensors assigned to the modules (of the call's
private view of the model), and the original parameter objects are assigned back on
exit, also when an exception is raised; the folded model is checked to give the
original outputs. A loss computed before the explanation can still be back-propagated.

Residual sums are made visible with :class:`lumos.methods.relevance.layers.Add`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from lumos.core.hooks import LayerCall

FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def batchnorm_pairs(calls: Sequence[LayerCall]) -> tuple[list[tuple[str, nn.Module, str, nn.Module]], dict[str, str]]:
    """``(layer name, layer, bn name, bn)`` for every batch norm whose input is exactly the
    output of a Linear/Conv call consumed by nothing else, and a reason for every other
    batch norm (``name -> why not``)."""
    leaves = [c for c in calls if not any(True for _ in c.module.children())]
    producers = {id(c.output): c for c in leaves if isinstance(c.module, FOLDABLE)}
    consumers: dict[int, int] = {}
    for c in leaves:
        for t in c.inputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    pairs, refused, seen = [], {}, set()
    for c in leaves:
        if not isinstance(c.module, BATCHNORMS) or id(c.module) in seen:
            continue
        seen.add(id(c.module))
        bn, name = c.module, c.name
        src = producers.get(id(c.inputs[0])) if c.inputs else None
        if src is None:
            refused[name] = "its input is not the output of a Linear or Conv layer"
        elif consumers.get(id(c.inputs[0]), 0) > 1:
            refused[name] = f"the output of {src.name!r} also feeds other layers"
        elif not bn.track_running_stats or bn.running_mean is None:
            refused[name] = "it has no running statistics (track_running_stats=False)"
        elif _out_features(src.module) != bn.num_features or (isinstance(src.module, nn.Linear) and src.output.ndim != 2):
            refused[name] = f"its features do not match the outputs of {src.name!r}"
        else:
            pairs.append((src.name, src.module, name, bn))
    return pairs, refused


@contextlib.contextmanager
def fold_batchnorm(pairs: Sequence[tuple[str, nn.Module, str, nn.Module]]) -> Iterator[set]:
    """Fold each ``(layer, bn)`` pair by assigning new tensors; yields the set of folded
    batch norms. The original parameter and buffer objects are put back on exit."""
    saved = []
    try:
        with torch.no_grad():
            for _, layer, _, bn in pairs:
                saved.append(_save(layer, bn))
                _fold(layer, bn)
        yield {bn for _, _, _, bn in pairs}
    finally:
        for state in reversed(saved):
            _restore(*state)


_SLOTS = (("weight", "_parameters"), ("bias", "_parameters"))
_BN_SLOTS = (("weight", "_parameters"), ("bias", "_parameters"), ("running_mean", "_buffers"),
             ("running_var", "_buffers"))


def _save(layer, bn):
    """The very objects (not copies) held by the layer and the batch norm."""
    objects = {(layer, name): getattr(layer, kind).get(name) for name, kind in _SLOTS}
    objects.update({(bn, name): getattr(bn, kind).get(name) for name, kind in _BN_SLOTS})
    return layer, bn, objects, bn.eps


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t, requires_grad=False)


def _fold(layer, bn):
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0.0)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean, dtype=layer.weight.dtype)
    weight = layer.weight * scale.to(layer.weight).view(-1, *([1] * (layer.weight.ndim - 1)))
    layer._parameters["weight"] = _frozen(weight)
    layer._parameters["bias"] = _frozen((bias * scale + shift).to(layer.weight.dtype))
    if bn.weight is not None:
        bn._parameters["weight"] = _frozen(torch.ones_like(bn.weight))
    if bn.bias is not None:
        bn._parameters["bias"] = _frozen(torch.zeros_like(bn.bias))
    bn._buffers["running_mean"] = torch.zeros_like(bn.running_mean)
    bn._buffers["running_var"] = torch.ones_like(bn.running_var)
    bn.eps = 0.0


def _restore(layer, bn, objects, eps):
    for (module, name), value in objects.items():
        kind = "_buffers" if name.startswith("running_") else "_parameters"
        getattr(module, kind)[name] = value
    bn.eps = eps
