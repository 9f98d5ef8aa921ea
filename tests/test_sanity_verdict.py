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
from lumos.metrics import model_randomisation, smooth_mprt
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


def _edges(inputs, target):
    """Maps that ignore the model: the input's edges."""
    from scipy import ndimage

    x = np.asarray(inputs, dtype=np.float64)
    return np.hypot(ndimage.sobel(x, axis=-1), ndimage.sobel(x, axis=-2))


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
    assert not gb.changed["features.6"]
    for r in (sal, ig):
        assert r.passed and r.verdict.startswith("pass"), r.verdict
        assert r.mean("spearman")[1] < 0.4
    assert not ig0.passed and ig0.mean("spearman").min() > 0.8
    # the rule is the docstring's: a lower bar of top layers lets Guided Backprop through
    # only if its similarity drops below the threshold there (it does not: classifier 0.77)
    assert not model_randomisation(GuidedBackprop(model), model, x, similarities=("spearman",), top_layers=1,
                                   reference=None).passed
    assert model_randomisation(GuidedBackprop(model), model, x, similarities=("spearman",), threshold=0.8,
                               reference=None).passed
    recs = gb.to_records()
    assert [r["top"] for r in recs] == [True, True, False, False]
    # the per-layer curve
    import matplotlib

    matplotlib.use("Agg")
    from lumos.metrics.plotting import plot_randomisation

    ax = plot_randomisation([gb, sal, ig, ig0])
    lines = ax.get_lines()
    curves = [ln for ln in lines if ln.get_marker() == "o"]
    references = [ln for ln in lines if ln.get_linestyle() == ":" and len(ln.get_xdata())]
    assert len(curves) == 4  # four methods, each with its reference level as a dotted line in its colour
    assert {c.get_color() for c in curves} == {r.get_color() for r in references}
    for curve, result in zip(curves, [gb, sal, ig, ig0]):
        level = next(r for r in references if r.get_color() == curve.get_color()).get_ydata()[0]
        assert level == pytest.approx(result.reference["spearman"])
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


def test_reference_rule_on_given_similarities():
    """The reference rule: a stage is unchanged on a measure when more than half of the
    similarity above the unrelated-map level b is left *and* it is significantly above b."""
    from lumos.metrics.sanity import _reference_verdict, changed_vs_reference, retained

    rng = np.random.default_rng(0)
    ref = np.full(64, 0.6) + rng.normal(0, 0.05, 64)  # maps of different inputs correlate at 0.6
    at = lambda *m: np.stack([np.full(64, v) + rng.normal(0, 0.05, 64) for v in m])  # noqa: E731
    np.testing.assert_allclose(retained(at(0.6, 1.0), ref), [0.0, 1.0], atol=0.05)
    # 0.75 is above the 0.5 bar but only 37% of the way from b = 0.6 to 1: changed
    assert changed_vs_reference(at(0.75), ref).tolist() == [True]
    assert changed_vs_reference(at(0.85), ref).tolist() == [False]
    # significance: 8 noisy inputs cannot tell 0.85 from 0.6
    noisy = np.stack([np.full(8, 0.85) + rng.normal(0, 0.5, 8)])
    assert changed_vs_reference(noisy, ref[:8]).tolist() == [True]
    stages = ["fc2", "fc1", "conv2", "conv1"]
    rho = {"spearman": np.array([0.9, 0.9, 0.8, 0.7]), "spearman_signed": np.array([0.1, 0.0, 0.0, 0.0])}
    ch = {"spearman": np.array([False, False, False, True]), "spearman_signed": np.array([True] * 4)}
    ok, stage, reason, top = _reference_verdict("cascading", stages, rho, {"spearman": 0.4, "spearman_signed": 0.1},
                                                ch, None)
    assert (ok, stage, top) == (False, "fc1", 2) and reason.startswith("|Phi| keeps the input's structure")
    ch = {"spearman": np.array([True] * 4), "spearman_signed": np.array([False, False, True, True])}
    assert _reference_verdict("cascading", stages, rho, {"spearman": 0.4, "spearman_signed": 0.1}, ch, None)[2] \
        .startswith("insensitive to the top layers: the sign pattern is unchanged")
    ch = {"spearman": np.array([False, True, True, True]), "spearman_signed": np.array([False, True, True, True])}
    assert _reference_verdict("cascading", stages, rho, {"spearman": 0.4, "spearman_signed": 0.1}, ch, None)[0]


def _lenet_mnist(n=64):
    pytest.importorskip("sklearn")
    import os
    import tempfile
    from pathlib import Path

    from benchmarks.mnist_cnn import load_mnist, trained_cnn

    Path(os.environ.get("LUMOS_CACHE", tempfile.gettempdir())).mkdir(parents=True, exist_ok=True)  # a tmp dir
    try:
        x = load_mnist(n)[2]
    except (FileNotFoundError, OSError, KeyError):
        pytest.skip("MNIST not found (set LUMOS_DATA)")
    return trained_cnn(verbose=False).eval(), x


