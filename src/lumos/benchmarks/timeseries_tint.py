"""tint (time_interpret, Enguehard 2023) run live beside lumos in :mod:`lumos.benchmarks.timeseries`.

Where ``time-interpret`` imports (it installs with ``--no-deps``: see ``pyproject.toml``'s ``bench``
extra), every lumos method that has a tint counterpart is run a second time through tint on the
same model, test inputs, target, baseline/background and budget, and scored with the same
white-box metrics. tint's experiments call captum for the plain attribution methods (DeepLift,
IG, GradientShap, Occlusion, Lime, ShapleyValueSampling) and its own classes for the temporal ones
(TemporalOcclusion, TemporalAugmentedOcclusion, AugmentedOcclusion, TemporalIntegratedGradients,
DynaMask, ExtremalMask); so does this module. tint sees the model in its (N, T, C) layout through
a transpose.

On the HMM, tint's ``TimeForwardTunnel`` explains every prefix ``x[:, :t+1]``; the benchmark
explains ``n_times`` of them, and the peer makes exactly the calls the tunnel makes at those steps
(target: the class predicted on the prefix). The methods lumos runs once over the whole sequence
(``temporal_occlusion``, ``temporal_ig``, the masks on every step's logits) get one tint call over
the whole sequence too (``TimeForwardTunnel`` for temporal occlusion, as tint's experiment).

Each peer is a function ``(net, x, target, ctx, options) -> (N, C, T) array`` (``options``: the
lumos method's options in this benchmark, so that both run the same budget).
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn


def version() -> str | None:
    """tint's version when ``tint.attr`` imports, else None."""
    try:
        import tint.attr  # noqa: F401
        from importlib.metadata import version as _v

        return _v("time-interpret")
    except Exception:  # noqa: BLE001 - absent or broken: the tables say so
        return None


