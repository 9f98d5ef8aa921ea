"""Time-series benchmarks (#16 items 2-4): the synthetic generators with an exact ground
truth, the reference sequence models, tint's white-box metrics, and a tiny run of
``benchmarks.timeseries`` (tables written under pytest's tmp folder)."""
from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score

import lumos
from lumos.data.synthetic_ts import (ISMAIL_DATASETS, make_arma, make_ismail, make_rare_feature, make_rare_time,
                                     make_switching_hmm, rare_feature_mask, rare_time_mask)
from lumos.metrics import (aup, auprc, auroc, aur, information, normalise_attributions, white_box_entropy,
                           white_box_metrics)
from lumos.models import TCN, AllSteps, GRUClassifier, LSTMClassifier, SalientSquares, TransformerClassifier


# -- generators --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda s: make_switching_hmm(20, 50, seed=s), lambda s: make_rare_feature(5, seed=s),
                                  lambda s: make_rare_time(5, seed=s),
                                  lambda s: make_ismail("Moving_Middle", "gaussian", 30, seed=s),
                                  lambda s: make_ismail("RareTime", "autoregressive", 30, seed=s),
                                  lambda s: make_ismail("PositionalFeature", "harmonic", 30, seed=s)])
def test_generators_are_seeded_and_shaped(make):
    a, b, c = make(3), make(3), make(4)
    X, y, mask = a
    assert X.dtype == np.float32 and X.ndim == 3 and mask.dtype == bool and mask.shape == X.shape
    assert len(y) == len(X)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert mask.reshape(len(X), -1).any(axis=1).all()  # every input has salient cells


def test_hmm_follows_tints_generator():
    ds = make_switching_hmm(400, 200, seed=0)
    states, probs = ds.extra["states"], ds.extra["label_probs"]
    assert ds.X.shape == (400, 3, 200) and ds.y.shape == (400, 200)
    # true saliency: one feature per step, feature 1 in state 0 and feature 2 in state 1 (tint: state + 1)
    assert (ds.mask.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(ds.mask.argmax(axis=1), states + 1)
    # labels: Bernoulli(sigmoid(2 x_t[imp])) of the active state's important feature
    drive = np.take_along_axis(ds.X, (states + 1)[:, None, :], axis=1)[:, 0]
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-2 * drive)), rtol=1e-5)
    assert abs(ds.y.mean() - probs.mean()) < 0.01
    # chain: 0 -> 1 with probability 0.05; 1 -> 1 with 0.95 - (steps since the last switch) / 500
    prev, nxt = states[:, :-1], states[:, 1:]
    assert abs(nxt[prev == 0].mean() - 0.05) < 0.01
    assert 0.8 < nxt[prev == 1].mean() < 0.95
    # emission means of each state (tint's scale), covariance 0.8 I (+ 1e-3)
    for s, mean in enumerate(((0.1, 1.6, 0.5), (-0.1, -0.4, -1.5))):
        cells = ds.X.transpose(0, 2, 1)[states == s]
        np.testing.assert_allclose(cells.mean(axis=0), mean, atol=0.03)
        np.testing.assert_allclose(cells.var(axis=0), 0.801, atol=0.04)
    assert ds.extra["switches"][:, :, 0].any(axis=1).all()  # tint marks step 0 as a switch


def test_arma_and_rare_masks_match_tint():
    X = make_arma(200, times=50, features=4, seed=1)
    e = lfilter([2, 0.5, 0.2, 0.1], [2], X.astype(np.float64), axis=-1)  # invert ArmaProcess(ar, ma)
    assert abs(e.mean()) < 0.02 and abs(e.std() - 1) < 0.02
    fm = rare_feature_mask(50, 50, 5, seed=3)
    assert fm.sum() == 5 * 25 and (fm.any(axis=1).sum() == 5)
    assert fm[:, 12:37].sum() == 125 and not fm[:, :12].any() and not fm[:, 37:].any()
    tm = rare_time_mask(50, 50, 5, seed=3)
    cols = np.nonzero(tm.any(axis=0))[0]
    assert tm.sum() == 25 * 5 and len(cols) == 5 and np.all(np.diff(cols) == 1)
    assert tm[12:37][:, cols].all() and not tm[:12].any() and not tm[37:].any()
    for make in (make_rare_feature, make_rare_time):
        ds = make(6, seed=2)
        assert (ds.mask == ds.extra["salient"]).all()  # the same cells in every sample, as tint
        out = SalientSquares(ds.extra["salient"])(torch.as_tensor(ds.X)).detach().numpy()[:, 0]
        np.testing.assert_allclose(out, ds.y, rtol=1e-5)


