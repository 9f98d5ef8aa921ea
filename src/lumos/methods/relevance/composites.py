"""Composites: which rule applies to which layer.

A :class:`Composite` maps layer names (first), the first weighted layer of the forward
pass (``first_map``), then layer types to rules. Layers without parameters get the
standard rules (Montavon et al. 2019; zennit's ``layer_map_base``): elementwise
activations, dropout, flatten and identity pass relevance unchanged; max pooling passes
it by its gradient (the winner takes all); average pooling and :class:`Add` share it in
proportion to their inputs (``Norm``); a batch norm folded by the canonizer passes.

Any other layer that runs in the forward pass (a layer with parameters such as a GRU or
LayerNorm, an unknown parameter-free module) raises a ``ValueError`` naming it: LRP never
falls back to the gradient silently.

Ready-made composites: ``LRPZero``, ``EpsilonComposite``, ``EpsilonPlus``,
``EpsilonAlpha2Beta1``, ``EpsilonGammaBox`` (and ``deep_taylor_composite``); a plain
dict ``{type or layer name: rule}`` is a user-defined composite.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from torch import nn

from lumos.core.hooks import BackwardRule, LayerCall
from lumos.methods.relevance.canonizers import BATCHNORMS
from lumos.methods.relevance.layers import Add
from lumos.methods.relevance.rules import (WEIGHTED, AlphaBeta, Epsilon, Gamma, Gradient, LRPRule, Norm, Pass, WSquare,
                                           ZBox, ZPlus)

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Softplus)
PASSING = ACTIVATIONS + (nn.modules.dropout._DropoutNd, nn.Flatten, nn.Unflatten, nn.Identity)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
             nn.AdaptiveAvgPool3d)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_SUPPORTS = AVG_POOLS + (Add,)


def _label(name: str, module: nn.Module) -> str:
    return f"{name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"


def _pairs(mapping) -> list[tuple[tuple[type, ...], BackwardRule]]:
    if mapping is None:
        return []
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    out = []
    for types, rule in items:
        types = types if isinstance(types, tuple) else (types,)
        if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
            raise TypeError(f"layer_map keys must be nn.Module types, got {types!r}")
        out.append((types, _check_rule(rule)))
    return out


def _check_rule(rule) -> BackwardRule:
    if isinstance(rule, type) and issubclass(rule, BackwardRule):
        raise TypeError(f"pass a rule instance, e.g. {rule.__name__}(), not the class {rule.__name__}")
    if not isinstance(rule, BackwardRule):
        raise TypeError(f"a rule must be a BackwardRule (Epsilon(), ZPlus(), ...), got {type(rule).__name__}")
    return rule


def _computes_weights(name: str) -> bool:
    """Modules of ``torch.nn.utils.parametrize`` (``layer.parametrizations.weight``)."""
    return name == "parametrizations" or name.startswith("parametrizations.") or ".parametrizations" in name


def _warn_unseen_children(name: str, module: nn.Module, ran: set) -> None:
    """A container that ran while a child with parameters never did probably computes with
    the child's weights directly (``F.conv2d(x, self.conv.weight)``): no rule sees that
    operation, so relevance crosses it as a gradient. Said, since the result is then not LRP."""
    def seen(m: nn.Module) -> bool:  # a ModuleList/ModuleDict is never called itself: its members run
        return id(m) in ran or (isinstance(m, (nn.ModuleList, nn.ModuleDict)) and any(seen(c) for c in m.children()))

    unseen = [child for child, m in module.named_children()
              if not seen(m) and not _computes_weights(child) and any(True for _ in m.parameters())]
    if unseen:
        import warnings

        warnings.warn(
            f"LRP: {_label(name, module)} ran but its child layer(s) {', '.join(unseen)} never did; if it computes "
            "with their weights directly (e.g. F.conv2d(x, self.conv.weight)), no rule sees that operation and "
            "relevance crosses it as a gradient (check the explanation's delta), or map a rule to it by name",
            stacklevel=6)


class Composite:
    """Map layers to LRP rules.

    Parameters
    ----------
    layer_map : dict or list of (type or tuple of types, rule)
        Rules by layer type, checked in order; they override the standard rules.
    name_map : dict of str -> rule
        Rules by layer name (``"features.0"``); they take precedence over everything.
    first_map : dict or list of (types, rule)
        Rule for the first layer (in forward order) of the given types, e.g. z^B on the
        first convolution.
    norm_stabilizer : float
        Stabiliser of the ``Norm`` rule on average pooling and ``Add``.
    name : str
        A label shown in ``repr`` and in error messages.
    """

    def __init__(self, layer_map=None, name_map: Mapping[str, BackwardRule] | None = None, first_map=None,
                 norm_stabilizer: float = 1e-6, name: str = "Composite"):
        self.layer_map = _pairs(layer_map)
        self.first_map = _pairs(first_map)
        self.name_map = {str(k): _check_rule(v) for k, v in (name_map or {}).items()}
        self.base_map = [(PASSING, Pass()), (MAX_POOLS, Gradient()), (NORM_SUPPORTS, Norm(norm_stabilizer))]
        self.name = name

    def __repr__(self) -> str:
        rules = [f"{'/'.join(t.__name__ for t in types)}: {rule!r}" for types, rule in self.layer_map]
        first = [f"first {'/'.join(t.__name__ for t in types)}: {rule!r}" for types, rule in self.first_map]
        names = [f"{k!r}: {v!r}" for k, v in self.name_map.items()]
        return f"{self.name}({', '.join(names + first + rules)})"

    def _rule(self, name: str, module: nn.Module, first: bool) -> BackwardRule | None:
        if name in self.name_map:
            return self.name_map[name]
        if first:
            for types, rule in self.first_map:
                if isinstance(module, types):
                    return rule
        for types, rule in self.layer_map + self.base_map:
            if isinstance(module, types):
                return rule
        return None

    def resolve(self, calls: Sequence[LayerCall], folded: set = frozenset(),
                refused: Mapping[str, str] | None = None) -> dict[nn.Module, BackwardRule]:
        """The rule of every module that ran in the traced forward pass ``calls``.

        Raises ``ValueError`` for a layer no rule applies to, or a rule that cannot apply
        to its layer. Modules with the ``Gradient`` rule are left out (autograd handles them).
        """
        unknown = set(self.name_map) - {c.name for c in calls}
        if unknown:
            raise ValueError(f"{self.name}: no layer named {sorted(unknown)} ran in the forward pass; "
                             f"layers: {', '.join(c.name for c in calls if c.name)}")
        first_types = tuple(t for types, _ in self.first_map for t in types)
        first_seen = False
        mapping: dict[nn.Module, BackwardRule] = {}
        done: set[int] = set()
        ran = {id(c.module) for c in calls}
        for call in calls:
            name, module = call.name, call.module
            if id(module) in done:
                continue
            done.add(id(module))
            if _computes_weights(name):
                continue  # a parametrization (weight norm...) computes a weight, not an activation
            is_leaf = not any(True for _ in module.children())
            own_params = any(True for _ in module.parameters(recurse=False))
            if not is_leaf and not own_params and name not in self.name_map:
                _warn_unseen_children(name, module, ran)
                continue  # a container: its children carry the rules
            first = bool(first_types) and not first_seen and isinstance(module, first_types)
            first_seen = first_seen or first
            if isinstance(module, BATCHNORMS) and name not in self.name_map:
                if module not in folded:
                    why = (refused or {}).get(name, "canonize=False")
                    raise ValueError(
                        f"LRP cannot explain batch norm {_label(name, module)}: it could not be folded into a "
                        f"preceding Linear/Conv layer ({why}), and no rule of {self.name} applies to an unfolded "
                        "batch norm")
                mapping[module] = Pass()
                continue
            rule = self._rule(name, module, first)
            if rule is None:
                raise ValueError(
                    f"LRP has no rule for layer {_label(name, module)} in {self.name}: supported are Linear, "
                    "Conv1d/2d/3d, average and max pooling, elementwise activations, dropout, flatten, identity, "
                    "folded batch norm and lumos Add; map a rule to it by name or type if one applies "
                    "(e.g. {'%s': Pass()} for an elementwise layer)" % name)
            self._check(rule, name, module)
            if not isinstance(rule, Gradient):
                mapping[module] = rule
        return mapping

    @staticmethod
    def _check(rule: BackwardRule, name: str, module: nn.Module) -> None:
        supports = getattr(rule, "supports", None)
        if isinstance(rule, LRPRule):
            supports = WEIGHTED
        elif isinstance(rule, Norm):
            supports = NORM_SUPPORTS
        if supports is not None and not isinstance(module, supports):
            raise ValueError(
                f"rule {rule!r} cannot apply to layer {_label(name, module)}: it applies to "
                f"{', '.join(t.__name__ for t in supports)}")
        if isinstance(rule, (Gradient, Pass)) and any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"rule {type(rule).__name__} cannot apply to layer {_label(name, module)}: the layer has parameters")


def LRPZero(norm_stabilizer: float = 0.0) -> Composite:  # noqa: N802
    """LRP-0 on every Linear/Conv layer (and an unstabilised Norm on pooling): equals
    Gradient x Input on ReLU networks."""
    return Composite([(WEIGHTED, Epsilon(0.0))], norm_stabilizer=norm_stabilizer, name="LRPZero")


def EpsilonComposite(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """LRP-ε on every Linear/Conv layer."""
    return Composite([(WEIGHTED, Epsilon(epsilon))], norm_stabilizer=stabilizer, name="Epsilon")


def EpsilonPlus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """z⁺ on convolutions, ε on dense layers (Montavon et al. 2019; zennit ``EpsilonPlus``)."""
    return Composite([(CONVS, ZPlus(stabilizer)), (nn.Linear, Epsilon(epsilon))], norm_stabilizer=stabilizer,
                     name="EpsilonPlus")


def EpsilonAlpha2Beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:  # noqa: N802
    """αβ (α=2, β=1) on convolutions, ε on dense layers."""
    return Composite([(CONVS, AlphaBeta(2.0, 1.0, stabilizer)), (nn.Linear, Epsilon(epsilon))],
                     norm_stabilizer=stabilizer, name="EpsilonAlpha2Beta1")


def EpsilonGammaBox(low, high, epsilon: float = 1e-6, gamma: float = 0.25,  # noqa: N802
                    stabilizer: float = 1e-6) -> Composite:
    """z^B on the first convolution (inputs in [low, high]), γ on the other convolutions,
    ε on dense layers (Montavon et al. 2019; zennit ``EpsilonGammaBox``)."""
    return Composite([(CONVS, Gamma(gamma, stabilizer)), (nn.Linear, Epsilon(epsilon))],
                     first_map=[(CONVS, ZBox(low, high, stabilizer))], norm_stabilizer=stabilizer,
                     name="EpsilonGammaBox")


def deep_taylor_composite(input_bounds=None, stabilizer: float = 1e-6) -> Composite:
    """Deep Taylor decomposition (Montavon et al. 2017): z⁺ (bias excluded) on every
    Linear/Conv layer after the first; z^B on the first if ``input_bounds=(low, high)``,
    else w²."""
    first = WSquare(stabilizer) if input_bounds is None else ZBox(*_bounds(input_bounds), stabilizer)
    return Composite([(WEIGHTED, ZPlus(stabilizer, bias=False))], first_map=[(WEIGHTED, first)],
                     norm_stabilizer=stabilizer, name="DeepTaylor")


def _bounds(input_bounds):
    if not (isinstance(input_bounds, (tuple, list)) and len(input_bounds) == 2):
        raise ValueError(f"input_bounds must be a pair (low, high), got {input_bounds!r}")
    return input_bounds


COMPOSITES = {
    "lrp0": LRPZero, "zero": LRPZero, "epsilon": EpsilonComposite, "epsilon_plus": EpsilonPlus,
    "epsilon_alpha2_beta1": EpsilonAlpha2Beta1,
}


def as_composite(spec) -> Composite:
    """A Composite from a Composite, a name (``"epsilon_plus"``...) or a dict
    ``{layer type or layer name: rule}``."""
    if isinstance(spec, Composite):
        return spec
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key == "epsilon_gamma_box":
            raise ValueError("the epsilon_gamma_box composite needs the input bounds: "
                             "composite=EpsilonGammaBox(low=..., high=...)")
        if key not in COMPOSITES:
            raise ValueError(f"unknown composite {spec!r}; available: {', '.join(sorted(COMPOSITES))}, "
                             "EpsilonGammaBox(low, high), or a dict {layer type or name: rule}")
        return COMPOSITES[key]()
    if isinstance(spec, Mapping):
        by_name = {k: v for k, v in spec.items() if isinstance(k, str)}
        by_type = [(k, v) for k, v in spec.items() if not isinstance(k, str)]
        return Composite(by_type, name_map=by_name, name="Composite")
    raise TypeError(f"composite must be a Composite, a name or a dict of rules, got {type(spec).__name__}")
