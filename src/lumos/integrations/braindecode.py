"""Explain braindecode models (EEGNet, ShallowFBCSPNet, Deep4Net...) with lumos.

braindecode models take the lumos time-series layout ``(N, channels, times)`` and are plain
``torch.nn.Module`` objects, so every gradient method applies as is
(``lumos.explain(model, x, "integrated_gradients")``). Two families need help, given here:

- **Layer maps (CAM, Grad-CAM, Grad-CAM++, Guided Grad-CAM).** Inside, braindecode models
  turn the epoch into an image ``(N, 1, channels, times)`` (EEGNet) or ``(N, 1, times,
  channels)`` (ShallowFBCSPNet) and convolve it in 2-D, so a layer's map has two position
  axes where the ``(N, C, T)`` input has one (time), and lumos refuses to upsample it.
  :func:`explain` hands the explainer the same image view of the input, so that the map is
  upsampled over (channel, time) in the model's own axis order, and returns values
  ``(N, C, T)`` again. ``layer="temporal"`` (the default) picks the temporal convolution
  (:func:`temporal_layer`).
- **LRP.** braindecode's shape modules (``Ensure4d``, einops ``Rearrange``, ``Expression``
  squeezes) and elementwise ``Expression`` nonlinearities (ELU, square, log) have no LRP rule
  in lumos. :func:`lrp_composite` adds one per module from a traced forward pass: shape-only
  modules pass relevance by their gradient (a permutation: exact), elementwise ones pass it
  unchanged (the standard rule for activations). Modules LRP cannot see into (a container
  computing with its children's weights without calling them, such as ShallowFBCSPNet's
  ``CombinedConv``; a final ``LogSoftmax``) raise a ``ValueError`` naming the layer.

Installation: braindecode 1.x requires ``torchaudio`` at import time, which is built for a
few torch versions only (pip would replace torch to satisfy it). With a torch that no
torchaudio matches, install braindecode without its dependencies, then the few its models
import::

    pip install "mne>=1.6"
    pip install --no-deps "braindecode==0.8.1"   # the last release whose models import without torchaudio
    pip install --no-deps skorch tabulate einops torchinfo docstring_inheritance h5py

(braindecode 1.x, with a matching torchaudio, also imports mne-bids, pydantic, wfdb and
linear-attention-transformer; its ``EEGNetv4`` is called ``EEGNet``.)

(``pip install lumos-xai[braindecode]`` lists them; pass ``--no-deps`` to keep pip from
replacing your torch.) Models are built from their arguments; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

_INSTALL = ("pip install --no-deps braindecode (see lumos.integrations.braindecode's docstring for the few "
            "packages its models import), or pip install lumos-xai[braindecode]")

#: names of the temporal convolution in braindecode's models, in the order they are tried
TEMPORAL_LAYERS = ("conv_temporal", "conv_time_spat", "conv_time", "temporal_conv", "conv_time_spat.conv_time")


def require():
    """Import braindecode or raise an ImportError that says how to install it."""
    try:
        import braindecode
    except ModuleNotFoundError as err:
        raise ImportError(f"lumos.integrations.braindecode needs braindecode: {_INSTALL}") from err
    return braindecode


def channel_info(model) -> dict:
    """What the model knows of its input: ``ch_names`` (from ``chs_info``, else None),
    ``sfreq``, ``n_chans``, ``n_times`` (None where the model was built without them)."""
    out = {}
    for key in ("n_chans", "n_times", "sfreq", "chs_info"):
        try:
            out[key] = getattr(model, key)
        except (ValueError, AttributeError):  # braindecode raises ValueError for unset properties
            out[key] = None
    chs = out.pop("chs_info")
    out["ch_names"] = [c["ch_name"] for c in chs] if chs else None
    return out


def _torch_input(model, x):
    import torch

    try:
        p = next(model.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = "cpu", torch.float32
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=dtype, device=device)


def trace(model, x) -> list[dict]:
    """Run ``model`` on ``x`` once (no gradient, eval mode kept) and list every module that
    ran, in order: ``name``, ``module``, ``input_shape``, ``output_shape``."""
    import torch

    rows, handles = [], []
    for name, module in model.named_modules():
        def hook(mod, inputs, output, name=name):
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            rows.append({"name": name, "module": mod, "input_shape": None if first is None else tuple(first.shape),
                         "output_shape": tuple(output.shape) if isinstance(output, torch.Tensor) else None})
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(_torch_input(model, x))
    finally:
        for h in handles:
            h.remove()
    return rows


def image_order(model, x) -> str:
    """The axis order of the model's internal image: ``"CT"`` (``(N, 1, channels, times)``,
    EEGNet) or ``"TC"`` (``(N, 1, times, channels)``, ShallowFBCSPNet), from the first 4-D
    activation with a single feature map."""
    x = np.asarray(x)
    n_c, n_t = x.shape[1], x.shape[2]
    if n_c == n_t:
        raise ValueError("cannot tell channels from times when both have the same length; pass order='CT' or 'TC'")
    for row in trace(model, x[:1]):
        s = row["output_shape"]
        if s is not None and len(s) == 4 and s[1] == 1:
            if s[2:] == (n_c, n_t):
                return "CT"
            if s[2:] == (n_t, n_c):
                return "TC"
    raise ValueError(f"{type(model).__name__} forms no (1, channels, times) image of its input; pass order= "
                     "or explain it with a gradient method")


def temporal_layer(model, x=None) -> str:
    """Name of the model's temporal convolution: the first of :data:`TEMPORAL_LAYERS` it has,
    else the first Conv2d whose kernel spans several samples in time only."""
    from torch import nn

    names = dict(model.named_modules())
    for name in TEMPORAL_LAYERS:
        if name in names:
            return name
    order = image_order(model, x) if x is not None else "CT"
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size
            if (order == "CT" and k[0] == 1 and k[1] > 1) or (order == "TC" and k[1] == 1 and k[0] > 1):
                return name
    raise ValueError(f"no temporal convolution found in {type(model).__name__}; pass layer= by name "
                     f"(layers: {', '.join(n for n in names if n)})")


def lrp_composite(model, x, base="epsilon"):
    """A lumos LRP composite for a braindecode model: ``base`` (a composite name or
    Composite) plus a rule for each of braindecode's parameter-free modules that lumos
    does not know, decided from a traced forward pass on ``x``:

    - a module that only moves values (``Ensure4d``, ``Rearrange``, an ``Expression`` that
      squeezes: same number of elements, another shape, or an einops pattern) gets
      ``Gradient()`` (relevance follows the permutation exactly);
    - an elementwise one (``Expression`` of ELU, square or log: same shape) gets ``Pass()``.

    Raises ``ValueError`` naming the layer for a softmax/log-softmax (explain the logits:
    build the model with ``add_log_softmax=False`` where it has that option, or drop the
    layer) and for a container whose children hold weights but did not run (it computes
    with them functionally, e.g. ShallowFBCSPNet's ``CombinedConv``), which LRP would
    otherwise cross by the gradient.
    """
    from torch import nn

    from lumos.methods.relevance.composites import (AVG_POOLS, CONVS, MAX_POOLS, PASSING, Composite,
                                                    as_composite)
    from lumos.methods.relevance.layers import Add
    from lumos.methods.relevance.rules import Gradient, Pass

    base = as_composite(base)
    model = without_parametrizations(model)
    known = PASSING + MAX_POOLS + AVG_POOLS + CONVS + (nn.Linear, Add, nn.modules.batchnorm._BatchNorm)
    rows = trace(model, np.asarray(x)[:1])
    ran = {id(r["module"]) for r in rows}
    names: dict = {}
    for r in rows:
        name, m = r["name"], r["module"]
        if not name or isinstance(m, known) or name in names:
            continue
        children = list(m.named_children())
        own = any(True for _ in m.parameters(recurse=False))
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            raise ValueError(f"LRP explains scores, not probabilities: layer {name!r} ({type(m).__name__}) normalises "
                             "the outputs; build the model without it (braindecode: add_log_softmax=False)")
        if children:
            idle = [f"{name}.{c}" for c, cm in children if id(cm) not in ran and any(True for _ in cm.parameters())]
            if idle:
                raise ValueError(
                    f"LRP cannot see inside layer {name!r} ({type(m).__name__}): it computes with the weights of "
                    f"{', '.join(idle)} without calling them, so no rule would apply and relevance would cross it "
                    "by the gradient; explain this model with a gradient method (integrated_gradients, saliency)")
            continue
        if own:
            continue  # a weighted layer of an unknown type: lumos's own check names it
        ins, outs = r["input_shape"], r["output_shape"]
        if ins is None or outs is None:
            continue
        if hasattr(m, "pattern") or (ins != outs and np.prod(ins) == np.prod(outs)):
            names[name] = Gradient()
        elif ins == outs:
            names[name] = Pass()
    return Composite(base.layer_map, name_map=names, first_map=base.first_map, name=f"{base.name}+braindecode")


def without_parametrizations(model):
    """A copy of ``model`` whose parametrized weights (``torch.nn.utils.parametrize``, e.g.
    braindecode 1.x's max-norm constraint on EEGNet's spatial convolution) are plain
    parameters holding their current constrained values; the model itself is unchanged.
    LRP traces the forward pass, in which a parametrization runs like a layer."""
    import copy

    from torch import nn
    from torch.nn.utils import parametrize

    if not any(parametrize.is_parametrized(m) for m in model.modules()):
        return model
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if parametrize.is_parametrized(m):
            # not parametrize.remove_parametrizations: it deletes the property from the injected
            # class, which the deep copy shares with the user's model
            values = {name: getattr(m, name).detach().clone() for name in m.parametrizations.keys()}
            m.__class__ = type(m).__bases__[0]  # parametrize injects a subclass of the layer's class
            del m._modules["parametrizations"]
            for name, v in values.items():
                m.register_parameter(name, nn.Parameter(v, requires_grad=False))
    return clone


class _ImageView:
    """Factory of an nn.Module that feeds the ``(N, 1, A, B)`` image view of the input to a
    braindecode model (kept as ``.model``, so its layers are ``model.<name>``)."""

    @staticmethod
    def build(model, order: str):
        from torch import nn

        class ImageView(nn.Module):
            def __init__(self, inner, order):
                super().__init__()
                self.model = inner
                self.order = order

            def forward(self, x):
                x = x[:, 0]
                return self.model(x.transpose(1, 2) if self.order == "TC" else x)

        return ImageView(model, order).train(model.training)


def _is_layer_map(method: str) -> bool:
    import lumos.methods  # noqa: F401  (registers the families)
    from lumos.core import registry
    from lumos.methods.cam.cam import LayerMapExplainer
    from lumos.methods.cam.guided import GuidedGradCAM

    cls = registry.get(method)
    return issubclass(cls, (LayerMapExplainer, GuidedGradCAM))


def _lrp_base(method: str):
    """The default composite of an LRP method that takes ``composite=``, else None."""
    import inspect

    from lumos.core import registry
    from lumos.methods.relevance.lrp import LRP

    cls = registry.get(method)
    if not issubclass(cls, LRP):
        return None
    p = inspect.signature(cls.__init__).parameters.get("composite")
    return None if p is None else p.default


def explain(model, x, method: str = "integrated_gradients", target=None, *, layer="temporal", order: str | None = None,
            ch_names=None, **options):
    """``lumos.explain`` for a braindecode model; ``x`` is ``(N, channels, times)``.

    Layer-map methods (``cam``, ``grad_cam``, ``grad_cam_plus_plus``, ``guided_grad_cam``)
    run on the image view of the input (see the module docstring); ``layer`` is a layer
    name of ``model`` or ``"temporal"`` (:func:`temporal_layer`); ``order`` overrides the
    detected image order. LRP methods explain :func:`without_parametrizations` of the model
    and, when they take ``composite=``, get :func:`lrp_composite` (with the given or default
    composite as its base) unless ``composite`` is a Composite already. Other methods run unchanged.
    The values are ``(N, channels, times)``; ``feature_names`` are ``ch_names`` or the
    model's channel names.
    """
    import lumos
    from lumos.methods.relevance.composites import Composite

    require()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"braindecode models take (N, channels, times); got shape {x.shape}")
    names = ch_names if ch_names is not None else channel_info(model)["ch_names"]
    if _is_layer_map(method):
        order = order or image_order(model, x)
        name = temporal_layer(model, x) if layer == "temporal" else layer
        view = _ImageView.build(model, order)
        img = x[:, None] if order == "CT" else np.ascontiguousarray(x.transpose(0, 2, 1))[:, None]
        exp = lumos.explain(view, img, method=method, target=target, layer=f"model.{name}", **options)
        values = np.broadcast_to(exp.values, img.shape)[:, 0]
        if order == "TC":
            values = values.transpose(0, 2, 1)
        params = {**exp.params, "layer": name, "image_order": order}
        return replace(exp, values=np.ascontiguousarray(values), inputs=x, params=params,
                       feature_names=None if names is None else list(names))
    default = _lrp_base(method)
    if default is not None:
        model = without_parametrizations(model)
        if not isinstance(options.get("composite"), Composite):
            options["composite"] = lrp_composite(model, x, options.get("composite", default))
    exp = lumos.explain(model, x, method=method, target=target, **options)
    return replace(exp, feature_names=None if names is None else list(names)) if names is not None else exp