def test_ismail_boxes():
    ds = make_ismail("Middle", "gaussian", 60, seed=0)
    assert ds.X.shape == (60, 50, 50)
    assert (ds.mask.sum(axis=(1, 2)) == 30 * 30).all()
    assert ds.mask[:, 10:40, 10:40].all()
    box_mean = np.where(ds.mask, ds.X, 0).sum(axis=(1, 2)) / ds.mask.sum(axis=(1, 2))
    assert ((box_mean > 0) == (ds.y == 1)).all()  # N(+1, 1) for class 1, N(-1, 1) for class 0
    outside = ds.X[~ds.mask]
    assert abs(outside.mean()) < 0.02 and abs(outside.std() - 1) < 0.02
    assert 0.3 < ds.y.mean() < 0.7
    small = make_ismail("SmallMiddle", n_samples=5, seed=0)
    assert (small.mask.sum(axis=(1, 2)) == 14 * 14).all() and small.mask[:, 18:32, 18:32].all()
    rare_t = make_ismail("RareTime", n_samples=5, seed=0)  # 6 steps x 40 features
    assert rare_t.mask[0].any(axis=1).sum() == 40 and rare_t.mask[0].any(axis=0).sum() == 6
    moving = make_ismail("Moving_Middle", n_samples=40, seed=0)
    assert len({tuple(b) for b in moving.extra["box"]}) > 10
    pos = make_ismail("PositionalTime", n_samples=40, seed=0)
    f0 = pos.extra["box"][:, 2]
    assert set(f0[pos.y == 1]) == {1} and set(f0[pos.y == 0]) == {29}  # the feature band carries the class
    assert (np.where(pos.mask, pos.X, 0).sum(axis=(1, 2)) > 0).all()  # the box is always +1
    scaled = make_ismail("Middle", n_samples=4, times=20, features=10, seed=0)
    assert scaled.X.shape == (4, 10, 20) and scaled.mask[0].sum() == 12 * 6
    with pytest.raises(ValueError, match="unknown dataset"):
        make_ismail("Nowhere")
    with pytest.raises(ValueError, match="unknown process"):
        make_ismail("Middle", "narma")
    assert set(ISMAIL_DATASETS) >= {"Middle", "SmallMiddle", "Moving_Middle", "RareTime", "RareFeature",
                                    "PositionalTime"}


def test_split_keeps_per_sample_extras():
    tr, te = make_switching_hmm(10, 20, seed=0).split(7)
    assert len(tr) == 7 and len(te) == 3 and te.extra["states"].shape == (3, 20)


# -- models ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [GRUClassifier, LSTMClassifier])
def test_recurrent_per_step_logits_are_the_prefix_logits(cls):
    torch.manual_seed(0)
    net = cls(3, 2, hidden=8).eval()
    x = torch.randn(4, 3, 15)
    every = net.forward_all(x)
    assert every.shape == (4, 2, 15)
    for t in (0, 6, 14):
        torch.testing.assert_close(every[:, :, t], net(x[:, :, : t + 1]), rtol=1e-5, atol=1e-6)
    y = torch.randint(0, 2, (4, 15))
    torch.nn.functional.cross_entropy(AllSteps(net)(x), y).backward()  # the per-step training task