@pytest.mark.slow
def test_five_verdicts_on_the_mnist_lenet_match_adebayo():
    """The sanity benchmark's LeNet (trained 3 epochs, cached in the temp folder): saliency
    passes, Guided Backprop fails as insensitive to the top layers, IG and LRP keep the
    input's structure in |Phi| while their sign changes (Adebayo et al. section 3.1 and 5.2)."""
    from benchmarks.bench_sanity import lumos_explainers, lumos_mprt

    model, x = _lenet_mnist()
    with torch.no_grad():
        y = model(torch.as_tensor(x)).argmax(1).numpy()
    ex = lumos_explainers(model)
    res = {k: lumos_mprt(ex[k], model, x, y) for k in ("saliency", "guided_backprop", "integrated_gradients", "lrp")}
    assert res["saliency"].passed, res["saliency"].verdict
    assert res["guided_backprop"].verdict.startswith("FAIL: insensitive to the top layers")
    for k in ("integrated_gradients", "lrp"):
        assert res[k].verdict.startswith("FAIL: |Phi| keeps the input's structure"), res[k].verdict
        assert res[k].mean("spearman")[1] > 0.95 and res[k].mean("spearman_signed")[1] < 0.3
    # Guided Grad-CAM differs from the paper here (measured, not asserted as a pass/fail): its |Phi| is at the
    # unrelated level at once (the 8x8 Grad-CAM factor moves with the dense layers), its signed map keeps
    # under half of its input-specific similarity (the guided-backprop factor)
    # saliency's maps of two different digits already correlate at ~0.65: the reason a fixed 0.5 bar misleads
    assert res["saliency"].reference["spearman"] > 0.5


def test_guided_grad_cam_equals_captum_with_bilinear_upsampling():
    """Selvaraju et al. upsample Grad-CAM bilinearly before the product; captum's
    GuidedGradCam does the same with interpolate_mode="bilinear" (its default is nearest)."""
    captum = pytest.importorskip("captum.attr")
    from lumos.methods.cam import GuidedGradCAM

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).eval()
    x = np.random.default_rng(0).random((6, 1, 14, 14)).astype(np.float32)
    t = np.arange(6) % 5
    ours = GuidedGradCAM(model, "3").explain(x, target=t).values
    xt = torch.as_tensor(x).requires_grad_(True)
    peer = captum.GuidedGradCam(model, model[3]).attribute(xt, target=torch.as_tensor(t),
                                                           interpolate_mode="bilinear").detach().numpy()
    np.testing.assert_allclose(ours, peer, atol=1e-5 * np.abs(peer).max(), rtol=0)
    nearest = captum.GuidedGradCam(model, model[3]).attribute(xt, target=torch.as_tensor(t)).detach().numpy()
    assert np.abs(nearest - ours).max() > 1e-3 * np.abs(ours).max()  # the default is a different map


def test_smooth_mprt_takes_the_reference_rule(digits_cnn):
    """Smooth MPRT's verdict is the cascading test's reference rule (one implementation) on the
    denoised maps: maps that ignore the model fail, saliency of the trained CNN passes."""
    model, x = digits_cnn
    x = x[:16]
    sal = smooth_mprt(Saliency(model), model, x, n_samples=4)
    edges = smooth_mprt(_edges, model, x, n_samples=4)
    for r in (sal, edges):
        assert r.mode == "bottom_up" and r.meta["rule"] == "reference" and r.meta["metric"] == "smooth_mprt"
        assert set(r.reference) == {"spearman", "spearman_signed"} and r.threshold == r.reference["spearman"]
    assert sal.passed and sal.verdict.startswith("pass: explanation changes with every layer randomised"), sal.verdict
    assert sal.deciding_stage == "classifier" and sal.changed["classifier"]
    np.testing.assert_allclose(edges.scores["spearman"], 1.0)
    assert edges.reference["spearman"] < 0.9  # different digits' edges differ: the yardstick is not 1
    assert not edges.passed and edges.verdict.startswith("FAIL: explanation unchanged with every layer randomised")
    assert not smooth_mprt(_edges, model, x, n_samples=4, order="top_down").passed
    # one copy (K = 1: the input itself), top down: exactly the cascading test, verdict included
    one = smooth_mprt(Saliency(model), model, x, n_samples=1, order="top_down")
    plain = model_randomisation(Saliency(model), model, x, similarities=("spearman",))
    assert one.stages == plain.stages and one.reference == pytest.approx(plain.reference)
    for k in ("spearman", "spearman_signed"):
        np.testing.assert_allclose(one.scores[k], plain.scores[k], atol=1e-12)
    assert (one.passed, one.deciding_stage, one.reason) == (plain.passed, plain.deciding_stage, plain.reason)
    fixed = smooth_mprt(_edges, model, x, n_samples=4, reference=None)  # the fixed rule stays available
    assert not fixed.passed and fixed.reference is None and fixed.threshold == 0.5
