"""The per-stage sanity verdict (Adebayo et al. 2018): on a small CNN trained on 8x8
digits, Guided Backprop's map stays similar while the top layers (the classifier and the
last conv layer) are random, so it fails; saliency and IG from a constant 0.5 baseline
change at once and pass. IG from a zero baseline keeps the digits' zero pixels at zero in
every model and stays correlated (measured ~0.9 at every stage), so it fails too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumos import IntegratedGradients, Saliency
from lumos.data import load_digits
from lumos.methods.cam import GuidedBackprop
from lumos.metrics import model_randomisation
from lumos.models import CNN2d
from lumos.models.train import fit


@pytest.fixture(scope="module")
def digits_cnn():
    d = load_digits()
    torch.manual_seed(0)
    model = fit(CNN2d(1, 10, channels=(8, 16, 32)), d.X_train, d.y_train, epochs=10, lr=5e-3, seed=0)
    with torch.no_grad():
        acc = (model(torch.as_tensor(d.X_test)).argmax(1).numpy() == d.y_test).mean()
    assert acc > 0.8, acc
    return model, d.X_test[:32]


def _ig_half(inputs, target, model):
    return IntegratedGradients(model, n_steps=16).explain(inputs, target=target,
                                                          baseline=np.full_like(inputs, 0.5)).values


@pytest.mark.slow
def test_guided_backprop_fails_saliency_and_ig_pass(digits_cnn, tmp_path):
    model, x = digits_cnn
    gb = model_randomisation(GuidedBackprop(model), model, x, similarities=("spearman",))
    sal = model_randomisation(Saliency(model), model, x, similarities=("spearman",))
    ig = model_randomisation(_ig_half, model, x, similarities=("spearman",))
    ig0 = model_randomisation(IntegratedGradients(model, n_steps=16), model, x, similarities=("spearman",))
    stages = ["classifier", "features.6", "features.3", "features.0"]
    for r in (gb, sal, ig, ig0):
        assert r.stages == stages and r.top_layers == 2
        assert list(r.similarity) == stages and r.scores["spearman"].shape == (4, len(x))
    rho = gb.mean("spearman")
    assert rho[1] > 0.6 and rho[-1] < 0.5, rho  # high with the top layers random, low only at the end
    assert not gb.passed and gb.deciding_stage == "features.6"
    assert gb.verdict.startswith("FAIL: insensitive to the top layers"), gb.verdict
    assert not gb.changed["features.6"] and gb.changed["features.0"]
    for r in (sal, ig):
        assert r.passed and r.verdict.startswith("pass"), r.verdict
        assert r.mean("spearman")[1] < 0.4
    assert not ig0.passed and ig0.mean("spearman").min() > 0.8
    # the rule is the docstring's: a lower bar of top layers lets Guided Backprop through
    # only if its similarity drops below the threshold there (it does not: classifier 0.77)
    assert not model_randomisation(GuidedBackprop(model), model, x, similarities=("spearman",), top_layers=1).passed
    assert model_randomisation(GuidedBackprop(model), model, x, similarities=("spearman",), threshold=0.8).passed
    recs = gb.to_records()
    assert [r["top"] for r in recs] == [True, True, False, False]
    # the per-layer curve
    import matplotlib

    matplotlib.use("Agg")
    from lumos.metrics.plotting import plot_randomisation

    ax = plot_randomisation([gb, sal, ig, ig0])
    assert len(ax.get_lines()) == 5  # four methods and the threshold
    ax.figure.savefig(tmp_path / "sanity.png", dpi=80)


def test_verdict_rule_on_given_similarities():
    from lumos.metrics.sanity import _verdict

    stages = ["fc", "conv3", "conv2", "conv1"]
    assert _verdict("cascading", stages, np.array([0.3, 0.2, 0.1, 0.0]), 0.5, None)[:2] == (True, "conv3")
    assert _verdict("cascading", stages, np.array([0.7, 0.6, 0.2, 0.0]), 0.5, None)[:2] == (False, "conv3")
    assert _verdict("cascading", stages, np.array([0.3, 0.2, 0.1, 0.6]), 0.5, None)[:2] == (False, "conv1")
    assert _verdict("cascading", stages, np.array([0.7, 0.2, 0.1, 0.0]), 0.5, 2)[0]
    assert not _verdict("cascading", stages, np.array([0.7, 0.2, 0.1, 0.0]), 0.5, 1)[0]
    with pytest.raises(ValueError, match="top_layers"):
        _verdict("cascading", stages, np.zeros(4), 0.5, 5)
    ok, stage, reason, top = _verdict("independent", stages, np.array([0.9, 0.4, 0.8, 0.9]), 0.5, None)
    assert ok and stage == "conv3" and top is None and "lowest" in reason