@pytest.mark.parametrize("make", [lambda: TCN(5, 3, channels=(8, 8)),
                                  lambda: TransformerClassifier(5, 3, d_model=8, heads=2),
                                  lambda: LSTMClassifier(5, 3, hidden=6), lambda: GRUClassifier(5, 3, hidden=6)])
def test_classifiers_are_differentiable(make):
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(2, 5, 20, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 3)
    out[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_tcn_and_transformer_are_causal():
    torch.manual_seed(0)
    tcn = TCN(3, 2, channels=(8, 8, 8), kernel_size=3).eval()
    x = torch.randn(2, 3, 30)
    x2 = x.clone()
    x2[:, :, 20:] += 5.0
    torch.testing.assert_close(tcn.features(x)[:, :, :20], tcn.features(x2)[:, :, :20])
    tr = TransformerClassifier(3, 2, d_model=8, heads=2).eval()
    seen = {}
    tr.encoder.register_forward_hook(lambda m, i, o: seen.setdefault(len(seen), o.detach()))
    tr(x), tr(x2)
    torch.testing.assert_close(seen[0][:, :20], seen[1][:, :20], rtol=1e-5, atol=1e-5)


def test_white_box_integrated_gradients_is_exact():
    ds = make_rare_time(4, times=20, features=10, subset=3, seed=0)
    model = SalientSquares(ds.extra["salient"])
    exp = lumos.explain(model, ds.X, "integrated_gradients", target=0, n_steps=8, baseline=0.0)
    np.testing.assert_allclose(exp.values, np.where(ds.mask, ds.X.astype(np.float64) ** 2, 0.0), rtol=1e-4, atol=1e-6)
    assert auroc(exp.values, ds.mask, absolute=True) == 1.0
    assert aup(exp.values, ds.mask, absolute=True) > 0.99


# -- white-box metrics ----------------------------------------------------------------------------------------------
def _mask(n=20, c=5, t=40, p=0.2, seed=1):
    return np.random.default_rng(seed).random((n, c, t)) < p


def test_perfect_attribution():
    m = _mask()
    a = m.astype(float)
    prevalence = m.mean()
    assert auroc(a, m) == 1.0 and auprc(a, m) == 1.0
    assert aur(a, m) == pytest.approx(1.0, abs=1e-4)
    # tint's AUP interpolates precision between the thresholds 0 (precision = prevalence) and 1
    assert aup(a, m) == pytest.approx((1 + prevalence) / 2, abs=1e-4)
    assert aup(a, m, curve="step") == pytest.approx(1.0, abs=1e-4)
    # a graded perfect map (true cells in (0, 1], the others 0) has AUP close to 1
    graded = np.where(m, np.random.default_rng(2).uniform(1e-3, 1, m.shape), 0.0)
    assert aup(graded, m) > 0.99 and auroc(graded, m) == 1.0
    assert information(a, m) > information(a * 0.5, m)
    assert white_box_entropy(a, m) < white_box_entropy(np.where(m, 0.5, 0.0), m)


def test_random_attribution_is_chance():
    m = _mask(n=40, p=0.2)
    a = np.random.default_rng(3).random(m.shape)
    assert auroc(a, m) == pytest.approx(0.5, abs=0.02)
    assert aur(a, m) == pytest.approx(0.5, abs=0.02)  # recall(τ) = 1 - τ for uniform scores
    assert aup(a, m) == pytest.approx(m.mean(), abs=0.02)  # precision = prevalence at every τ
    per = auroc(a, m, reduce="per_input")
    assert per.shape == (40,) and abs(per.mean() - 0.5) < 0.05


def test_hand_computed_case():
    a = np.array([[0.1, 0.4, 0.35, 0.8]])
    m = np.array([[0, 0, 1, 1]])
    k = 0.7 / (0.7 + 1e-5)  # tint's (a - min) / (max - min + 1e-5)
    np.testing.assert_allclose(normalise_attributions(a), [[0, 0.3 * k / 0.7, 0.25 * k / 0.7, k]])
    # thresholds 0, .357, .429, 1 (x k): precision .5, 2/3, 1/2, 1; recall 1, 1, .5, .5
    u = np.array([0, 0.25, 0.3, 0.7]) / 0.7 * k
    p = [0.5, 2 / 3, 0.5, 1.0]
    r = [1.0, 1.0, 0.5, 0.5]
    trap = lambda y: sum((u[i + 1] - u[i]) * (y[i] + y[i + 1]) / 2 for i in range(3))  # noqa: E731
    assert aup(a, m) == pytest.approx(trap(p), rel=1e-9)
    assert aur(a, m) == pytest.approx(trap(r), rel=1e-9)
    assert auroc(a, m) == pytest.approx(0.75)
    assert auprc(a, m) == pytest.approx((1 / 2 * 2 / 3 + 1 / 2 * 1.0))  # AP = Σ (R_n - R_{n-1}) P_n
    true_vals = np.array([0.25 / 0.7 * k, k])
    assert information(a, m) == pytest.approx(np.abs(np.log2(1 - true_vals + 1e-5)).sum())
    ent = (true_vals * np.abs(np.log2(1e-5 + true_vals))
           + (1 - true_vals) * np.abs(np.log2(1e-5 + 1 - true_vals))).sum()
    assert white_box_entropy(a, m) == pytest.approx(ent)
    # step curve: ∫ P(τ) dτ = .357·.5 ... exact areas of the step function
    assert aup(a, m, curve="step") == pytest.approx(u[1] * 2 / 3 + (u[2] - u[1]) * 0.5 + (u[3] - u[2]) * 1.0)


def test_pooled_metrics_equal_sklearn_on_the_normalised_batch():
    rng = np.random.default_rng(4)
    m = _mask(n=6, c=3, t=10, p=0.3, seed=5)
    a = rng.normal(size=m.shape) + 2 * m
    na = normalise_attributions(np.abs(a)).ravel()
    p, r, thr = precision_recall_curve(m.ravel().astype(int), na)
    assert aup(a, m, absolute=True) == pytest.approx(auc(thr, p[:-1]))
    assert aur(a, m, absolute=True) == pytest.approx(auc(thr, r[:-1]))
    assert auroc(a, m, absolute=True) == pytest.approx(roc_auc_score(m.ravel(), na))
    out = white_box_metrics(torch.as_tensor(a), torch.as_tensor(m), absolute=True)
    assert set(out) == {"aup", "aur", "auroc", "auprc", "information", "entropy"}
    assert out["auroc"] == pytest.approx(roc_auc_score(m.ravel(), na))
    # a (C, T) mask broadcasts to every input
    assert auroc(a, m[0]) == auroc(a, np.broadcast_to(m[0], a.shape))


def test_metric_errors():
    m = _mask(n=2, c=2, t=5)
    with pytest.raises(ValueError, match="does not match"):
        aup(np.zeros((2, 3, 5)), m)
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.full(m.shape, np.nan), m)
    with pytest.raises(ValueError, match="reduce"):
        aup(m * 1.0, m, reduce="mean")
    with pytest.raises(ValueError, match="boolean or 0/1"):
        aup(m * 1.0, m * 2)
    assert math.isnan(auroc(np.ones((1, 4)), np.ones((1, 4), bool)))  # one class only
    assert aup(np.ones((1, 4)), np.array([[1, 0, 0, 1]])) == 0.0  # a single threshold: tint returns 0


