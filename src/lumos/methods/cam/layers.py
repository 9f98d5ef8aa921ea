"""Layer maps for CAM-style methods, for any number of spatial or temporal axes.

A layer's output is read as ``(N, C, *positions)``: channel axis 1 and every remaining
axis a position (time for ``(N, C, T)`` series, rows and columns for images). Recurrent
layers (``nn.RNN``/``GRU``/``LSTM``) return ``(N, T, H)`` (or ``(T, N, H)``); they are
detected and moved to ``(N, H, T)``. Any other channels-last layer can be declared with
``channel_axis``. Maps are brought to the input's positions with
``torch.nn.functional.interpolate`` (linear in 1-D, bilinear in 2-D, trilinear in 3-D,
``align_corners=False``); no code path depends on the number of axes otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.hooks import capture_activations, find_layer, named_layers
from lumos.core.model import _first, run_model

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def to_channels_first(act: torch.Tensor, module: nn.Module, channel_axis="auto") -> torch.Tensor:
    """Return ``act`` as ``(N, C, *positions)``.

    ``channel_axis="auto"``: axis 1, except for recurrent layers whose outputs are
    channels-last (batch first or not). An int names the channel axis of a batch-first
    output explicitly (e.g. ``-1`` for a transformer's ``(N, T, D)``).
    """
    if not isinstance(act, torch.Tensor):
        raise TypeError(
            f"layer {type(module).__name__} returned {type(act).__name__}, not a tensor "
            "(a PackedSequence?); call the model without packing or choose another layer"
        )
    if channel_axis == "auto":
        if isinstance(module, nn.RNNBase):
            if not module.batch_first:
                act = act.transpose(0, 1)
            return act.movedim(-1, 1)
        return act
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int):
        raise TypeError(f"channel_axis must be 'auto' or an int, got {channel_axis!r}")
    if not -act.ndim < channel_axis < act.ndim or channel_axis % act.ndim == 0:
        raise ValueError(f"channel_axis {channel_axis} is not a non-batch axis of a {act.ndim}-D layer output")
    return act.movedim(channel_axis, 1)


def has_positions(act: torch.Tensor) -> bool:
    """A channels-first output with at least one position axis and more than one position."""
    return act.ndim >= 3 and act[0, 0].numel() > 1


def probe(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """Run one forward pass on ``x`` and return ``(name, module, output)`` for every named
    module that returned a tensor, in the order the outputs were produced (outputs in the
    ``"auto"`` channels-first layout), and last ``("", model, model output)``."""
    layers = named_layers(model)
    with capture_activations(model, layers) as store, torch.no_grad():
        out = _first(run_model(model, x))
    rows = []
    for name, act in store.items():
        module = layers[name]
        if not isinstance(act, torch.Tensor):
            continue
        rows.append((name, module, to_channels_first(act, module)))
    rows.append(("", model, out))
    return rows


def positional_layers(rows) -> list[str]:
    """Names of probed layers whose output has positions (excluding channels-last linears)."""
    return [name for name, m, a in rows[:-1] if has_positions(a) and not isinstance(m, nn.Linear)]


def resolve_positional_layer(model: nn.Module, layer, x1: torch.Tensor, channel_axis, method: str,
                             keep: dict | None = None):
    """The ``(name, module)`` whose output gives the map: ``layer`` when given, otherwise
    the last module (in execution order) whose output has positions. Raises a
    ``ValueError`` listing the candidate layers when there is none or ``layer`` has none.
    ``keep`` (a dict) receives ``"output"``: the layer's output on ``x1`` as
    ``(N, C, *positions)`` under ``channel_axis``, when the probe read it that way (so a
    caller needing e.g. the channel count runs no pass of its own)."""
    def shown() -> str:  # the candidates, probed only when a message needs them (one more forward pass)
        names = positional_layers(probe(model, x1))
        return ", ".join(names[-20:]) or "(none: the model has no layer with a spatial or temporal axis)"

    if layer is None:
        rows = probe(model, x1)
        candidates = positional_layers(rows)
        if not candidates:
            raise ValueError(f"{method} needs a layer with a spatial or temporal axis; candidates: {shown()}")
        name = candidates[-1]
        if keep is not None and channel_axis == "auto":
            keep["output"] = next(a for n, _, a in rows if n == name)
        return name, named_layers(model)[name]
    name, module = find_layer(model, layer)
    with capture_activations(model, {name: module}) as store, torch.no_grad():
        run_model(model, x1)
    if name not in store:
        raise ValueError(f"layer {name!r} did not run during the forward pass; candidates: {shown()}")
    act = to_channels_first(store[name], module, channel_axis)
    if not has_positions(act):
        raise ValueError(
            f"layer {name!r} outputs shape {tuple(act.shape)} (as N, C, positions) with no spatial or "
            f"temporal axis, so {method} cannot localise on it; candidates: {shown()}"
        )
    if keep is not None:
        keep["output"] = act
    return name, module


def upsample(raw: torch.Tensor, size: tuple[int, ...], channels: int | None = None) -> torch.Tensor:
    """Bring ``raw`` ``(N, *positions)`` to ``(N, 1, *size)``.

    Singleton position axes are dropped when the layer has more position axes than the
    input (EEG nets collapse the electrode axis to 1). Interpolation is linear per axis
    (``align_corners=False``), so a map already at the input size is returned unchanged.
    """
    m = raw.unsqueeze(1)
    if channels is not None and raw.ndim - 1 == len(size) + 1 and raw.shape[1] == channels and channels > 1:
        # a map over (input channels, positions...): e.g. EEGNet's temporal conv sees the (C, T) epoch as an
        # image; it is brought to (C, *size) and keeps the channel axis, shaped like the input
        full = (channels, *size)
        if tuple(raw.shape[1:]) != full:
            m = F.interpolate(m, size=full, mode=_MODES[len(full)], align_corners=False)
        return m[:, 0]
    if m.ndim - 2 != len(size):
        squeezed = [s for s in m.shape[2:] if s != 1]
        if len(squeezed) == len(size):
            m = m.reshape(m.shape[0], 1, *squeezed)
        else:
            raise ValueError(
                f"a map over positions {tuple(raw.shape[1:])} cannot be brought to input positions {tuple(size)}: "
                "they have a different number of axes"
            )
    if tuple(m.shape[2:]) == tuple(size):
        return m
    mode = _MODES.get(len(size))
    if mode is None:
        raise ValueError(f"interpolation supports 1 to 3 position axes, the input has {len(size)}")
    return F.interpolate(m, size=tuple(size), mode=mode, align_corners=False)


def input_positions(x_shape: tuple[int, ...], method: str) -> tuple[int, ...]:
    if len(x_shape) < 3:
        raise ValueError(
            f"{method} needs inputs shaped (N, C, positions...) such as (N, C, T) or (N, C, H, W); "
            f"got shape {tuple(x_shape)}"
        )
    return tuple(x_shape[2:])
