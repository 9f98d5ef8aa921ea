"""The one hook mechanism of lumos, used by LRP, CAM, guided methods and model analysis.

Two tools, both context managers that always remove what they registered:

- :func:`capture_activations` records the outputs of named layers during a forward pass.
  The tensors stay in the autograd graph, so ``torch.autograd.grad(score, act)`` gives
  the gradient with respect to an activation (Grad-CAM) without backward hooks.
- :func:`attach_rules` routes the output of chosen modules through a custom autograd
  function whose backward is a :class:`BackwardRule`. The forward value is unchanged;
  only what flows backwards through that module is replaced (an LRP rule, guided
  backprop's ReLU, a pass-through). This is the idea of zennit's rule hooks: a rule is
  a small object with a ``backward`` method, the hook plumbing lives here once.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Mapping

import torch


def named_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in model.named_modules() if name}


def find_layer(model: torch.nn.Module, layer: str | torch.nn.Module, kinds: tuple[type, ...] | None = None) -> tuple[str, torch.nn.Module]:
    """Resolve ``layer`` (a dotted module name or the module object) inside ``model``.

    Raises ``ValueError`` listing the candidate layers (of ``kinds`` when given) when it
    is not found.
    """
    layers = named_layers(model)
    if isinstance(layer, torch.nn.Module):
        for name, m in layers.items():
            if m is layer:
                return name, m
        if layer is model:
            return "", model
    elif isinstance(layer, str) and layer in layers:
        return layer, layers[layer]
    candidates = [n for n, m in layers.items() if kinds is None or isinstance(m, kinds)]
    shown = ", ".join(candidates[:20]) + (" ..." if len(candidates) > 20 else "")
    what = layer if isinstance(layer, str) else type(layer).__name__
    raise ValueError(f"layer {what!r} is not a module of this model; candidates: {shown or '(none)'}")


class Activations(dict):
    """Captured layer outputs by name, with their version counters at capture time."""

    def __init__(self):
        super().__init__()
        self.versions: dict[str, int] = {}


@contextlib.contextmanager
def capture_activations(model: torch.nn.Module, layers: Mapping[str, torch.nn.Module] | Iterable[str]) -> Iterator[dict]:
    """Record the output tensor of each layer at every forward pass.

    Yields a dict ``name -> tensor`` that is filled as the model runs (the last forward
    pass wins). For modules returning tuples (recurrent layers), the first element is kept.
    ``store.versions[name]`` is the tensor's version counter when it was captured: a
    larger ``_version`` after the forward pass means it was modified in place later.
    """
    if not isinstance(layers, Mapping):
        layers = dict(find_layer(model, name) for name in layers)
    store = Activations()
    handles = []

    def make(name):
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            store[name] = out
            if isinstance(out, torch.Tensor):
                store.versions[name] = out._version

        return hook

    try:
        for name, module in layers.items():
            handles.append(module.register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


class BackwardRule:
    """What flows backwards through one module.

    Subclasses implement :meth:`backward`, which receives the module, its (detached)
    tensor inputs and output from the forward pass, and the incoming gradient (or
    relevance), and returns one tensor (or None) per tensor input.
    """

    def backward(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor,
                 grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class PassRule(BackwardRule):
    """Pass the incoming gradient/relevance through unchanged (activations, norms)."""

    def backward(self, module, inputs, output, grad_output):
        if inputs[0].shape != grad_output.shape:
            raise ValueError(
                f"Pass rule on {type(module).__name__}: input shape {tuple(inputs[0].shape)} differs from "
                f"output shape {tuple(grad_output.shape)}, so relevance cannot pass through unchanged"
            )
        return (grad_output,) + (None,) * (len(inputs) - 1)


class _RuleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rule, module, output, *inputs):
        ctx.rule, ctx.module = rule, module
        ctx.save_for_backward(output, *inputs)
        return output.clone()

    @staticmethod
    def backward(ctx, grad_output):
        output, *inputs = ctx.saved_tensors
        grads = ctx.rule.backward(ctx.module, tuple(inputs), output, grad_output)
        if len(grads) != len(inputs):
            raise RuntimeError(f"{ctx.rule!r} returned {len(grads)} gradients for {len(inputs)} inputs")
        return (None, None, None, *grads)


def _rule_hook(rule: BackwardRule):
    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"{rule!r} cannot apply to {type(module).__name__}: it returns {type(output).__name__}, "
                "not a single tensor"
            )
        tensors = tuple(t for t in inputs if isinstance(t, torch.Tensor))
        if not any(t.requires_grad for t in tensors):
            return output
        return _RuleFunction.apply(rule, module, output.detach(), *tensors)

    return hook


@contextlib.contextmanager
def attach_rules(mapping: Mapping[torch.nn.Module, BackwardRule]) -> Iterator[None]:
    """Make each module's backward pass follow its rule; removed on exit, also on error."""
    handles = []
    try:
        for module, rule in mapping.items():
            if rule is not None:
                handles.append(module.register_forward_hook(_rule_hook(rule)))
        yield
    finally:
        for h in handles:
            h.remove()


class LayerCall:
    """One module call seen by :func:`trace_calls`: its name, the module, its tensor
    inputs and its output (kept as the very tensor objects, so that the call whose output
    feeds another call's input is found by identity)."""

    __slots__ = ("name", "module", "inputs", "output")

    def __init__(self, name: str, module: torch.nn.Module, inputs: tuple, output):
        self.name, self.module, self.inputs, self.output = name, module, inputs, output

    def __repr__(self) -> str:
        return f"LayerCall({self.name or '<model>'!r}, {type(self.module).__name__})"


@contextlib.contextmanager
def trace_calls(model: torch.nn.Module) -> Iterator[list[LayerCall]]:
    """Record every module call (the model itself included, name ``""``) during forward
    passes, in the order the calls finish; leaves therefore appear in execution order.
    Used to find which layers run, which one comes first and which feeds which
    (e.g. a batch norm fed by a convolution). Removed on exit, also on error."""
    calls: list[LayerCall] = []
    handles = []

    def make(name):
        def hook(module, inputs, output):
            calls.append(LayerCall(name, module, tuple(t for t in inputs if isinstance(t, torch.Tensor)), output))

        return hook

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(make(name)))
        yield calls
    finally:
        for h in handles:
            h.remove()
