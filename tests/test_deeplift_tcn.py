"""DeepLIFT on the Ismail et al. TCN (#16): why lumos and captum/tint differ there, and that
lumos is the one that keeps DeepLIFT's definition.

The finding (``lumos bench timeseries --quick``, RareFeature x TCN: AUP lumos 0.747 vs tint
0.745; PositionalTime x Transformer: 0.270 vs 0.128): both networks pool over time with
``nn.AdaptiveMaxPool1d``, and captum 0.9's DeepLift has no rule for it (its table has
``MaxPool1d/2d/3d`` only), so the pool passes its ordinary gradient and captum's
contributions do not sum to f(x) − f(x'). Everything else in the TCN (causal padding, the
dilated convolutions, the residual addition and the 1x1 downsample, eval-mode dropout, weight
norm) is linear and both libraries treat it alike. Checked here on a tiny seeded TCN in float64
with random inputs and references (``benchmarks/deeplift_tcn_reference.py``):

- lumos: Σ C = f(x) − f(x') to float rounding, with max and with average pooling;
- lumos equals an independent construction of the Rescale rule (Shrikumar et al. 2017): the
  gradient of the network in which every ReLU is replaced by its secant Δy/Δx (and the max
  pool by captum's max-pool rule: max(y, y') − y' onto the input's maximum, y − max(y, y')
  onto the reference's), times Δx;
- lumos equals captum where captum applies its rules (average pooling as is; max pooling
  written as ``Copy -> MaxPool1d(T)``, the same function, since a ``MaxPool1d`` right after a
  ReLU would lose the ReLU's rule, captum #1104), live and from the frozen reference;
- captum on the unmodified TCN equals the same construction with the adaptive pool given its
  gradient (the max's input only), and misses summation-to-delta;
- the transformer: with average pooling lumos and captum agree exactly (both pass the
  ordinary gradient through layer norm and attention, which neither has a rule for), so its
  table's difference is the max pool's rule too.
"""
from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from benchmarks import deeplift_tcn_reference as ref
from lumos.models.temporal import TransformerClassifier

FROZEN = json.loads(ref.REFERENCE.read_text())


def lumos_deeplift(model, x, baseline, strict=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = lumos.DeepLift(model, strict=strict).explain(x, target=ref.TARGET, baseline=baseline)
    return np.asarray(exp.values), np.asarray(exp.delta)


def score_change(model, x, baseline):
    with torch.no_grad():
        return (model(torch.from_numpy(x)) - model(torch.from_numpy(baseline)))[:, ref.TARGET].numpy()


# -- an independent Rescale rule: the gradient of the secant network ---------------------------
class Secant(nn.Module):
    """A fixed elementwise linear map ``h -> s ⊙ h`` (the secant slope of a ReLU)."""

    def __init__(self, slope):
        super().__init__()
        self.slope = slope

    def forward(self, h):
        return h * self.slope


class SecantMaxPool(nn.Module):
    """A fixed linear map over time ``a -> Σ_t W[c, t] a[c, t]`` (N, C, 1)."""

    def __init__(self, weights):
        super().__init__()
        self.weights = weights

    def forward(self, a):
        return (a * self.weights).sum(-1, keepdim=True)


def secant_deeplift(model, x, baseline, pool_rule="deeplift"):
    """DeepLIFT built from its definition, without hooks: a forward pass over the inputs and
    over the references records every ReLU's and the pool's input and output; each ReLU is
    replaced by ``Secant(Δy/Δx)`` (the Rescale rule; the gradient where Δx = 0) and the pool by
    the linear map its rule defines; the contributions are the gradient of that linear network
    at x times Δx. ``pool_rule="gradient"``: the pool's ordinary gradient (what captum 0.9
    applies to ``AdaptiveMaxPool1d``)."""
    model = copy.deepcopy(model)
    n = len(x)
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, (i[0].detach(), o.detach())))
             for m in model.modules() if isinstance(m, (nn.ReLU, nn.AdaptiveMaxPool1d))]
    with torch.no_grad():
        model(torch.cat([torch.from_numpy(x), torch.from_numpy(baseline)]))
    for h in hooks:
        h.remove()
    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if m not in seen:
                continue
            a, y = seen[m]
            da, dy = a[:n] - a[n:], y[:n] - y[n:]
            if isinstance(m, nn.ReLU):
                slope = torch.where(da.abs() < 1e-10, (a[:n] > 0).to(a.dtype), dy / da)
                setattr(parent, name, Secant(slope))
                continue
            w = torch.zeros_like(a[:n])
            i_x, i_ref = a[:n].argmax(-1, keepdim=True), a[n:].argmax(-1, keepdim=True)
            if pool_rule == "gradient":
                w.scatter_(-1, i_x, 1.0)
            else:  # captum's max-pool rule (the part of Δy each maximum carries, over its Δa)
                top = torch.maximum(y[:n], y[n:])
                w.scatter_add_(-1, i_x, (top - y[n:]) / da.gather(-1, i_x))
                w.scatter_add_(-1, i_ref, (y[:n] - top) / da.gather(-1, i_ref))
            setattr(parent, name, SecantMaxPool(w))
    xt = torch.from_numpy(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xt)[:, ref.TARGET].sum(), xt)
    return (grad * (xt - torch.from_numpy(baseline))).detach().numpy()


