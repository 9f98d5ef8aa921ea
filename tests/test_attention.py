"""AttentionRNN and the AttentionWeights explainer: weights are a distribution over the
valid steps, padding gets 0 and changes nothing, diagnostics equal their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

import lumos
from lumos.methods.attention import AttentionWeights, compare_uniform_attention, kendall_tau_rows
from lumos.methods.cam import GradCAM
from lumos.models import AttentionRNN, CNN1d
from conftest import assert_same_state, model_state

LENGTHS = [12, 5, 3, 1, 8]


def _model(cell="gru", bidirectional=True, attention="additive"):
    torch.manual_seed(0)
    return AttentionRNN(2, 3, hidden=6, cell=cell, bidirectional=bidirectional, attention=attention)


@pytest.fixture
def series(rng):
    return rng.normal(size=(5, 2, 12)).astype(np.float32)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_alpha_is_distribution_and_padding_gets_zero(series, cell, bidirectional):
    model = _model(cell, bidirectional)
    exp = AttentionWeights(model, diagnostics=False).explain(series, lengths=LENGTHS)
    alpha = exp.extras["alpha"]
    assert exp.values.shape == (5, 1, 12)
    assert np.broadcast_shapes(exp.values.shape, series.shape) == series.shape
    assert (alpha >= 0).all()
    np.testing.assert_allclose(alpha.sum(1), 1, rtol=1e-6)
    pad = np.arange(12)[None] >= np.array(LENGTHS)[:, None]
    assert (alpha[pad] == 0).all() and (alpha[~pad] > 0).all()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_the_output(series, cell):
    model = _model(cell)
    padded = series.copy()
    padded[1, :, 5:] = 100.0  # garbage beyond the length
    with torch.no_grad():
        y_pad, a_pad = model(torch.as_tensor(padded), lengths=LENGTHS, return_attention=True)
        y_cut, a_cut = model(torch.as_tensor(series[1:2, :, :5]), return_attention=True)
    torch.testing.assert_close(y_pad[1], y_cut[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a_pad[1, :5], a_cut[0], rtol=1e-5, atol=1e-6)


def test_mask_equals_lengths_for_prefix_masks(series):
    model = _model()
    mask = np.arange(12)[None] < np.array(LENGTHS)[:, None]
    a = AttentionWeights(model).explain(series, lengths=LENGTHS)
    b = AttentionWeights(model).explain(series, mask=mask)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)
    np.testing.assert_allclose(a.extras["loo_importance"], b.extras["loo_importance"], rtol=1e-5, atol=1e-6)
    holes = np.ones((5, 12), bool)
    holes[:, [2, 7]] = False  # a non-prefix mask: only attention is masked
    c = AttentionWeights(model).explain(series, mask=holes)
    assert (c.extras["alpha"][:, [2, 7]] == 0).all()
    np.testing.assert_allclose(c.extras["alpha"].sum(1), 1, rtol=1e-6)


def test_uniform_attention(series):
    model = _model(attention="uniform")
    _, alpha = model(torch.as_tensor(series), lengths=LENGTHS, return_attention=True)
    np.testing.assert_allclose(alpha.sum(1).detach(), 1, rtol=1e-6)
    np.testing.assert_allclose(alpha[2, :3].detach(), 1 / 3, rtol=1e-6)
    copy = _model().uniform_copy()
    assert copy.attention is None and copy.config["cell"] == "gru" and copy.config["bidirectional"]


def test_diagnostics_match_definitions(series):
    model = _model()
    exp = AttentionWeights(model).explain(series, target=2, lengths=LENGTHS)
    x = torch.as_tensor(series)
    lengths = np.array(LENGTHS)
    # gradient importance: sum_c |dy/dx_ct|
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg, lengths=torch.as_tensor(lengths))[:, 2].sum(), xg)
    np.testing.assert_allclose(exp.extras["gradient_importance"], g.abs().sum(1).numpy(), rtol=1e-5, atol=1e-8)
    # leave-one-out: delete step t, one sequence at a time
    with torch.no_grad():
        y = model(x, lengths=torch.as_tensor(lengths))[:, 2].numpy()
        for i in [0, 1, 4]:
            for t in range(LENGTHS[i]):
                xi = torch.cat([x[i:i + 1, :, :t], x[i:i + 1, :, t + 1:LENGTHS[i]]], dim=2)
                ref = y[i] - model(xi)[0, 2].item()
                assert exp.extras["loo_importance"][i, t] == pytest.approx(ref, abs=1e-5)
    assert np.isnan(exp.extras["loo_importance"][3]).all()  # a single step cannot be left out
    assert np.isnan(exp.extras["loo_importance"][1, 5:]).all()
    # Kendall tau over valid steps
    alpha = exp.extras["alpha"]
    for i in [0, 1, 4]:
        n = LENGTHS[i]
        ref = kendalltau(alpha[i, :n], np.abs(exp.extras["loo_importance"][i, :n])).statistic
        assert exp.extras["tau_loo"][i] == pytest.approx(ref)
    assert np.isnan(exp.extras["tau_loo"][3])
    # the same trained model with uniform weights
    with torch.no_grad():
        uni = model(x, lengths=torch.as_tensor(lengths), uniform_attention=True).numpy()
    np.testing.assert_allclose(exp.extras["uniform_scores"], uni, rtol=1e-5, atol=1e-6)
    assert ((exp.extras["uniform_tvd"] >= 0) & (exp.extras["uniform_tvd"] <= 1)).all()
    assert exp.extras["uniform_tvd"][3] == pytest.approx(0, abs=1e-6)  # one step: attention is uniform anyway


def test_chunking_does_not_change_results(series):
    model = _model()
    a = AttentionWeights(model).explain(series, lengths=LENGTHS)
    b = AttentionWeights(model, batch_size=3).explain(series, lengths=LENGTHS)
    for k in ("alpha", "gradient_importance", "loo_importance", "uniform_scores"):
        np.testing.assert_allclose(a.extras[k], b.extras[k], rtol=1e-5, atol=1e-6)


def test_model_left_as_found_and_errors(series):
    model = _model()
    model.train()
    before = model_state(model)
    AttentionWeights(model).explain(series, lengths=LENGTHS)
    assert_same_state(before, model_state(model))
    with pytest.raises(ValueError, match="lengths must be 5 integers"):
        AttentionWeights(model).explain(series, lengths=[12, 0, 3, 1, 8])
    with pytest.raises(ValueError, match="either lengths or mask"):
        AttentionWeights(model).explain(series, lengths=LENGTHS, mask=np.ones((5, 12), bool))
    assert_same_state(before, model_state(model))
    with pytest.raises(TypeError, match="return_attention"):
        AttentionWeights(CNN1d(2, 3))


def test_uniform_model_comparison(series):
    model, uniform = _model(), _model().uniform_copy()
    exp = AttentionWeights(model, uniform_model=uniform).explain(series)
    with torch.no_grad():
        np.testing.assert_allclose(exp.extras["uniform_model_scores"], uniform(torch.as_tensor(series)).numpy(),
                                   rtol=1e-5)
    y = np.array([0, 1, 2, 0, 1])
    res = compare_uniform_attention(model, uniform, series, y)
    assert set(res) == {"accuracy", "uniform_accuracy", "agreement", "mean_tvd"}
    assert 0 <= res["agreement"] <= 1


def test_kendall_tau_rows():
    a = np.array([[1.0, 2, 3, 4], [1, 2, 3, 4], [1, 1, 1, 1]])
    b = np.array([[1.0, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4]])
    np.testing.assert_allclose(kendall_tau_rows(a, b)[:2], [1, -1])
    assert np.isnan(kendall_tau_rows(a, b)[2])


def test_registered_and_gradcam_on_attention_rnn(series):
    model = _model()
    exp = lumos.explain(model, series, method="attention")
    np.testing.assert_allclose(exp.extras["alpha"].sum(1), 1, rtol=1e-6)
    cam = GradCAM(model).explain(series)  # recurrent outputs over time
    assert cam.meta["layer"] == "rnn" and cam.extras["layer_map"].shape == (5, 12)
