"""CAM variants with pytorch-grad-cam's definitions, for layers with any number of
position axes ((N, C, T) series, (N, C, H, W) images, volumes).

With ``A`` the layer's output ``(N, C, *positions)``, ``g = dy^c/dA`` and ``u`` a position:

- HiResCAM (Draelos & Carin 2020, arXiv:2011.08891): ``ReLU(sum_k g_k(u) A_k(u))``, the
  element-wise product, no pooling of the gradient. On a GAP -> linear head
  ``g_k(u) = w_k^c / Z`` (``Z`` positions), so HiResCAM equals Grad-CAM there and
  ``sum_u sum_k g A = y_c - b_c`` (the "faithfulness" property the paper states).
- LayerCAM (Jiang et al. 2021): ``ReLU(sum_k ReLU(g_k(u)) A_k(u))``.
- XGradCAM (Fu et al. 2020, arXiv:2008.02312): channel weights
  ``alpha_k = sum_u g_k(u) A_k(u) / sum_u A_k(u)`` (0 where ``sum_u A_k`` is 0).
- EigenCAM (Muhammad & Yeasin 2020, arXiv:2008.00299): the projection of the positions'
  centred activations ``(Z, C)`` on their first right singular vector; EigenGradCAM the same
  of ``g * A``. The sign of a singular vector is not identified: ``sign="svd"`` (default)
  keeps the decomposition's, as pytorch-grad-cam's ``get_2d_projection`` does, ``sign="max"``
  flips a map whose ``|min| > |max|`` (its ``get_2d_projection_with_sign_correction``),
  which makes the map invariant to the sign of the activations.
- ScoreCAM (Wang et al. 2020, arXiv:1910.01279): each channel, upsampled to the input
  (linear interpolation with ``align_corners=True``, as ``nn.UpsamplingBilinear2d``) and
  min-max scaled to [0, 1] (``/(max - min + 1e-8)``), masks the input; ``alpha = softmax_k``
  of the target score of the masked inputs (pytorch-grad-cam's softmax over channels of the
  raw score, not the paper's baseline-subtracted probabilities).
- AblationCAM (Desai & Ramaswamy 2020): ``alpha_k = (y_c - y_c^{(k)}) / y_c`` where
  ``y_c^{(k)}`` is the score with channel ``k`` of the layer set to 0 (pytorch-grad-cam sets 0
  when the layer's minimum is 0, e.g. after a ReLU; lumos always zeroes); 0 where ``y_c = 0``.
- FullGrad (Srinivas & Fleuret 2019, arXiv:1905.00780): ``psi(|x * dy/dx|)`` summed over input
  channels plus, for every conv and batch-norm layer with a bias, ``sum_k psi(|b_k g_k|)``,
  with ``psi`` min-max scaling each map to [0, 1] (``/(max + 1e-7)`` after subtracting the
  minimum, as pytorch-grad-cam) at its own resolution, then upsampling it to the input.
  The input gradient and every bias gradient come from one backward pass. Batch norm's bias
  is its effective one, ``beta - mu gamma / sqrt(var + eps)``. Linear layers have no positions
  and are left out, as in pytorch-grad-cam.

Every map but FullGrad's is ``ReLU``-ed like pytorch-grad-cam's (``relu=False`` keeps the
sign); min-max scaling and resizing the result as pytorch-grad-cam does gives its output.
ScoreCAM and AblationCAM evaluate the ``n x C`` masked or ablated rows of a chunk in
model calls of the call's row budget (chunks are sized for ``C`` rows per input), not one
call per channel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.batching import chunk_slices
from lumos.core.hooks import capture_activations
from lumos.core.registry import register
from lumos.methods.base import Chunk, Explainer, State
from lumos.methods.cam.cam import LayerMapExplainer, layer_output
from lumos.methods.cam.gradcam import GradCAM, activation_and_gradient
from lumos.methods.cam.layers import _MODES, input_positions, to_channels_first, upsample


def _check_scores(scores: torch.Tensor, method: str) -> None:
    if not scores.is_floating_point():
        raise ValueError(f"the model returns {scores.dtype} outputs (labels or an argmax), not scores; {method} "
                         "explains scores: return the logits, or use a model-agnostic method")


def _bcast(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.view(*v.shape, *([1] * (ndim - v.ndim)))


def principal_projection(a: torch.Tensor, sign: str = "svd") -> torch.Tensor:
    """``(N, C, *positions) -> (N, *positions)``: each row's activations as ``(Z, C)``
    (positions by channels), centred over positions, projected on their first right
    singular vector (pytorch-grad-cam's ``get_2d_projection``); NaNs are read as 0.

    ``sign="svd"``: the singular vector's sign as LAPACK returns it through
    ``numpy.linalg.svd`` (computed on the CPU in the activations' precision, as
    pytorch-grad-cam does, so the maps are the same; torch's SVD returns other signs for about
    half the rows). ``sign="max"`` flips a projection whose ``|min| > |max|``, a sign that does
    not depend on the decomposition (or on the sign of the activations)."""
    import numpy as np

    if sign not in ("svd", "max"):
        raise ValueError(f"sign must be 'svd' or 'max', got {sign!r}")
    arr = a.detach().cpu().numpy().copy()
    arr[np.isnan(arr)] = 0
    m = arr.reshape(arr.shape[0], arr.shape[1], -1).transpose(0, 2, 1)  # (N, Z, C)
    m = m - m.mean(axis=1, keepdims=True)
    # (N, min(Z, C), C); row 0 is the first right singular vector. The reduced SVD returns the same
    # vectors and signs as pytorch-grad-cam's full one without forming the (Z, Z) left factor.
    vt = np.linalg.svd(m, full_matrices=False)[2]
    proj = np.einsum("nzc,nc->nz", m, vt[:, 0, :])
    if sign == "max":
        flip = np.abs(proj.min(1)) > np.abs(proj.max(1))
        proj = np.where(flip[:, None], -proj, proj)
    out = torch.from_numpy(np.ascontiguousarray(proj, dtype=arr.dtype)).to(a.device)
    return out.view(a.shape[0], *a.shape[2:])


class _ElementwiseCAM(GradCAM):
    """A map computed from ``A`` and ``g`` per position (no channel weights)."""

    def combine(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def layer_map(self, x, targets, state):
        act, grad, scores, t = activation_and_gradient(state, x, targets, self.channel_axis)
        cam = self.combine(act, grad)
        return scores, t, torch.relu(cam) if self.relu else cam, {}


@register("hires_cam", "hirescam")
class HiResCAM(_ElementwiseCAM):
    """HiResCAM ``ReLU(sum_k g_k(u) A_k(u))`` (Draelos & Carin 2020); on a GAP -> linear
    head it equals Grad-CAM, and the signed map (``relu=False``) sums to ``y_c - b_c``."""

    def combine(self, act, grad):
        return (grad * act).sum(1)


@register("layer_cam", "layercam")
class LayerCAM(_ElementwiseCAM):
    """LayerCAM ``ReLU(sum_k ReLU(g_k(u)) A_k(u))`` (Jiang et al. 2021)."""

    def combine(self, act, grad):
        return (torch.relu(grad) * act).sum(1)


@register("xgrad_cam", "xgradcam")
class XGradCAM(GradCAM):
    """XGrad-CAM: Grad-CAM with ``alpha_k = sum_u g_k(u) A_k(u) / sum_u A_k(u)`` (Fu et al. 2020)."""

    def channel_weights(self, act, grad):
        total = act.flatten(2).sum(2)
        num = (grad * act).flatten(2).sum(2)
        return torch.where(total != 0, num / torch.where(total != 0, total, torch.ones_like(total)),
                           torch.zeros_like(num))


class _EigenBase(GradCAM):
    def __init__(self, model, layer=None, *, sign: str = "svd", relu: bool = True, channel_axis="auto", **kwargs):
        super().__init__(model, layer, relu=relu, channel_axis=channel_axis, **kwargs)
        if sign not in ("svd", "max"):
            raise ValueError(f"sign must be 'svd' or 'max', got {sign!r}")
        self.sign = sign

    def params(self):
        return {**super().params(), "sign": self.sign}

    def _finish_map(self, m):
        return torch.relu(m) if self.relu else m


@register("eigen_cam", "eigencam")
class EigenCAM(_EigenBase):
    """EigenCAM: the layer's activations projected on their first principal direction
    (no gradients, no target; see :func:`principal_projection` for ``sign``)."""

    def layer_map(self, x, targets, state):
        with torch.no_grad():
            scores, act = layer_output(state.call.model, x, state.name, state.module, state.adapter.forward)
            _check_scores(scores, type(self).__name__)
            t = targets(scores)
            act = to_channels_first(act, state.module, self.channel_axis)
            return scores, t, self._finish_map(principal_projection(act, self.sign)), {}


@register("eigen_grad_cam", "eigengradcam")
class EigenGradCAM(_EigenBase):
    """EigenGradCAM: the first principal projection of ``g * A``."""

    def layer_map(self, x, targets, state):
        act, grad, scores, t = activation_and_gradient(state, x, targets, self.channel_axis)
        return scores, t, self._finish_map(principal_projection(grad * act, self.sign)), {}


def _blocked_scores(state, block_rows, n_rows: int, numel: int, row_of, t: torch.Tensor,
                    model_hook=None) -> torch.Tensor:
    """Target scores of ``n_rows`` rows, ``block_rows(sl)`` building the rows ``sl`` of
    ``numel`` elements each (``row_of[i]``: which input row ``i`` copies), evaluated in as few
    blocks as the call's forward row budget allows, all of (about) one size: 320 rows with a
    budget of 167 are two calls of 160, not 167 + 153 (nor, for 170 rows, 167 + 3: a call of
    a few rows costs nearly as much as a full one)."""
    per = state.call.rows(numel, "forward")
    per = -(-n_rows // -(-n_rows // per)) if n_rows else per  # ceil(n / number of blocks)
    out = []
    with torch.no_grad():
        for start in range(0, n_rows, per):
            sl = slice(start, min(start + per, n_rows))
            rows = block_rows(sl)
            ctx = model_hook(sl) if model_hook is not None else _null()
            with ctx:
                s = state.adapter.forward(rows)
            out.append(s.gather(1, t[row_of[sl]].view(-1, 1))[:, 0])
    return torch.cat(out)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _PerturbedCAM(GradCAM):
    """Channel weights from ``C`` model rows per input (ScoreCAM, AblationCAM)."""

    def prepare(self, x, call):
        state = super().prepare(x, call)
        if getattr(state, "layer_shape", None) is not None:  # the layer's output on the probe rows: its channel count
            state.layer_channels = int(state.layer_shape[1])
            return state
        with torch.no_grad():
            _, act = layer_output(call.model, call.adapter.to_tensor(x[:1]), state.name, state.module,
                                  call.adapter.forward)
        state.layer_channels = int(to_channels_first(act, state.module, self.channel_axis).shape[1])
        return state

    def expansion(self, state):
        return state.layer_channels

    def layer_map(self, x, targets, state):
        with torch.no_grad():
            scores, act = layer_output(state.call.model, x, state.name, state.module, state.adapter.forward)
            _check_scores(scores, type(self).__name__)
            t = targets(scores)
            raw = act
            act = to_channels_first(act, state.module, self.channel_axis)
            w = self.perturbed_weights(x, act, raw, scores, t, state)
            cam = torch.einsum("nc...,nc->n...", act, w)
        return scores, t, torch.relu(cam) if self.relu else cam, {"channel_weights": w}


@register("score_cam", "scorecam")
class ScoreCAM(_PerturbedCAM):
    """Score-CAM with pytorch-grad-cam's weights: ``softmax_k`` over channels of the target
    score of ``x * s_k``, ``s_k`` channel ``k`` upsampled to the input (``align_corners=True``)
    and min-max scaled. No gradients."""

    def plan(self, x, state):
        """Chunks of the forward row budget's inputs: a chunk's masked rows are built block by
        block from the layer's output (:meth:`perturbed_weights`), so a chunk holds its clean
        forward pass and one block of masked rows, not its ``n x C`` masked copies."""
        per = state.call.budget.inputs_per_chunk(x[0].size, 1, "forward")
        return list(chunk_slices(x.shape[0], per))

    def perturbed_weights(self, x, act, raw, scores, t, state):
        n, c = act.shape[:2]
        size = tuple(x.shape[2:])
        mode = _MODES.get(len(size))
        if mode is None or act.ndim - 2 != len(size):
            raise ValueError(f"ScoreCAM needs a layer with as many position axes as the input ({len(size)}); "
                             f"got a layer output {tuple(act.shape)}")
        # row i * c + k is channel k of input i: the maps as the channels of one sample (the
        # interpolation vectorises over channels; one plane per sample is 2-3x slower)
        maps = act.reshape(1, n * c, *act.shape[2:])
        row_of = torch.arange(n, device=x.device).repeat_interleave(c)

        def masked(sl):
            """``x * s_k`` for the rows ``sl``: their channel maps upsampled and min-max
            scaled only when the block runs (each map on its own, whatever the block)."""
            up = F.interpolate(maps[:, sl], size=size, mode=mode, align_corners=True)[0]
            if up.untyped_storage().data_ptr() == act.untyped_storage().data_ptr():
                up = up.clone()  # never scale the activations themselves in place
            flat = up.view(up.shape[0], -1)  # scaled in place: (up - min) / (max - min + 1e-8)
            lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
            flat.sub_(lo).div_(hi.sub_(lo).add_(1e-8))
            return x[row_of[sl]] * up[:, None]

        s = _blocked_scores(state, masked, n * c, x[0].numel(), row_of, t).view(n, c)
        return torch.softmax(s, dim=1)


def _from_channels_first(t: torch.Tensor, module: nn.Module, channel_axis) -> torch.Tensor:
    if channel_axis == "auto":
        if isinstance(module, nn.RNNBase):
            t = t.movedim(1, -1)
            return t if module.batch_first else t.transpose(0, 1)
        return t
    return t.movedim(1, channel_axis)


class _replace_output:
    """The layer's output (the first element of a tuple) replaced by ``value``. Modules that
    return one tensor are not run at all: their ``forward`` returns ``value`` (on the call's
    private view of the model, restored on exit), so the ablated rows cost only the layers
    after it, as pytorch-grad-cam's ``AblationLayer``; others (recurrent layers) run and a
    forward hook swaps the output."""

    def __init__(self, module, value):
        self.module, self.value, self.handle, self.patched = module, value, None, False

    def __enter__(self):
        if not isinstance(self.module, nn.RNNBase):
            self.module.forward = lambda *args, **kwargs: self.value
            self.patched = True
            return self

        def hook(module, inputs, output):
            if isinstance(output, tuple):
                return (self.value, *output[1:])
            return self.value

        self.handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        if self.patched:
            del self.module.forward
        if self.handle is not None:
            self.handle.remove()
        return False


@register("ablation_cam", "ablationcam")
class AblationCAM(_PerturbedCAM):
    """Ablation-CAM: ``alpha_k = (y_c - y_c^{(k)}) / y_c``, channel ``k`` of the layer zeroed
    (Desai & Ramaswamy 2020). The ``n x C`` ablated rows of a chunk run through the model
    with a forward hook putting the ablated activations in place of the layer's output."""

    def perturbed_weights(self, x, act, raw, scores, t, state):
        n, c = act.shape[:2]
        eye = torch.eye(c, dtype=act.dtype, device=act.device)
        keep = 1 - eye  # (C, C): row k zeroes channel k
        ablated = (act[:, None] * _bcast(keep, act.ndim)[None]).reshape(n * c, *act.shape[1:])
        ablated = _from_channels_first(ablated, state.module, self.channel_axis)
        if isinstance(state.module, nn.RNNBase) and self.channel_axis == "auto" and not state.module.batch_first:
            raise ValueError("AblationCAM on a recurrent layer needs batch_first=True")
        rows = x.repeat_interleave(c, dim=0)
        row_of = torch.arange(n, device=x.device).repeat_interleave(c)

        def hook(sl):
            return _replace_output(state.module, ablated[sl])

        y_abl = _blocked_scores(state, rows.__getitem__, n * c, x[0].numel(), row_of, t, hook).view(n, c)
        y = scores.gather(1, t.view(-1, 1))
        safe = torch.where(y != 0, y, torch.ones_like(y))
        return torch.where(y != 0, (y - y_abl) / safe, torch.zeros_like(y_abl))


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _unit_maps(m: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ``scale_cam_image`` per map over the trailing position axes:
    ``(m - min) / (1e-7 + max(m - min))``."""
    lead = m.shape[:2]
    flat = m.flatten(2)
    flat = flat - flat.amin(2, keepdim=True)
    flat = flat / (1e-7 + flat.amax(2, keepdim=True))
    return flat.view(*lead, *m.shape[2:])


def _effective_bias(module: nn.Module) -> torch.Tensor:
    if isinstance(module, _NORMS):
        if module.running_mean is None:
            return module.bias
        w = module.weight if module.weight is not None else torch.ones_like(module.running_mean)
        return module.bias - module.running_mean * w / torch.sqrt(module.running_var + module.eps)
    return module.bias


@register("full_grad", "fullgrad")
class FullGrad(Explainer):
    """FullGrad saliency (Srinivas & Fleuret 2019) with pytorch-grad-cam's post-processing:
    ``sum_c psi(|x dy/dx|)_c + sum_layers sum_k psi(|b_k dy/dz_k|)``, over every conv and
    batch-norm layer with a bias (``z`` its output), each ``psi``-scaled map upsampled to the
    input (linear per axis, ``align_corners=False``). One forward and one backward pass per
    chunk. ``extras["layers"]`` counts the bias layers used. Values are non-negative."""

    needs_gradients = True
    needs_layer = True
    torchscript = False
    layouts = ("timeseries", "image")

    def prepare(self, x, call):
        size = input_positions(x.shape, type(self).__name__)
        layers = {n: m for n, m in call.model.named_modules()
                  if isinstance(m, _CONVS + _NORMS) and getattr(m, "bias", None) is not None}
        if not layers:
            raise ValueError("FullGrad needs conv or batch-norm layers with a bias; this model has none")
        return State(call, layers=layers, size=size)

    def attribute_chunk(self, x, targets, state):
        xt = state.adapter.to_tensor(x)
        with torch.enable_grad():
            xg = xt.detach().requires_grad_(True)
            with capture_activations(state.call.model, state.layers) as store:
                scores = state.adapter.forward(xg)
            t = targets(scores.detach())
            selected = scores.gather(1, t.view(-1, 1)).sum()
            if not selected.requires_grad:
                raise ValueError("the model's output has no gradient path to its input; use a model-agnostic method")
            names = [n for n in state.layers if n in store and isinstance(store[n], torch.Tensor)]
            grads = torch.autograd.grad(selected, [xg, *(store[n] for n in names)], allow_unused=True)
        gx = grads[0] if grads[0] is not None else torch.zeros_like(xg)
        state.call.note_gradient(gx)
        total = _unit_maps((gx * xt).abs().detach()).sum(1)
        for name, g in zip(names, grads[1:]):
            if g is None or g.ndim < 3:
                continue
            b = _effective_bias(state.layers[name]).detach()
            m = _unit_maps((_bcast(b, g.ndim - 1)[None] * g).abs())
            total = total + upsample(m.sum(1), state.size)[:, 0]  # resizing is linear: sum, then resize
        return Chunk(total[:, None], scores.detach(), t, {"layers": torch.full((len(t),), len(names))})