# -- the benchmark (tiny) ---------------------------------------------------------------------------------------------
@pytest.fixture
def dummy_method():
    """A method registered only for this test (the benchmark must pick up methods that
    land later); removed afterwards so other tests see the usual registry."""
    from lumos.core import registry
    from lumos.methods.base import Chunk, Explainer

    @registry.register("zz_test_abs_input")
    class AbsInput(Explainer):
        layouts = ("timeseries",)

        def attribute_chunk(self, x, targets, state):
            return Chunk(values=np.abs(np.asarray(x, dtype=np.float64)))

    yield "zz_test_abs_input"
    registry._REGISTRY.pop("zz_test_abs_input", None)


def _benchmark_module():
    root = str(Path(__file__).resolve().parents[1])  # the repository root holds benchmarks/
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("benchmarks.timeseries")


def test_tiny_benchmark_writes_the_tables(tmp_path, dummy_method):
    bench = _benchmark_module()
    SCALES, run = bench.SCALES, bench.run

    methods = SCALES["tiny"].methods + (dummy_method,)
    result = run("tiny", tmp_path, methods=methods, log=lambda s: None, tint=False)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"hmm_gru.md", "rare_feature.md", "rare_time.md", "ismail_middle_tcn.md", "summary.md",
            "results.json"} <= files
    agg = result["settings"]
    for key in ("hmm_gru", "rare_feature", "rare_time", "ismail_middle_tcn"):
        assert {"saliency", "integrated_gradients", "occlusion", "random", dummy_method} <= set(agg[key])
        assert 0.2 < agg[key]["random"]["auroc"][0] < 0.8
    assert "grad_cam" in agg["ismail_middle_tcn"]  # a convolution: Grad-CAM runs
    assert "grad_cam" not in agg["hmm_gru"]
    for key in ("rare_feature", "rare_time"):  # the white box: gradient methods are exact
        assert agg[key]["integrated_gradients"]["auroc"][0] == 1.0
        assert agg[key]["integrated_gradients"]["aup"][0] > 0.99
        assert agg[key]["integrated_gradients"]["deletion"][0] < agg[key]["random"]["deletion"][0]
    text = (tmp_path / "rare_feature.md").read_text()
    assert "| integrated_gradients |" in text and "published" in text and "1.000" in text
    assert "within 5 %" in (tmp_path / "summary.md").read_text()
    assert "accuracy drop" in (tmp_path / "ismail_middle_tcn.md").read_text()


