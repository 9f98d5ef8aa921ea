"""Relevance family against zennit (installed with --no-deps).

- Agreement: lumos LRP with the Epsilon, EpsilonPlus and EpsilonGammaBox composites and
  zennit's composites of the same name give the same relevance (target: rel diff <= 1e-5)
  on an MLP and a CNN with identical parameters. zennit's relevance at the output is set
  to the target logit (``attr_output = one_hot · logits``), as lumos does.
- Deep Taylor decomposition against zennit's z^B-first / z+ composite with biases zeroed.
- Speed: lumos/zennit wall time on the CNN with 256 MNIST images (target <= 1.0). lumos's
  time includes everything ``explain()`` does (scores, target selection, the probe pass
  that finds the layers, the numpy conversion).
- Floor (benchmarks/floors.py): one plain forward + backward pass to the input over the
  256 images. The rules' arithmetic in the backward pass (LRP's stabilised ratios,
  gamma's and z^B's extra convolutions) is the method's own cost on top of it, so
  ``lumos/floor`` of a composite with heavy rules exceeds 1 even without any plumbing.

zennit imports torchvision (for its ResNet canonizers) at import time; torchvision is not
installed, so a stub module is provided here, inside the benchmark only.
"""
from __future__ import annotations


import torch
from torch import nn

from benchmarks import floors
from benchmarks.harness import Harness
from lumos.data import load_mnist
from benchmarks.stubs import stub_torchvision
from lumos.methods.relevance import LRP, DeepTaylor, EpsilonComposite, EpsilonGammaBox, EpsilonPlus
from lumos.models.reference import MLP, CNN2d
from lumos.models.train import fit

N_IMAGES = 256
FLOOR_TARGET = 1.15  # issue #15 item 6, for LRP


def _import_zennit():
    stub_torchvision()
    from zennit import composites, rules, types as ztypes
    from zennit.attribution import Gradient
    return composites, rules, ztypes, Gradient


def _zennit_composites(low, high):
    zc, zr, zt, _ = _import_zennit()
    epsilon = zc.LayerMapComposite(zc.layer_map_base() + [(zt.Convolution, zr.Epsilon()), (nn.Linear, zr.Epsilon())])
    return {"Epsilon": epsilon, "EpsilonPlus": zc.EpsilonPlus(),
            "EpsilonGammaBox": zc.EpsilonGammaBox(low=low, high=high)}


def _lumos_composites(low, high):
    return {"Epsilon": EpsilonComposite(), "EpsilonPlus": EpsilonPlus(),
            "EpsilonGammaBox": EpsilonGammaBox(low=low, high=high)}


def _zennit_relevance(model, composite, x, target):
    *_, Gradient = _import_zennit()
    with Gradient(model=model, composite=composite) as attributor:
        _, rel = attributor(x, lambda out: torch.zeros_like(out).scatter_(1, target[:, None], out.gather(1, target[:, None])))
    return rel


def _models(data):
    torch.manual_seed(0)
    cnn = fit(CNN2d(1, 10, channels=(16, 32, 32)), data.X_train[:2000], data.y_train[:2000], epochs=2, seed=0)
    mlp = fit(nn.Sequential(nn.Flatten(), MLP(784, 10, hidden=(128, 64))), data.X_train[:2000], data.y_train[:2000],
              epochs=3, seed=0)
    return {"MLP": mlp, "CNN": cnn}


def run(h: Harness) -> None:
    data = load_mnist()
    x_np = data.X_test[:N_IMAGES]
    x = h.to(torch.from_numpy(x_np))
    dev = h.device
    low, high = 0.0, 1.0  # MNIST pixels lie in [0, 1]
    z_comps, l_comps = _zennit_composites(low, high), _lumos_composites(low, high)
    for model_name, model in _models(data).items():
        model = h.to(model.eval())
        target = model(x).argmax(1).detach()
        target_np = target.cpu().numpy()
        floor = floors.gradient_floor(model, x, target)
        for comp in ("Epsilon", "EpsilonPlus", "EpsilonGammaBox"):
            explainer = LRP(model, composite=l_comps[comp], batch_size=N_IMAGES, device=dev)
            z_comp = z_comps[comp]
            timed = model_name == "CNN"
            h.compare(
                "relevance", f"lrp_{comp.lower()}", lambda: explainer.explain(x_np, target=target_np),
                lambda: _zennit_relevance(model, z_comp, x, target), "zennit",
                setting=f"{model_name} MNIST, {N_IMAGES} images, float32",
                max_ratio=1.0 if timed else None, repeats=None if timed else 21,
                note="agreement target rel diff <= 1e-5", floor_fn=floor, floor_target=FLOOR_TARGET,
            )
        # Deep Taylor: z+ without bias on every weighted layer, z^B (no bias) on the first
        explainer_dt = DeepTaylor(model, input_bounds=(low, high), batch_size=N_IMAGES, device=dev)
        zc, zr, zt, _ = _import_zennit()
        z_dt = zc.SpecialFirstLayerMapComposite(
            layer_map=zc.layer_map_base() + [(zt.Convolution, zr.ZPlus(zero_params="bias")),
                                             (nn.Linear, zr.ZPlus(zero_params="bias"))],
            first_map=[(zt.Linear, zr.ZBox(low=low, high=high, zero_params="bias"))])
        h.compare("relevance", "deep_taylor", lambda: explainer_dt.explain(x_np, target=target_np),
                  lambda: _zennit_relevance(model, z_dt, x, target), "zennit",
                  setting=f"{model_name} MNIST, {N_IMAGES} images, float32", repeats=None if timed else 21,
                  note="zennit composite: ZBox first, ZPlus elsewhere, biases zeroed", floor_fn=floor)
