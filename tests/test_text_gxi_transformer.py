"""Gradient x Input on the token embeddings of a transformer: lumos equals captum 0.9's
``LayerGradientXActivation`` on the token ``nn.Embedding`` (live when captum is installed,
from the frozen ``tests/data/gxi_transformer_captum.json`` otherwise; regenerate with
``python -m benchmarks.gxi_transformer_reference``), and the LayerNorm identity that explains
why it fails the planted-token test on a pre-norm transformer (tests/test_text.py leaves it
out of that claim).

The identity: in a one-block pre-norm encoder read at ``<cls>``, the input ``x_t = e_t + p_t``
of any other position t reaches the output only through ``LayerNorm(x_t)`` (as key and value
of the attention), and a LayerNorm is scale invariant, ``LN(c x) = LN(x)`` for c > 0 (up to its
eps). By Euler's theorem ``∂f/∂x_t · x_t = 0``, and since ``∂f/∂e_t = ∂f/∂p_t`` (they are
summed), Gradient x Input on the token embedding is ``∂f/∂e_t · e_t = −∂f/∂p_t · p_t``: the
gradient times the *position* embedding, whatever the token is. Ali et al. 2022
(arXiv:2202.07304) name LayerNorm and attention as the reasons gradient explanations of
transformers are unreliable.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lumos
from benchmarks.gxi_transformer_reference import REFERENCE, TARGET, captum_gxi, ids, postnorm, prenorm

torch.set_num_threads(1)

MODELS = {"prenorm": prenorm, "postnorm": postnorm}


@pytest.fixture(scope="module")
def frozen():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", list(MODELS))
def test_equal_to_frozen_captum(frozen, name):
    x = ids()
    assert x.tolist() == frozen["ids"]
    exp = lumos.explain(MODELS[name](), x, "gradient_x_input", target=TARGET)
    np.testing.assert_allclose(exp.values, np.asarray(frozen[name]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_equal_to_live_captum(name):
    pytest.importorskip("captum.attr")
    model, x = MODELS[name](), ids()
    exp = lumos.explain(model, x, "gradient_x_input", target=TARGET)
    np.testing.assert_allclose(exp.values, captum_gxi(model, x), rtol=0, atol=1e-6)


def _grad_times(model, x):
    """(∂f/∂e · e, ∂f/∂p · p) per token, summed over the embedding axis, by hooks on the two
    embeddings (the model itself, not lumos)."""
    store = {}

    def leaf(name):
        def hook(module, inputs, output):
            store[name] = output.detach().requires_grad_(True)
            return store[name]
        return hook

    handles = [model.tokens.register_forward_hook(leaf("e")), model.positions.register_forward_hook(leaf("p"))]
    try:
        out = model(torch.as_tensor(x))[:, TARGET].sum()
    finally:
        for h in handles:
            h.remove()
    ge, gp = torch.autograd.grad(out, [store["e"], store["p"]])
    return (ge * store["e"]).sum(-1).detach().numpy(), (gp * store["p"]).sum(-1).detach().numpy()


def test_prenorm_gxi_is_minus_gradient_times_position():
    model, x = prenorm(), ids()
    gxe, gxp = _grad_times(model, x)
    exp = lumos.explain(model, x, "gradient_x_input", target=TARGET)
    np.testing.assert_allclose(exp.values, gxe, rtol=0, atol=1e-12)
    # every position but <cls> (0): g·(e + p) = 0 up to the LayerNorm's eps, so GxI = −g·p
    scale = np.abs(gxe[:, 1:]).max()
    assert scale > 1e-3
    np.testing.assert_allclose(gxe[:, 1:], -gxp[:, 1:], rtol=0, atol=1e-3 * scale)
    # with eps = 0 the LayerNorm is exactly scale invariant and so is the identity
    for block in model.blocks:
        block.ln1.eps = 0.0
    gxe0, gxp0 = _grad_times(model, x)
    np.testing.assert_allclose(gxe0[:, 1:], -gxp0[:, 1:], rtol=0, atol=1e-12)
    # at <cls> the residual stream goes on to the head: no such identity
    assert np.abs(gxe[:, 0] + gxp[:, 0]).max() > 1e-2 * np.abs(gxe[:, 0]).max()


def test_identity_needs_the_layernorm():
    """Without the LayerNorms (replaced by identities) the sum g·(e + p) is no longer 0:
    the cancellation is the LayerNorm's scale invariance, not an artefact of the hooks."""
    model, x = prenorm(), ids()
    for block in model.blocks:
        block.ln1 = torch.nn.Identity()
    gxe, gxp = _grad_times(model, x)
    assert np.abs(gxe[:, 1:] + gxp[:, 1:]).max() > 1e-2 * np.abs(gxe[:, 1:]).max()