class TimeLast(nn.Module):
    """The (N, C, T) model seen in tint's (N, T, C) layout."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z.transpose(1, 2))


def _tl(x) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 1)))


def _back(a) -> np.ndarray:
    if isinstance(a, tuple):
        a = a[0]
    return a.detach().transpose(1, 2).cpu().numpy().astype(np.float64)


def _quiet():
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning|captum|tint")
    warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LitLogger|litlogger).*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _trainer(epochs: int):
    from pytorch_lightning import Trainer

    return Trainer(max_epochs=int(epochs), logger=False, enable_progress_bar=False, enable_checkpointing=False,
                   enable_model_summary=False, accelerator="cpu", devices=1)


def _window(ctx) -> int:
    return 1 if ctx.cheap_model else ctx.window


# -- the peers ------------------------------------------------------------------------------------------
def _ig(net, x, target, ctx, opts):
    from captum.attr import IntegratedGradients

    return _back(IntegratedGradients(TimeLast(net)).attribute(_tl(x), baselines=0.0, target=target,
                                                              n_steps=opts.get("n_steps", 50),
                                                              return_convergence_delta=opts.get("delta", False)))


def _deeplift(net, x, target, ctx, opts):
    from captum.attr import DeepLift

    return _back(DeepLift(TimeLast(net)).attribute(_tl(x), baselines=0.0, target=target,
                                                   return_convergence_delta=opts.get("delta", False)))


def _gradient_shap(net, x, target, ctx, opts):
    from captum.attr import GradientShap

    torch.manual_seed(ctx.seed)
    background = opts.get("background", ctx.background)
    return _back(GradientShap(TimeLast(net)).attribute(_tl(x), baselines=_tl(background), target=target,
                                                       n_samples=opts.get("n_samples", 5),
                                                       stdevs=opts.get("stdevs", 0.0),
                                                       return_convergence_delta=opts.get("delta", False)))


def _occlusion(net, x, target, ctx, opts):
    if ctx.kind == "hmm":  # the cells of step t with the training mean: tint's TemporalOcclusion
        from tint.attr import TemporalOcclusion

        return _back(TemporalOcclusion(TimeLast(net)).attribute(_tl(x), sliding_window_shapes=(1,), target=target,
                                                                baselines=_tl(ctx.baseline[None])))
    from captum.attr import Occlusion

    w = _window(ctx)
    return _back(Occlusion(TimeLast(net)).attribute(_tl(x), sliding_window_shapes=(w, 1), strides=(w, 1),
                                                    baselines=_tl(ctx.baseline[None]), target=target,
                                                    perturbations_per_eval=16))


def _temporal_occlusion(net, x, target, ctx, opts):
    from tint.attr import TemporalOcclusion, TimeForwardTunnel

    return _back(TimeForwardTunnel(TemporalOcclusion(TimeLast(net))).attribute(
        _tl(x), sliding_window_shapes=(1,), target=target, baselines=_tl(ctx.baseline[None])))


def _augmented_occlusion(net, x, target, ctx, opts):
    torch.manual_seed(ctx.seed)
    n = opts.get("n_samples", 1)
    if ctx.kind == "hmm":
        from tint.attr import TemporalAugmentedOcclusion

        return _back(TemporalAugmentedOcclusion(TimeLast(net), data=_tl(ctx.background), n_sampling=n,
                                                is_temporal=True).attribute(_tl(x), sliding_window_shapes=(1,),
                                                                            target=target))
    from tint.attr import AugmentedOcclusion

    w = _window(ctx)
    return _back(AugmentedOcclusion(TimeLast(net), data=_tl(ctx.background), n_sampling=n).attribute(
        _tl(x), sliding_window_shapes=(w, 1), strides=(w, 1), target=target, perturbations_per_eval=16))


def _temporal_ig(net, x, target, ctx, opts):
    from tint.attr import TemporalIntegratedGradients

    return _back(TemporalIntegratedGradients(TimeLast(net)).attribute(_tl(x), baselines=0.0, target=target,
                                                                      n_steps=opts.get("n_steps", 50),
                                                              return_convergence_delta=opts.get("delta", False)))


def _lime(net, x, target, ctx, opts):
    from captum.attr import Lime

    torch.manual_seed(ctx.seed)
    groups = torch.as_tensor(np.ascontiguousarray(np.asarray(opts.get("groups", ctx.perturb_groups)).T))[None]
    baseline = opts.get("baseline", ctx.baseline)
    baseline = float(baseline) if np.ndim(baseline) == 0 else _tl(np.asarray(baseline)[None])
    return _back(Lime(TimeLast(net)).attribute(_tl(x), target=target, n_samples=opts.get("n_samples", 100),
                                               feature_mask=groups, baselines=baseline,
                                               perturbations_per_eval=16))


def _sampling_shapley(net, x, target, ctx, opts):
    from captum.attr import ShapleyValueSampling

    torch.manual_seed(ctx.seed)
    return _back(ShapleyValueSampling(TimeLast(net)).attribute(
        _tl(x), baselines=_tl(ctx.baseline[None]), target=target, n_samples=opts.get("n_permutations", 2),
        perturbations_per_eval=64))


def _dynamask(net, x, target, ctx, opts):
    from tint.attr import DynaMask
    from tint.attr.models import MaskNet

    class Regularised(MaskNet):  # pytorch-lightning >= 2 no longer calls tint's training_step_end
        def training_step(self, batch, batch_idx):
            return self.net.regularisation(self.step(batch=batch, batch_idx=batch_idx, stage="train"))

    _quiet()
    keep = opts.get("keep_ratio", 0.5)
    net_opts = {k: opts[k] for k in ("size_reg_factor_init", "size_reg_factor_dilation", "time_reg_factor")
                if k in opts}
    mask = Regularised(forward_func=TimeLast(net), perturbation=opts.get("perturbation", "gaussian_blur"),
                       keep_ratio=list(keep) if np.ndim(keep) else keep, lr=opts.get("lr", 1e-3),
                       batch_size=len(x), **net_opts)
    torch.manual_seed(ctx.seed)
    out, _ = DynaMask(TimeLast(net)).attribute(_tl(x), trainer=_trainer(opts.get("epochs", 100)), mask_net=mask,
                                               batch_size=len(x), return_best_ratio=True)
    return _back(out)


def _extremal_mask(net, x, target, ctx, opts):
    from tint.attr import ExtremalMask
    from tint.attr.models import ExtremalMaskNet
    from tint.models import MLP, RNN

    _quiet()
    c = x.shape[1]
    torch.manual_seed(ctx.seed)
    g = nn.Sequential(RNN(c, rnn="gru", hidden_size=c, bidirectional=True), MLP([2 * c, c]))
    mask = ExtremalMaskNet(forward_func=TimeLast(net), model=g, lr=opts.get("lr", 1e-3), batch_size=len(x))
    out = ExtremalMask(TimeLast(net)).attribute(_tl(x), target=None if opts.get("outputs") == "all" else target,
                                               trainer=_trainer(opts.get("epochs", 100)), mask_net=mask,
                                               batch_size=len(x))
    return _back(out)


PEERS: dict[str, tuple[str, Callable]] = {
    "integrated_gradients": ("captum IntegratedGradients (as tint's experiments)", _ig),
    "deeplift": ("captum DeepLift (tint's deep_lift)", _deeplift),
    "gradient_shap": ("captum GradientShap (tint's gradient_shap)", _gradient_shap),
    "occlusion": ("tint TemporalOcclusion (HMM) / captum Occlusion", _occlusion),
    "temporal_occlusion": ("tint TimeForwardTunnel(TemporalOcclusion)", _temporal_occlusion),
    "augmented_occlusion": ("tint TemporalAugmentedOcclusion (HMM) / AugmentedOcclusion", _augmented_occlusion),
    "temporal_ig": ("tint TemporalIntegratedGradients", _temporal_ig),
    "lime": ("captum Lime (tint's lime)", _lime),
    "sampling_shapley": ("captum ShapleyValueSampling", _sampling_shapley),
    "dynamask": ("tint DynaMask + MaskNet (regularisers restored)", _dynamask),
    "extremal_mask": ("tint ExtremalMask + ExtremalMaskNet (GRU g_θ)", _extremal_mask),
}
"""lumos method name -> (what tint runs, peer function)."""
