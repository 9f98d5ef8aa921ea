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

from lumos.core.batching import chunk_slices
from lumos.core.hooks import capture_activations, find_layer
from lumos.core.registry import register
from lumos.methods.base import Explainer
from lumos.methods.cam.layers import (has_positions, input_positions, probe, resolve_positional_layer,
                                      to_channels_first, upsample)


def layer_output(model: nn.Module, x: torch.Tensor, name: str, module: nn.Module, forward) -> tuple:
    """Run ``forward(x)`` and return ``(scores, output of the layer)``."""
    with capture_activations(model, {name: module}) as store:
        scores = forward(x)
    if name not in store:
        raise ValueError(f"layer {name!r} did not run during the forward pass")
    return scores, store[name]


class LayerMapExplainer(Explainer):
    """Base of CAM, Grad-CAM and Grad-CAM++: a map over a layer's positions, upsampled
    to the input. Subclasses implement ``_layer_map(x, target, name, module)`` returning
    ``(N, *positions)`` (CAM), or ``_run`` when the map and the scores come from one
    forward pass (Grad-CAM).

    Parameters
    ----------
    layer : str, torch.nn.Module or None
        The layer whose output is explained, by dotted module name or object. None picks
        the last module whose output has positions (a conv block or a recurrent layer).
    channel_axis : "auto" or int
        Channel axis of that layer's output: ``"auto"`` is axis 1, or the last axis of a
        recurrent layer; give e.g. ``-1`` for other channels-last layers.
    """

    needs_gradients = True

    def __init__(self, model, layer=None, *, channel_axis="auto", **kwargs):
        super().__init__(model, **kwargs)
        if layer is not None:
            if not isinstance(layer, (str, nn.Module)):
                raise TypeError(f"layer must be a module name, a module or None, got {type(layer).__name__}")
            find_layer(self.model, layer)  # a wrong name fails here, listing the candidates
        if channel_axis != "auto" and (isinstance(channel_axis, bool) or not isinstance(channel_axis, int)):
            raise TypeError(f"channel_axis must be 'auto' or an int, got {channel_axis!r}")
        self.layer = layer
        self.channel_axis = channel_axis

    def params(self):
        layer = self.layer if self.layer is None or isinstance(self.layer, str) else find_layer(self.model, self.layer)[0]
        return {**super().params(), "layer": layer, "channel_axis": self.channel_axis}

    def _select_layer(self, x: torch.Tensor) -> tuple[str, nn.Module]:
        return resolve_positional_layer(self.model, self.layer, x, self.channel_axis, type(self).__name__)

    def _layer_map(self, x: torch.Tensor, target: torch.Tensor, name: str, module: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def _explain(self, x, target, scores, **options):
        if options:
            raise TypeError(f"{type(self).__name__}.explain() got unexpected options: {sorted(options)}")
        size = input_positions(x.shape, type(self).__name__)
        xt = self.adapter.to_tensor(x)
        tt = torch.as_tensor(target, device=xt.device)
        name, module = self._select_layer(xt[:8])
        raw = torch.cat([self._layer_map(xt[sl], tt[sl], name, module).detach()
                         for sl in chunk_slices(len(xt), self.adapter.batch_size)])
        values = upsample(raw, size)
        extras = {"layer_map": raw.cpu().numpy(), **self._extras(xt, tt, name, module)}
        return self._result(values, x, target, scores, extras=extras, meta={"layer": name})

    def _extras(self, x, target, name, module) -> dict:
        return {}


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
            name, module = find_layer(self.model, classifier, (nn.Linear,))
            if not isinstance(module, nn.Linear):
                raise ValueError(f"classifier {name!r} is a {type(module).__name__}, CAM needs an nn.Linear")
        self.classifier = classifier
        self._linear: nn.Linear | None = None

    def params(self):
        clf = self.classifier if self.classifier is None or isinstance(self.classifier, str) else find_layer(
            self.model, self.classifier)[0]
        return {**super().params(), "classifier": clf}

    def _select_layer(self, x):
        rows = probe(self.model, x)
        logits = rows[-1][2]
        linears = [(n, m) for n, m, a in rows[:-1] if isinstance(m, nn.Linear)]
        if self.classifier is not None:
            name, linear = find_layer(self.model, self.classifier)
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
            fname, module = find_layer(self.model, self.layer)
            with capture_activations(self.model, {fname: module}) as store, torch.no_grad():
                self.model(x)
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
        self._linear = linear
        return fname, module

    def _layer_map(self, x, target, name, module):
        with torch.no_grad():
            _, act = layer_output(self.model, x, name, module, self.model)
            act = to_channels_first(act, module, self.channel_axis)
            w = self._linear.weight[target]  # (n, C)
            return torch.einsum("nc...,nc->n...", act, w)

    def _extras(self, x, target, name, module):
        b = self._linear.bias
        bias = b[target] if b is not None else torch.zeros(len(target), device=x.device)
        return {"bias": bias.detach().cpu().numpy()}