# -- lumos: definition ---------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_tcn_deeplift_sums_to_delta(pool):
    model = ref.tcn(pool)
    x, base = ref.inputs()
    values, delta = lumos_deeplift(model, x, base)
    change = score_change(model, x, base)
    assert np.abs(change).min() > 1e-2  # a real change to decompose
    np.testing.assert_allclose(values.reshape(len(x), -1).sum(1), change, rtol=0, atol=1e-12)
    np.testing.assert_allclose(delta, 0.0, atol=1e-12)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_tcn_deeplift_is_the_rescale_rule(pool):
    model = ref.tcn(pool)
    x, base = ref.inputs()
    values, _ = lumos_deeplift(model, x, base)
    np.testing.assert_allclose(values, secant_deeplift(model, x, base), rtol=0, atol=1e-12)


def test_the_residual_block_padding_dropout_and_weight_norm_are_linear_for_deeplift():
    """Weight norm reparametrises the convolution weights only: the same Rescale values;
    dropout (eval mode) and the causal padding pass the multipliers as gradients."""
    from torch.nn.utils.parametrizations import weight_norm

    model = ref.tcn("max")
    x, base = ref.inputs()
    normed = copy.deepcopy(model)
    for block in normed.features:
        block.conv1, block.conv2 = weight_norm(block.conv1), weight_norm(block.conv2)
    np.testing.assert_allclose(lumos_deeplift(normed, x, base)[0], lumos_deeplift(model, x, base)[0],
                               rtol=0, atol=1e-12)
    assert model.features[0].downsample is not None and model.features[1].downsample is None  # both skips


def test_tcn_deeplift_leaves_the_model_as_found():
    model = ref.tcn("max")
    before = copy.deepcopy(model.state_dict())
    x, base = ref.inputs()
    lumos_deeplift(model, x, base)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())


# -- captum: frozen, then live -----------------------------------------------------------------
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_tcn_deeplift_equals_frozen_captum_where_captum_has_the_rules(pool):
    x, base = ref.inputs()
    values, _ = lumos_deeplift(ref.tcn(pool), x, base)
    np.testing.assert_allclose(values, np.asarray(FROZEN[pool]["values"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(FROZEN[pool]["delta"], 0.0, atol=1e-12)


def test_frozen_captum_on_the_adaptive_max_pool_passes_its_gradient_and_misses_the_delta():
    model = ref.tcn("max")
    x, base = ref.inputs()
    as_is = np.asarray(FROZEN["captum_as_is"]["values"])
    np.testing.assert_allclose(as_is, secant_deeplift(model, x, base, pool_rule="gradient"), rtol=0, atol=1e-12)
    change = score_change(model, x, base)
    missed = as_is.reshape(len(x), -1).sum(1) - change
    np.testing.assert_allclose(FROZEN["captum_as_is"]["delta"], missed, rtol=0, atol=1e-12)  # captum's own delta
    assert np.abs(missed).min() > 0.1 * np.abs(change).min()  # not rounding: the pool's rule is missing


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_tcn_deeplift_equals_live_captum_where_captum_has_the_rules(pool):
    pytest.importorskip("captum.attr")
    model = ref.tcn(pool)
    x, base = ref.inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer, peer_delta = ref.captum_values(ref.captum_form(model), x, base)
    np.testing.assert_allclose(lumos_deeplift(model, x, base)[0], peer, rtol=0, atol=1e-12)
    np.testing.assert_allclose(peer_delta, 0.0, atol=1e-12)


def test_live_captum_on_the_unmodified_tcn_agrees_or_misses_its_own_delta():
    """captum 0.9 passes the adaptive pool's gradient; a captum that gains a rule for it
    should agree with lumos."""
    pytest.importorskip("captum.attr")
    model = ref.tcn("max")
    x, base = ref.inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer, peer_delta = ref.captum_values(model, x, base)
    if np.abs(peer_delta).max() < 1e-10:
        np.testing.assert_allclose(lumos_deeplift(model, x, base)[0], peer, rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(peer, secant_deeplift(model, x, base, pool_rule="gradient"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_transformer_deeplift_differs_from_captum_only_in_the_max_pool(pool):
    """Neither library has a rule for layer norm or attention (both pass the gradient; lumos
    with strict=False, as the benchmark): with average pooling they agree exactly."""
    captum_attr = pytest.importorskip("captum.attr")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TransformerClassifier(3, 2, d_model=8, heads=2, layers=1, dim_feedforward=16, pool=pool)
    model = model.double().eval()
    x, base = ref.inputs()
    ours, _ = lumos_deeplift(model, x, base, strict=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = captum_attr.DeepLift(model).attribute(torch.from_numpy(x), baselines=torch.from_numpy(base),
                                                     target=ref.TARGET).detach().numpy()
    gap = np.abs(ours - peer).max()
    if pool == "avg":
        assert gap < 1e-12
    else:
        assert gap > 1e-3 * np.abs(peer).max()
