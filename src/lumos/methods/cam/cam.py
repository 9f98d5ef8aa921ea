"""Class activation maps (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization", arXiv:1512.04150), and the base class of every layer-map method.

CAM needs conv features ``A_k`` -> global average pooling -> a linear layer
``y_c = sum_k w_k^c mean_u A_k(u) + b_c``. The map is

    M_c(u) = sum_k w_k^c A_k(u),

so that ``mean_u M_c(u) + b_c = y_c`` exactly, ``u`` running over time (1-D), space (2-D)
or any number of position axes. Values are signed (no ReLU, as in the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.hooks import capture_activations, find_layer
from lumos.core.model import run_model
from lumos.core.registry import register
from lumos.methods.base import Chunk, Explainer, State
from lumos.methods.cam.layers import (has_positions, input_positions, probe, resolve_positional_layer,
                                      to_channels_first, upsample)


def layer_output(model: nn.Module, x: torch.Tensor, name: str, module: nn.Module, forward) -> tuple:
    """Run ``forward(x)`` and return ``(scores, output of the layer)``.

    Refuses a layer whose output is modified in place later in ``forward``
    (``F.relu(h, inplace=True)``, ``h += skip``): the captured tensor would then hold other
    values than the layer produced, and gradients taken with respect to it would be wrong."""
    with capture_activations(model, {name: module}) as store:
        scores = forward(x)
    if name not in store:
        raise ValueError(f"layer {name!r} did not run during the forward pass")
    act = store[name]
    version = store.versions.get(name)
    if isinstance(act, torch.Tensor) and version is not None and act._version != version:
        raise ValueError(
            f"the output of layer {name!r} is modified in place later in the model's forward (e.g. "
            "F.relu(h, inplace=True) or h += skip), so a map read from it would be wrong; choose the layer "
            "after that operation (e.g. the following activation module) or make the operation out-of-place"
        )
    return scores, act


class LayerMapExplainer(Explainer):
    """Base of CAM, Grad-CAM and Grad-CAM++: a map over a layer's positions, upsampled
    to the input. ``prepare`` finds the layer in the call's view of the model;
    subclasses implement ``layer_map(x, targets, state) -> (scores, targets, map, extras)``
    for one chunk, the map ``(n, *positions)`` at layer resolution.

    Parameters
    ----------
    layer : str, torch.nn.Module or None
        The layer whose output is explained, by dotted module name or object (kept as its
        name, so a copy of the model finds its own layer). None picks the last module
        whose output has positions (a conv block or a recurrent layer).
    channel_axis : "auto" or int
        Channel axis of that layer's output: ``"auto"`` is axis 1, or the last axis of a
        recurrent layer; give e.g. ``-1`` for other channels-last layers.
    """

    needs_gradients = True
    needs_layer = True
    torchscript = False
    layouts = ("timeseries", "image")

    def __init__(self, model, layer=None, *, channel_axis="auto", **kwargs):
        super().__init__(model, **kwargs)
        if layer is not None:
            if not isinstance(layer, (str, nn.Module)):
                raise TypeError(f"layer must be a module name, a module or None, got {type(layer).__name__}")
            layer = find_layer(self.model, layer)[0]  # a wrong name fails here, listing the candidates
        if channel_axis != "auto" and (isinstance(channel_axis, bool) or not isinstance(channel_axis, int)):
            raise TypeError(f"channel_axis must be 'auto' or an int, got {channel_axis!r}")
        self.layer = layer
        self.channel_axis = channel_axis

    def params(self):
        return {**super().params(), "layer": self.layer, "channel_axis": self.channel_axis}

    def prepare(self, x, call):
        size = input_positions(x.shape, type(self).__name__)
        probe_rows = call.adapter.to_tensor(x[:8])
        probed = {}
        name, module = resolve_positional_layer(call.model, self.layer, probe_rows, self.channel_axis,
                                                type(self).__name__, keep=probed)
        shape = tuple(probed["output"].shape) if "output" in probed else None
        return State(call, name=name, module=module, size=size, channels=x.shape[1], layer_shape=shape)

    def layer_map(self, x: torch.Tensor, targets, state):
        raise NotImplementedError

    def attribute_chunk(self, x, targets, state):
        xt = state.adapter.to_tensor(x)
        scores, t, raw, extras = self.layer_map(xt, targets, state)
        if raw.ndim == 2 and len(state.size) == 2:  # a transformer's tokens on an image: the patch grid
            from lumos.methods.transformer.tokens import tokens_to_grid

            raw = tokens_to_grid(raw, cls_token=0)
        values = upsample(raw.detach(), state.size, getattr(state, "channels", None))
        return Chunk(values, scores, t, {"layer_map": raw.detach(), **extras})

    def finish(self, x, result, state):
        result.meta = {**result.meta, "layer": state.name}


def _gap_matches(act: torch.Tensor, linear: nn.Linear, logits: torch.Tensor) -> bool:
    if act.ndim < 3 or act.shape[1] != linear.in_features or act.shape[0] != logits.shape[0]:
        return False
    pooled = act.flatten(2).mean(2)
    y = F.linear(pooled, linear.weight, linear.bias)
    tol = 1e-4 * max(1.0, float(logits.abs().max()))
    return y.shape == logits.shape and bool(torch.allclose(y, logits, rtol=1e-4, atol=tol))


@register("cam", "class_activation_map")
class CAM(LayerMapExplainer):
    """Class activation map ``M_c(u) = sum_k w_k^c A_k(u)`` (Zhou et al. 2016).

    Parameters
    ----------
    layer : str, module or None
        The feature layer ``A`` (output of the last conv block). None finds it: the last
        layer whose average over positions, fed to the final linear layer, gives the logits.
    classifier : str, module or None
        The final ``nn.Linear``; None finds the linear layer that produces the logits.

    Raises ``ValueError`` when the model is not ``features -> global average pooling ->
    linear`` (use Grad-CAM then). ``extras["layer_map"]`` holds ``M_c`` at layer
    resolution, ``extras["bias"]`` the bias ``b_c``, so ``layer_map.mean() + bias`` is the logit.
    """

    def __init__(self, model, layer=None, *, classifier=None, channel_axis="auto", **kwargs):
        super().__init__(model, layer, channel_axis=channel_axis, **kwargs)
        if self.adapter.output != "raw":
            raise ValueError(f"CAM decomposes the logits; output={self.adapter.output!r} is not supported, use 'raw'")
        if classifier is not None:
            classifier, module = find_layer(self.model, classifier, (nn.Linear,))
            if not isinstance(module, nn.Linear):
                raise ValueError(f"classifier {classifier!r} is a {type(module).__name__}, CAM needs an nn.Linear")
        self.classifier = classifier

    def params(self):
        return {**super().params(), "classifier": self.classifier}

    def prepare(self, x, call):
        size = input_positions(x.shape, type(self).__name__)
        model = call.model
        xp = call.adapter.to_tensor(x[:8])
        rows = probe(model, xp)
        logits = rows[-1][2]
        linears = [(n, m) for n, m, a in rows[:-1] if isinstance(m, nn.Linear)]
        if self.classifier is not None:
            name, linear = find_layer(model, self.classifier)
        else:
            producing = [(n, m) for n, m, a in rows[:-1] if isinstance(m, nn.Linear) and a.shape == logits.shape
                         and torch.allclose(a, logits)]
            if not producing:
                raise ValueError(
                    "CAM needs conv features -> global average pooling -> a linear layer giving the logits; "
                    f"no nn.Linear of this model produces its output (linear layers: "
                    f"{', '.join(n for n, _ in linears) or 'none'}). Use GradCAM for this model."
                )
            name, linear = producing[-1]
        if self.layer is not None:
            fname, module = find_layer(model, self.layer)
            with capture_activations(model, {fname: module}) as store, torch.no_grad():
                run_model(model, xp)
            act = to_channels_first(store[fname], module, self.channel_axis) if fname in store else None
            if act is None or not _gap_matches(act, linear, logits):
                raise ValueError(
                    f"CAM needs layer -> global average pooling -> linear: the logits are not {name!r} applied to "
                    f"the average over positions of {fname!r}'s output. Use GradCAM for this layer."
                )
        else:
            found = [(n, m) for n, m, a in rows[:-1] if has_positions(a) and _gap_matches(a, linear, logits)]
            if not found:
                raise ValueError(
                    f"CAM needs conv features -> global average pooling -> linear; no layer's average over "
                    f"positions gives the logits through {name!r}. Use GradCAM for this model."
                )
            fname, module = found[-1]
        return State(call, name=fname, module=module, size=size, linear=linear, channels=x.shape[1])

    def layer_map(self, x, targets, state):
        with torch.no_grad():
            scores, act = layer_output(state.call.model, x, state.name, state.module, state.adapter.forward)
            t = targets(scores)
            act = to_channels_first(act, state.module, self.channel_axis)
            w = state.linear.weight[t]  # (n, C)
            b = state.linear.bias
            bias = b[t] if b is not None else torch.zeros(len(t), device=x.device)
            return scores, t, torch.einsum("nc...,nc->n...", act, w), {"bias": bias}
