"""LRP and Deep Taylor: exact properties on float64 models (METHODS.md, Relevance)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from conftest import assert_same_state, model_state
from lumos.methods.gradient import GradientXInput
from lumos.methods.relevance import (LRP, AlphaBeta, Composite, DeepTaylor, Epsilon, Flat, Gamma,
                                     Norm, Pass, Residual, WSquare, ZBox, ZPlus, fold_batchnorm, batchnorm_pairs)
from lumos.core.hooks import BackwardRule, trace_calls
from lumos.methods.relevance.rules import WEIGHTED
from lumos.models.reference import MLP, CNN1d, CNN2d


def _model(kind: str, bias: bool, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp":
        return MLP(12, 4, hidden=(16, 8), bias=bias).double()
    if kind == "cnn1d":
        return CNN1d(2, 3, channels=(4, 6), kernel_size=5, bias=bias).double()
    return CNN2d(1, 3, channels=(4, 6), kernel_size=3, bias=bias).double()


def _inputs(kind: str, n: int = 6, seed: int = 1, positive: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = {"mlp": (n, 12), "cnn1d": (n, 2, 20), "cnn2d": (n, 1, 10, 10)}[kind]
    return rng.uniform(0, 1, shape) if positive else rng.normal(size=shape)


KINDS = ["mlp", "cnn1d", "cnn2d"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_lrp0_equals_gradient_x_input(kind, bias):
    model, x = _model(kind, bias), _inputs(kind)
    lrp = LRP(model, composite="lrp0").explain(x)
    gxi = GradientXInput(model).explain(x)
    np.testing.assert_array_equal(lrp.target, gxi.target)
    np.testing.assert_allclose(lrp.values, gxi.values, atol=1e-5, rtol=0)
    assert np.abs(lrp.values).max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("kind", KINDS)
def test_conservation_without_biases_at_every_layer(kind):
    model, x = _model(kind, bias=False), _inputs(kind)
    explainer = LRP(model, composite="lrp0")
    exp = explainer.explain(x)
    logit = exp.target_score()
    np.testing.assert_allclose(exp.total(), logit, atol=1e-10)
    np.testing.assert_allclose(exp.delta, 0, atol=1e-10)
    for name, module in model.named_modules():
        if name and not list(module.children()):
            layer = explainer.explain(x, target=exp.target, layer=name)
            np.testing.assert_allclose(layer.total(), logit, atol=1e-10, err_msg=name)


def _positive_rows(model, x):
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    return x[(logits.max(1).values > 1e-4).numpy()]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("first", ["zbox", "zplus"])
def test_zplus_and_zbox_non_negative_and_conserved_layer_by_layer(kind, first):
    model = _model(kind, bias=False, seed=1)
    x = _positive_rows(model, _inputs(kind, n=24, positive=True))
    assert len(x) >= 3
    first_rule = ZBox(0.0, 1.0, stabilizer=1e-12) if first == "zbox" else ZPlus(stabilizer=1e-12)
    composite = Composite([(WEIGHTED, ZPlus(stabilizer=1e-12))], first_map=[(WEIGHTED, first_rule)],
                          norm_stabilizer=1e-12)
    explainer = LRP(model, composite=composite)
    exp = explainer.explain(x)
    logit = exp.target_score()
    assert (logit > 0).all()
    assert exp.values.min() >= -1e-12
    np.testing.assert_allclose(exp.total(), logit, rtol=1e-9)
    for name, module in model.named_modules():
        if name and not list(module.children()):
            layer = explainer.explain(x, target=exp.target, layer=name)
            assert layer.values.min() >= -1e-12, name
            np.testing.assert_allclose(layer.total(), logit, rtol=1e-9, err_msg=name)
    if first == "zbox":  # z^B gives relevance to inputs at the lower bound too
        dt = DeepTaylor(model, input_bounds=(0.0, 1.0), stabilizer=1e-12).explain(x)
        np.testing.assert_allclose(dt.values, exp.values, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_epsilon_and_zplus_differ_from_gradient_x_input(kind):
    model, x = _model(kind, bias=True), _inputs(kind)
    gxi = GradientXInput(model).explain(x).values
    scale = np.abs(gxi).max()
    for composite in ({WEIGHTED: Epsilon(0.1)}, {WEIGHTED: ZPlus()}):
        values = LRP(model, composite=composite).explain(x).values
        assert np.abs(values - gxi).max() > 1e-3 * scale


def test_tanh_network_lrp0_differs_from_gradient_x_input():
    torch.manual_seed(0)
    model = MLP(12, 4, hidden=(16,), activation=nn.Tanh).double()
    x = _inputs("mlp")
    gxi = GradientXInput(model).explain(x).values
    lrp = LRP(model, composite="lrp0").explain(x).values
    assert np.abs(lrp - gxi).max() > 1e-2 * np.abs(gxi).max()


# -- rules against their formulas, on a single linear layer -------------------------------
def _one_layer(seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(5, 3).double()
    x = np.random.default_rng(seed).normal(size=(4, 5))
    with torch.no_grad():
        logits = layer(torch.from_numpy(x)).numpy()
    t = logits.argmax(1)
    W, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    return layer, x, t, logits[np.arange(4), t], W[t], b[t]  # W[t]: (N, 5) weights of the target


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def test_rules_match_their_formulas():
    layer, x, t, R, w, b = _one_layer()
    wp, wn, xp, xn = np.clip(w, 0, None), np.clip(w, None, 0), np.clip(x, 0, None), np.clip(x, None, 0)

    def run(rule):
        return LRP(layer, composite={nn.Linear: rule}).explain(x).values

    eps = 0.3
    z = (x * w).sum(1) + b
    np.testing.assert_allclose(run(Epsilon(eps)), x * w * (R / _stab(z, eps))[:, None], rtol=1e-12)
    pos = xp * wp + xn * wn
    zp = pos.sum(1) + np.clip(b, 0, None)
    np.testing.assert_allclose(run(ZPlus(1e-9)), pos * (R / _stab(zp, 1e-9))[:, None], rtol=1e-9)
    neg = xp * wn + xn * wp
    zn = neg.sum(1) + np.clip(b, None, 0)
    ab = 2 * pos * (R / _stab(zp, 1e-9))[:, None] - 1 * neg * (R / _stab(zn, 1e-9))[:, None]
    np.testing.assert_allclose(run(AlphaBeta(2, 1, 1e-9)), ab, rtol=1e-9)
    lo, hi = -2.5, 2.5
    num = x * w - lo * wp - hi * wn
    np.testing.assert_allclose(run(ZBox(lo, hi, 1e-9)), num * (R / _stab(num.sum(1), 1e-9))[:, None], rtol=1e-9)
    np.testing.assert_allclose(run(WSquare(1e-9)), w**2 * (R / _stab((w**2).sum(1), 1e-9))[:, None], rtol=1e-9)
    np.testing.assert_allclose(run(Flat(1e-9)), np.ones_like(x) * (R / _stab(5.0, 1e-9))[:, None], rtol=1e-9)
    # gamma on positive inputs: rho(w) = w + gamma w+ where the output is positive
    gamma = 0.25
    xpos = np.abs(x)
    with torch.no_grad():
        out = layer(torch.from_numpy(xpos)).numpy()[np.arange(4), t]
    rho = np.where(out[:, None] > 0, w + gamma * wp, w + gamma * wn)
    rb = np.where(out > 0, b + gamma * np.clip(b, 0, None), b + gamma * np.clip(b, None, 0))
    zg = (xpos * rho).sum(1) + rb
    got = LRP(layer, composite={nn.Linear: Gamma(gamma, 1e-9)}).explain(xpos, target=t).values
    np.testing.assert_allclose(got, xpos * rho * (out / _stab(zg, 1e-9))[:, None], rtol=1e-9)


def test_invalid_rule_parameters():
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        AlphaBeta(1.0, 1.0)
    with pytest.raises(ValueError, match="epsilon"):
        Epsilon(-1)
    with pytest.raises(ValueError, match="low <= high"):
        ZBox(1.0, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        Gamma(-0.1)


# -- residual sums ---------------------------------------------------------------------------
class _ResNet(nn.Module):
    def __init__(self, bias=False):
        super().__init__()
        self.inp = nn.Linear(6, 8, bias=bias)
        self.act = nn.ReLU()
        self.block = Residual(nn.Sequential(nn.Linear(8, 8, bias=bias), nn.ReLU()))
        self.out = nn.Linear(8, 2, bias=bias)

    def forward(self, x):
        return self.out(self.block(self.act(self.inp(x))))


def test_residual_add_splits_relevance_in_proportion_and_conserves():
    torch.manual_seed(0)
    model = _ResNet().double()
    x = np.random.default_rng(0).normal(size=(5, 6))
    exp = LRP(model, composite="lrp0").explain(x)
    np.testing.assert_allclose(exp.total(), exp.target_score(), atol=1e-10)
    np.testing.assert_allclose(exp.values, GradientXInput(model).explain(x).values, atol=1e-10)
    # the Norm rule on Add: R_a = a / (a + b) R
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 1.0]])
    R = torch.tensor([[2.0, 5.0]])
    ra, rb = Norm(0.0).backward(model.block.add, (a, b), a + b, R)
    torch.testing.assert_close(ra, torch.tensor([[0.5, 10.0]]))
    torch.testing.assert_close(rb, torch.tensor([[1.5, -5.0]]))


# -- batch norm canonizer --------------------------------------------------------------------
class _BNNet(nn.Module):
    def __init__(self, conv_bias=False):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1, bias=conv_bias)
        self.bn = nn.BatchNorm1d(4)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4, 5)
        self.bn2 = nn.BatchNorm1d(5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head(self.bn2(self.fc(self.flat(self.pool(self.act(self.bn(self.conv(x))))))))


def _bn_net(conv_bias=False):
    torch.manual_seed(0)
    model = _BNNet(conv_bias).double()
    with torch.no_grad():
        for bn in (model.bn, model.bn2):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    return model.eval()


@pytest.mark.parametrize("conv_bias", [False, True])
def test_batchnorm_fold_same_output_and_restored(conv_bias):
    model = _bn_net(conv_bias)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(7, 2, 9)))
    before = model_state(model)
    with torch.no_grad(), trace_calls(model) as calls:
        reference = model(x)
    pairs, refused = batchnorm_pairs(calls)
    assert [(layer, bn) for layer, _, bn, _ in pairs] == [("conv", "bn"), ("fc", "bn2")] and not refused
    with fold_batchnorm(pairs) as folded, torch.no_grad():
        assert folded == {model.bn, model.bn2}
        assert model.conv.bias is not None and not torch.equal(model.conv.weight, before["params"]["conv.weight"])
        torch.testing.assert_close(model(x), reference, atol=1e-10, rtol=0)
    assert_same_state(before, model_state(model))
    assert (model.conv.bias is None) == (not conv_bias)
    with pytest.raises(RuntimeError, match="boom"):
        with fold_batchnorm(pairs):
            raise RuntimeError("boom")
    assert_same_state(before, model_state(model))


def test_lrp0_on_batchnorm_model_equals_gradient_x_input():
    model = _bn_net()
    x = np.random.default_rng(0).normal(size=(5, 2, 9))
    before = model_state(model)
    lrp = LRP(model, composite="lrp0").explain(x)
    np.testing.assert_allclose(lrp.values, GradientXInput(model).explain(x).values, atol=1e-10)
    assert_same_state(before, model_state(model))


def test_unfoldable_batchnorm_raises_with_its_name():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2)).double().eval()
    with pytest.raises(ValueError, match=r"batch norm '0'.*not the output of a Linear or Conv"):
        LRP(model).explain(np.ones((2, 4)))
    with pytest.raises(ValueError, match="canonize=False"):
        LRP(_bn_net(), canonize=False).explain(np.ones((2, 2, 9)))


# -- errors and the model left as found ------------------------------------------------------
def test_unsupported_layer_raises_naming_it_and_no_hook_survives():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    before = model_state(model)
    with pytest.raises(ValueError, match=r"no rule for layer '1' \(LayerNorm\)"):
        LRP(model).explain(np.ones((2, 3)))
    assert_same_state(before, model_state(model))


def test_rule_that_cannot_apply_raises_naming_rule_and_layer():
    model = _model("cnn2d", True)
    with pytest.raises(ValueError, match=r"rule Epsilon\(.*\) cannot apply to layer 'features.2' \(MaxPool2d\)"):
        LRP(model, composite={WEIGHTED: Epsilon(), "features.2": Epsilon()}).explain(_inputs("cnn2d"))
    with pytest.raises(ValueError, match=r"rule Norm\(.*\) cannot apply to layer 'classifier' \(Linear\)"):
        LRP(model, composite={nn.Conv2d: ZPlus(), nn.Linear: Norm()}).explain(_inputs("cnn2d"))


class _Boom(BackwardRule):
    def backward(self, module, inputs, output, grad_output):
        raise RuntimeError("rule failed")


def test_no_hook_survives_also_when_the_backward_raises():
    model = _bn_net()
    model.train()  # the guard puts it in eval and must restore training mode
    before = model_state(model)
    with pytest.raises(RuntimeError, match="rule failed"), pytest.warns(UserWarning, match="training mode"):
        LRP(model, composite={WEIGHTED: Epsilon(), "head": _Boom()}).explain(np.ones((2, 2, 9)))
    assert_same_state(before, model_state(model))
    with pytest.warns(UserWarning, match="training mode"):
        exp = LRP(model).explain(np.ones((2, 2, 9)))  # and it works afterwards
    assert np.isfinite(exp.values).all()
    assert_same_state(before, model_state(model))


def test_bad_arguments():
    model = _model("mlp", True)
    with pytest.raises(ValueError, match="unknown composite"):
        LRP(model, composite="nope")
    with pytest.raises(ValueError, match="input bounds"):
        LRP(model, composite="epsilon_gamma_box")
    with pytest.raises(TypeError, match="rule instance"):
        LRP(model, composite={nn.Linear: Epsilon})
    with pytest.raises(ValueError, match="output must be 'raw'"):
        LRP(model, output="softmax")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        LRP(lambda a: a)
    with pytest.raises(ValueError, match="not a module"):
        LRP(model).explain(_inputs("mlp"), layer="nope")
    with pytest.raises(ValueError, match="no layer named"):
        LRP(model, composite={"nope": Pass()}).explain(_inputs("mlp"))
    with pytest.raises(ValueError, match="input_bounds"):
        DeepTaylor(model, input_bounds=0.0)


def test_registry_layer_shape_and_batching():
    model, x = _model("cnn2d", True), _inputs("cnn2d", n=7)
    exp = lumos.explain(model, x, method="lrp", composite="epsilon_plus", target=1)
    assert exp.method == "lrp" and exp.values.shape == x.shape and (exp.target == 1).all()
    chunked = LRP(model, composite="epsilon_plus", batch_size=3).explain(x, target=1)
    np.testing.assert_allclose(chunked.values, exp.values, atol=1e-12)
    layer = LRP(model).explain(x, layer="features.1")
    assert layer.values.shape == (7, 4, 10, 10) and layer.meta["layer"] == "features.1"
    dt = lumos.explain(model, x, method="deep_taylor", input_bounds=(-4.0, 4.0))
    assert dt.method == "deep_taylor" and dt.values.shape == x.shape


def test_lrp_skips_parametrizations_and_warns_about_containers_it_cannot_see():
    import warnings

    from torch.nn.utils import parametrizations

    torch.manual_seed(0)
    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(4, 6)), nn.ReLU(), nn.Linear(6, 2))
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exp = LRP(model, composite="epsilon").explain(x)
    assert np.isfinite(exp.values).all()

    class Combined(nn.Module):  # computes with its child's weight without calling it
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return torch.nn.functional.linear(x, self.lin.weight * 2, self.lin.bias)

    with pytest.warns(UserWarning, match=r"child layer\(s\) lin never did"):
        LRP(nn.Sequential(Combined(), nn.ReLU(), nn.Linear(2, 2)), composite="epsilon").explain(x)