def test_cli_bench_timeseries_runs_from_the_installed_package(tmp_path):
    """``lumos bench timeseries`` runs the package's copy of the benchmark (no source checkout
    on the path: the working directory is a tmp folder) and writes its tables to --out."""
    import os
    import subprocess

    env = {**os.environ, "LUMOS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}
    out = tmp_path / "tables"
    done = subprocess.run([sys.executable, "-m", "lumos", "bench", "timeseries", "--scale", "tiny", "--methods",
                           "saliency", "--settings", "rare_time,ismail", "--no-tint", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"rare_time.md", "ismail_middle_tcn.md", "summary.md", "results.json"}
    assert "| saliency |" in (out / "rare_time.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "lumos", "bench", "timeseries", "--scale", "huge"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice: 'huge'" in bad.stderr
    assert not (tmp_path / "timeseries_tables").exists()


def test_folds_option_runs_that_many_seeds(tmp_path):
    """``--folds N`` (alias of ``--seeds N``) gives N independent runs (own data and model),
    each one row of the mean ± s.e. the table sets beside tint's 5 published folds."""
    import json

    from lumos.benchmarks.timeseries import build_parser, main

    assert build_parser().parse_args(["--folds", "5"]).seeds == 5
    assert "folds" in build_parser().format_help()
    out = tmp_path / "tables"
    assert main(["--scale", "tiny", "--settings", "hmm", "--methods", "saliency", "--folds", "2", "--no-tint", "--no-cache",
                 "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["seeds"] == 2
    runs = data["settings"]["hmm_gru"]["runs"]
    assert [r["info"]["seed"] for r in runs] == [0, 1]
    assert runs[0]["methods"]["saliency"]["auroc"] != runs[1]["methods"]["saliency"]["auroc"]
    assert "2 seed(s) (0, 1)" in (out / "hmm_gru.md").read_text()


def test_masks_get_their_own_epochs_and_the_hmm_a_subset(tmp_path):
    """``--budget dynamask_epochs=N --budget extremal_epochs=M`` give each mask its own count
    (tint's HMM experiment: 1000 / 500; the rate follows each), ``--budget hmm_inputs=K``
    explains the first K test sequences of the same draw; the HMM table puts the paper's
    ExtremalMask (Table 1: AUP 0.885 ± 0.030, AUR 0.781 ± 0.013) beside lumos's."""
    import json

    from lumos.benchmarks.timeseries import METHOD_OPTIONS, SCALES, Context, main

    x = np.zeros((2, 3, 4), dtype=np.float32)
    budget = {**SCALES["tiny"].budget, "dynamask_epochs": 1000, "extremal_epochs": 500}
    ctx = Context(kind="hmm", length=4, seed=0, budget=budget, baseline=x.mean(0), background=x[:1],
                  x_train=x, groups=None, window=1, cheap_model=False)
    dyn, ext = METHOD_OPTIONS("dynamask", ctx), METHOD_OPTIONS("extremal_mask", ctx)
    assert (dyn["epochs"], dyn["lr"]) == (1000, pytest.approx(1e-3))
    assert (ext["epochs"], ext["lr"]) == (500, pytest.approx(1e-2))
    plain = METHOD_OPTIONS("dynamask", Context(**{**ctx.__dict__, "budget": SCALES["tiny"].budget}))
    assert plain["epochs"] == SCALES["tiny"].budget["mask_epochs"]  # 0: the shared mask_epochs

    out = tmp_path / "tables"
    assert main(["--scale", "tiny", "--settings", "hmm", "--methods", "dynamask,extremal_mask", "--no-tint",
                 "--budget", "dynamask_epochs=3", "--budget", "extremal_epochs=2", "--budget", "hmm_inputs=4",
                 "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["budget"]["dynamask_epochs"] == 3 and data["meta"]["budget"]["hmm_inputs"] == 4
    run = data["settings"]["hmm_gru"]["runs"][0]
    assert run["info"]["n_inputs"] == 4 and {"dynamask", "extremal_mask"} <= set(run["methods"])
    text = (out / "hmm_gru.md").read_text()
    assert "4 test inputs" in text and "Table 1" in text
    assert "| extremal_mask | AUP | 0.885 ± 0.013 |" in text  # std 0.030 over 5 folds -> s.e. 0.013
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        main(["--scale", "tiny", "--budget", "epochs=3"])


def test_hmm_gradient_shap_uses_tints_published_references():
    """tint's experiments/hmm/main.py: GradientShap with ``baselines=th.cat([x_test * 0, x_test])``
    (sliced to each prefix), ``n_samples=50``, ``stdevs=0.0001``; both libraries get them."""
    from lumos.benchmarks.timeseries import METHOD_OPTIONS, SCALES, Context

    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    refs = np.concatenate([np.zeros_like(x), x])
    ctx = Context(kind="hmm", length=4, seed=0, budget=SCALES["tiny"].budget, baseline=x.mean(0), background=x[:1],
                  x_train=x, groups=None, window=1, cheap_model=False, shap_background=refs)
    opts = METHOD_OPTIONS("gradient_shap", ctx)
    assert opts["background"] is refs and opts["n_samples"] == 50 and opts["stdevs"] == 1e-4
    other = Context(kind="ismail", length=4, seed=0, budget=SCALES["tiny"].budget, baseline=x.mean(0),
                    background=x[:1], x_train=x, groups=None, window=1, cheap_model=False)
    assert METHOD_OPTIONS("gradient_shap", other)["background"] is other.background


def test_hmm_lime_runs_as_tints_captum_lime_with_its_defaults():
    """tint's experiments/hmm/main.py calls captum's ``Lime`` with its defaults: every cell of the
    prefix its own feature, baseline 0, 25 samples, captum's Lasso and cosine kernel; lumos gets the
    same on the HMM (elsewhere the benchmark's groups, baseline and budget)."""
    from lumos.benchmarks.timeseries import LIME_AS_CAPTUM, METHOD_OPTIONS, SCALES, Context

    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    cells = np.arange(12).reshape(3, 4)
    ctx = Context(kind="hmm", length=4, seed=0, budget=SCALES["tiny"].budget, baseline=x.mean(0), background=x[:1],
                  x_train=x, groups=None, window=1, cheap_model=False, lime_groups=cells)
    opts = METHOD_OPTIONS("lime", ctx)
    assert opts["groups"] is cells and opts["n_samples"] == 25 and opts["baseline"] == 0.0
    assert {k: opts[k] for k in LIME_AS_CAPTUM} == LIME_AS_CAPTUM
    other = Context(kind="ismail", length=4, seed=0, budget=SCALES["tiny"].budget, baseline=x.mean(0),
                    background=x[:1], x_train=x, groups=None, window=1, cheap_model=False)
    assert METHOD_OPTIONS("lime", other)["baseline"] is other.baseline


def test_tint_runs_live_beside_lumos(tmp_path):
    """With tint installed, its counterparts run on the same model and inputs: the
    deterministic ones (IG with the same Gauss-Legendre nodes, occlusion) give the same
    scores as lumos, and the table puts published / lumos / tint side by side."""
    pytest.importorskip("tint.attr")
    from lumos.benchmarks.timeseries import run

    result = run("tiny", tmp_path, methods=("integrated_gradients", "occlusion", "deeplift"), settings=("rare_time",),
                 log=lambda s: None, tint=True)
    peer = result["runs"]["rare_time"][0]["tint"]
    ours = result["settings"]["rare_time"]
    assert set(peer) == {"integrated_gradients", "occlusion", "deeplift"}
    for name in ("integrated_gradients", "occlusion"):
        for k in ("aup", "aur", "auroc"):
            assert peer[name][k] == pytest.approx(ours[name][k][0], abs=1e-6)
        assert peer[name]["time_per_input"] > 0
    text = (tmp_path / "rare_time.md").read_text()
    assert "Published, lumos and tint (live) side by side" in text
    assert "| integrated_gradients | AUP | 1.000 ± 0.000 | 1.000 ± 0.000 | 1.000 ± 0.000 | ✓ | ✓ |" in text


def test_source_checkout_wrapper_is_the_package_benchmark():
    bench = _benchmark_module()
    from lumos.benchmarks import timeseries as core

    assert bench.SCALES is core.SCALES and bench.road_morf is core.road_morf
    assert bench.TABLE_DIR == Path(bench.__file__).resolve().parent / "timeseries_tables"


class _BoxSign(torch.nn.Module):
    """Logits (-s, s) with s the sum of the inputs over a fixed box: class 1 iff the box is positive."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))

    def forward(self, x):
        s = (x * self.mask).sum(dim=(1, 2))
        return torch.stack([-s, s], dim=1)


def test_road_and_masked_accuracy_reward_the_true_map():
    bench = _benchmark_module()
    ds = make_ismail("Middle", "gaussian", 40, times=20, features=10, seed=0)
    model = _BoxSign(ds.mask[0]).eval()
    truth = ds.mask.astype(float)
    noise = np.random.default_rng(0).random(ds.mask.shape)
    road_true = bench.road_morf(model, ds.X, truth, None, output="softmax")
    road_random = bench.road_morf(model, ds.X, noise, None, output="softmax")
    assert road_true.shape == (40,) and road_true.mean() < road_random.mean()
    # Ismail et al.'s masking: a model reading 3 box cells loses accuracy when the map points at them
    few = np.zeros(ds.mask.shape[1:], dtype=bool)
    few[4, 6:9] = True
    reader = _BoxSign(few).eval()
    fill = np.random.default_rng(1).standard_normal(ds.X.shape[1:]).astype(np.float32)
    drop_true = bench.masked_accuracy_drop(reader, ds.X, ds.y, np.broadcast_to(few, ds.X.shape) * 1.0, fill)
    drop_random = bench.masked_accuracy_drop(reader, ds.X, ds.y, noise, fill)
    assert drop_true > drop_random + 10  # percentage points
    assert bench.masked_accuracy_drop(model, ds.X, ds.y, truth, ds.X[0] * 0 + 100) >= 0  # any fill works
