"""Clinical views (#16 item 5): the multi-lead ECG printout with beat-averaged relevance, the
R-peak detector, the EEG channel x time map, the MNE conversion (skipped without mne) and
braindecode models explained directly (skipped without braindecode)."""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lumos.plot  # noqa: E402
from lumos.core import Explanation  # noqa: E402
from lumos.plot.clinical import beat_average, detect_r_peaks, probabilities, select_values  # noqa: E402
from tests.conftest import shared_data  # noqa: E402


def synthetic_ecg(duration=10.0, sfreq=250.0, hr=72.0, n_leads=1, seed=0, jitter=0.08, noise=0.02, wander=0.15,
                  polarity=None):
    """PQRST beats made of Gaussians (mV) at known R times, with baseline wander and noise.
    Returns (signal (leads, T), R-peak sample indices)."""
    rng = np.random.default_rng(seed)
    n = int(duration * sfreq)
    t = np.arange(n) / sfreq
    beats, tb = [], 0.4
    while tb < duration - 0.35:
        beats.append(tb)
        tb += 60.0 / hr * (1 + jitter * rng.normal())
    beats = np.asarray(beats)

    def g(offset, width, amp):
        return amp * np.exp(-0.5 * ((t[None] - (beats + offset)[:, None]) / width) ** 2).sum(0)

    pqrst = (g(-0.16, 0.025, 0.15) + g(-0.03, 0.008, -0.12) + g(0, 0.010, 1.2) + g(0.03, 0.008, -0.25)
             + g(0.28, 0.045, 0.3))
    polarity = np.ones(n_leads) if polarity is None else np.asarray(polarity, dtype=float)
    x = np.stack([polarity[k] * pqrst * (1 - 0.05 * k) + wander * np.sin(2 * np.pi * 0.25 * t + k)
                  + noise * rng.normal(size=n) for k in range(n_leads)])
    return x, np.round(beats * sfreq).astype(int)


def ecg_explanation(x, target=1, prediction=(0.2, 1.5, -0.3), seed=0):
    rng = np.random.default_rng(seed)
    rel = np.gradient(x, axis=-1) * rng.normal(size=x.shape)
    return Explanation(values=rel[None], target=[target], method="integrated_gradients", prediction=[list(prediction)],
                       inputs=x[None])


def _labels(fig):
    return {"x": [a.get_xlabel() for a in fig.axes], "y": [a.get_ylabel() for a in fig.axes],
            "title": [a.get_title() for a in fig.axes]}


# -- R peaks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sfreq,hr,seed", [(250.0, 72.0, 0), (128.0, 110.0, 1), (360.0, 50.0, 2), (128.0, 160.0, 3)])
def test_r_peak_detector_finds_the_known_peaks(sfreq, hr, seed):
    x, truth = synthetic_ecg(duration=10.0, sfreq=sfreq, hr=hr, seed=seed)
    found = detect_r_peaks(x[0], sfreq)
    assert len(found) == len(truth)
    assert np.max(np.abs(found - truth)) <= max(2, int(0.01 * sfreq))


def test_r_peak_detector_on_several_leads_and_inverted_ones():
    x, truth = synthetic_ecg(duration=8.0, sfreq=250.0, n_leads=3, polarity=(1, -1, 0.5), noise=0.05, seed=4)
    found = detect_r_peaks(x, 250.0)
    assert len(found) == len(truth) and np.max(np.abs(found - truth)) <= 3
    only_inverted = detect_r_peaks(x[1], 250.0)  # a QS-like lead (negative R) is found too
    assert len(only_inverted) == len(truth) and np.max(np.abs(only_inverted - truth)) <= 3


def test_r_peak_detector_refractory_period_and_edge_cases():
    x, truth = synthetic_ecg(duration=6.0, sfreq=200.0, hr=70, seed=5)
    found = detect_r_peaks(x[0], 200.0, refractory=0.25)
    assert np.all(np.diff(found) >= 0.25 * 200)
    assert detect_r_peaks(np.zeros(500), 100.0).size == 0
    assert detect_r_peaks(np.ones(2), 100.0).size == 0
    with pytest.raises(ValueError, match="sampling rate"):
        detect_r_peaks(x[0], None)


def test_r_peak_detector_on_atrial_fibrillation_records():
    """AtrialFibrillation (2-lead, 128 Hz, 5 s): every record gets a plausible ventricular
    rate (irregular in AF, 40-180 bpm here) and no two marks within the refractory period."""
    from lumos.data import load_npz_dataset

    ds = load_npz_dataset(shared_data("atrial_fibrillation.npz"))
    for rec in np.concatenate([ds.X_train, ds.X_test]):
        peaks = detect_r_peaks(rec, ds.sfreq)
        assert 40 <= len(peaks) / 5.0 * 60 <= 180
        assert np.all(np.diff(peaks) >= 0.25 * ds.sfreq)


def test_r_peak_detector_on_ecg200_beats():
    """ECG200 segments start at the R wave: ten beats in a row (read as 96 Hz, 60 bpm) get
    their marks at the segment starts, one per beat at most."""
    from lumos.data import load_ecg200

    X = load_ecg200().X_test[:, 0]
    for k in range(5):
        rec = X[10 * k:10 * (k + 1)].reshape(-1)
        peaks = detect_r_peaks(rec, 96.0)
        phase = peaks % 96
        assert 5 <= len(peaks) <= 10
        assert np.all((phase <= 6) | (phase >= 89)), phase


def test_beat_average():
    x, truth = synthetic_ecg(duration=10.0, sfreq=250.0, jitter=0.0, noise=0.0, wander=0.0, n_leads=2)
    rel = np.tile(np.arange(x.shape[1]) % 7, (2, 1)).astype(float)
    out = beat_average(x, rel, truth, 250.0, window=(-0.2, 0.4))
    assert out["times"][0] == pytest.approx(-0.2) and len(out["times"]) == 150
    assert out["mean_beat"].shape == (2, 150) and out["relevance"].shape == (2, 150)
    assert out["beats"].shape[0] == len(out["r_peaks"]) <= len(truth)
    r = int(np.argmin(np.abs(out["times"])))
    assert out["mean_beat"][0, r] == pytest.approx(1.2, abs=0.05)  # the R amplitude
    np.testing.assert_allclose(out["relevance"], out["beat_relevance"].mean(0))
    assert beat_average(x, rel, [], 250.0)["mean_beat"] is None


# -- ECG figure ----------------------------------------------------------------------------------
def test_ecg_two_leads_with_beat_average(tmp_path):
    x, truth = synthetic_ecg(duration=5.0, sfreq=128.0, hr=80, n_leads=2)
    exp = ecg_explanation(x)
    fig = lumos.plot.ecg(exp, 0, sfreq=128.0, lead_names=["lead 1", "lead 2"], class_names=["n", "s", "t"],
                         true_label=1)
    path = tmp_path / "ecg.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    lab = _labels(fig)
    assert "lead 1 (mV)" in lab["y"] and "lead 2 (mV)" in lab["y"]
    assert "time (s)" in lab["x"] and "ms from R" in lab["x"]
    assert any(t.startswith("mean beat (n = ") for t in lab["title"])
    title = fig._suptitle.get_text()
    assert "'s'" in title and "p = 0.70" in title and "recorded: 's'" in title
    np.testing.assert_array_equal(fig._lumos["r_peaks"], [r for r in truth if r - 32 >= 0 and r + 58 <= x.shape[1]])
    cbar = [a for a in fig.axes if "red: evidence for the class" in a.get_xlabel()]
    assert len(cbar) == 1
    lo, hi = cbar[0].get_xlim()
    assert lo == pytest.approx(-hi)  # symmetric colour scale
    strips = [a for a in fig.axes if a.get_ylabel().endswith("(mV)")]
    assert len(strips) == 2 and strips[0].get_xlim() == pytest.approx((0, (x.shape[1] - 1) / 128))
    span = [np.ptp(a.get_ylim()) for a in strips]
    assert span[0] == pytest.approx(span[1])  # one amplitude scale for all leads
    plt.close(fig)


def test_ecg_twelve_leads_layout_and_given_peaks(tmp_path):
    x, truth = synthetic_ecg(duration=10.0, sfreq=250.0, n_leads=12, seed=3)
    exp = ecg_explanation(x, target=0, prediction=(3.0, 0.0))
    fig = lumos.plot.ecg(exp, 0, sfreq=250.0, r_peaks=truth, class_names=["STEMI", "normal"])
    fig.savefig(tmp_path / "ecg12.png")
    strips = [a for a in fig.axes if a.get_ylabel().endswith("(mV)")]
    assert [a.get_ylabel().split(" ")[0] for a in strips] == list(lumos.plot.clinical.TWELVE_LEADS)
    pos = {a.get_ylabel().split(" ")[0]: a.get_position() for a in strips}
    assert pos["I"].x0 < pos["V1"].x0 and pos["I"].y0 > pos["III"].y0  # limb leads left, column-major
    assert abs(pos["I"].y0 - pos["V1"].y0) < 1e-6
    assert "predicted class" in fig._suptitle.get_text() and "'STEMI'" in fig._suptitle.get_text()
    plt.close(fig)


def test_ecg_without_sampling_rate_single_beat(tmp_path):
    """ECG200-like: one z-normalised beat of 96 samples, no sampling rate: time in samples,
    no R detection, no beat column; the prediction is another class than the target."""
    x = np.sin(np.linspace(0, 6, 96))[None]
    exp = Explanation(values=x[None] * 0.5, target=[1], method="saliency", prediction=[[2.0, 0.0]], inputs=x[None])
    fig = lumos.plot.ecg(exp, sfreq=None, class_names=["normal", "myocardial_infarction"], unit="z-normalised")
    fig.savefig(tmp_path / "beat.png")
    lab = _labels(fig)
    assert "time (sample)" in lab["x"] and "ECG (z-normalised)" in lab["y"]
    assert fig._lumos["r_peaks"] is None
    assert "predicted 'normal'" in fig._suptitle.get_text() and "myocardial infarction" in fig._suptitle.get_text()
    plt.close(fig)


def test_ecg_broadcast_cam_values_and_errors():
    x, _ = synthetic_ecg(duration=4.0, sfreq=128.0, n_leads=2)
    cam = Explanation(values=np.abs(x[:1])[None], target=[0], method="grad_cam", inputs=x[None])  # (1, 1, T)
    fig = lumos.plot.ecg(cam, sfreq=128.0)
    assert len([a for a in fig.axes if a.get_ylabel().endswith("(mV)")]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="lead names"):
        lumos.plot.ecg(cam, sfreq=128.0, lead_names=["II"])
    with pytest.raises(ValueError, match="r_peaks"):
        lumos.plot.ecg(cam, sfreq=128.0, r_peaks="pan-tompkins")


def test_probabilities():
    logits = np.array([[2.0, 0.0, -1.0]])
    p = probabilities(logits)
    np.testing.assert_allclose(p, np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)
    np.testing.assert_allclose(probabilities(p), p)
    np.testing.assert_allclose(probabilities(np.log(p)), p, rtol=1e-6)
    np.testing.assert_allclose(probabilities([[0.3]]), [[0.7, 0.3]])  # one output in [0, 1]: a probability
    np.testing.assert_allclose(probabilities([[-1.0]]), [[1 - 1 / (1 + np.e), 1 / (1 + np.e)]])  # else a logit


# -- EEG heatmap ---------------------------------------------------------------------------------
CH = ["Fz", "Cz", "P3", "Pz", "P4", "PO7", "Oz", "PO8"]


def eeg_explanation(n=6, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 8, 58))
    v[:, 3, 25:30] += 5
    return Explanation(values=v, target=np.arange(n) % 2, method="integrated_gradients",
                       inputs=rng.normal(size=v.shape), feature_names=CH)


def test_eeg_heatmap_signed_and_absolute(tmp_path):
    exp = eeg_explanation()
    fig = lumos.plot.eeg_heatmap(exp, sfreq=64.0, tmin=-0.09375, target=1, window=(0.25, 0.6),
                                 class_names=["non-target", "target"])
    fig.savefig(tmp_path / "heat.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == CH
    assert ax.get_xlabel() == "time after the event (ms)"
    assert ax.get_xlim()[0] < 0 < 790 < ax.get_xlim()[1]
    assert "'target'" in ax.get_title() and "mean of 3 trials" in ax.get_title()
    im = ax.images[0]
    assert im.get_cmap().name == "bwr" and im.norm.vmin == -im.norm.vmax
    assert "red: evidence" in fig.axes[1].get_ylabel()
    plt.close(fig)
    fig = lumos.plot.eeg_heatmap(exp, sfreq=64.0, absolute=True, index=[0, 2], normalise=True)
    im = fig.axes[0].images[0]
    assert im.get_cmap().name == "Reds" and im.norm.vmin == 0 and im.norm.vmax == pytest.approx(1)
    assert "mean |relevance| (relative)" in fig.axes[1].get_ylabel()
    plt.close(fig)
    fig = lumos.plot.eeg_heatmap(np.abs(exp.values[0]), ch_names=CH)  # an array, no time base: samples
    assert fig.axes[0].get_xlabel() == "time (sample)"
    plt.close(fig)


def test_select_values():
    exp = eeg_explanation()
    v, n = select_values(exp, None, target=0)
    np.testing.assert_allclose(v, exp.values[[0, 2, 4]].mean(0))
    assert n == 3
    v, n = select_values(exp, 1)
    np.testing.assert_allclose(v, exp.values[1]) and n == 1
    v, _ = select_values(exp, np.arange(6) < 2, absolute=True)
    np.testing.assert_allclose(v, np.abs(exp.values[:2]).mean(0))
    with pytest.raises(ValueError, match="does not explain class 0"):
        select_values(exp, 1, target=0)


# -- MNE -----------------------------------------------------------------------------------------
def test_mne_missing_gives_the_install_hint(monkeypatch):
    from lumos.integrations import mne as lmne

    monkeypatch.setitem(sys.modules, "mne", None)
    with pytest.raises(ImportError, match=r"pip install lumos-xai\[eeg\]"):
        lmne.to_evoked(eeg_explanation(), sfreq=64.0)


def test_mne_round_trip_and_montage(tmp_path):
    pytest.importorskip("mne")
    from lumos.integrations.mne import from_evoked, plot_joint, plot_topomaps, to_evoked

    exp = eeg_explanation()
    ev = to_evoked(exp, sfreq=64.0, tmin=-0.09375, index=2)
    back = from_evoked(ev)
    np.testing.assert_array_equal(back["values"], exp.values[2])
    assert back["ch_names"] == CH and back["sfreq"] == 64.0 and back["tmin"] == pytest.approx(-0.09375)
    assert ev.nave == 1 and ev.get_montage() is not None
    pos = ev.get_montage().get_positions()["ch_pos"]
    assert set(pos) == set(CH)
    ev = to_evoked(exp, CH, 64.0, target=1, absolute=True)
    np.testing.assert_allclose(ev.data, np.abs(exp.values[[1, 3, 5]]).mean(0))
    assert ev.nave == 3 and "class 1" in ev.comment
    with pytest.warns(UserWarning, match="no standard 10-20 position"):
        bare = to_evoked(exp.values, ["Fz", "Cz", "P3", "Pz", "P4", "PO7", "Oz", "EXG1"], 64.0)
    assert bare.get_montage() is None
    with pytest.raises(ValueError, match="no channel positions"):
        plot_topomaps(bare)
    fig = plot_topomaps(ev, times=[0.2, 0.3], title="relevance")
    fig.savefig(tmp_path / "topo.png")
    assert any(a.get_title().endswith("ms") for a in fig.axes)
    plt.close(fig)
    fig = plot_joint(exp, ch_names=CH, sfreq=64.0, tmin=-0.09375, target=1, absolute=True)
    fig.savefig(tmp_path / "joint.png")
    assert any(a.get_ylabel() == "relevance" for a in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="channel names"):
        to_evoked(exp, CH[:4], 64.0)


# -- braindecode ---------------------------------------------------------------------------------
def test_braindecode_missing_gives_the_install_hint(monkeypatch):
    from lumos.integrations import braindecode as lbd

    monkeypatch.setitem(sys.modules, "braindecode", None)
    with pytest.raises(ImportError, match="--no-deps"):
        lbd.require()


def _braindecode_models():
    pytest.importorskip("mne")
    models = pytest.importorskip("braindecode.models")
    eegnet = getattr(models, "EEGNetv4", None) or models.EEGNet  # EEGNetv4 in 0.8, EEGNet in 1.x
    return eegnet, models.ShallowFBCSPNet


@pytest.fixture(scope="module")
def eeg_models():
    import torch

    eegnet, shallow = _braindecode_models()
    torch.manual_seed(0)
    kw = dict(n_chans=8, n_outputs=2, n_times=128)
    try:
        sh = shallow(**kw, final_conv_length="auto", add_log_softmax=False)
    except TypeError:  # braindecode 1.x returns logits without that argument
        sh = shallow(**kw, final_conv_length="auto")
    x = np.random.default_rng(0).normal(size=(3, 8, 128)).astype(np.float32)
    return {"eegnet": eegnet(**kw).eval(), "shallow": sh.eval()}, x


@pytest.mark.parametrize("name", ["eegnet", "shallow"])
def test_braindecode_models_gradient_methods(eeg_models, name):
    from lumos.integrations import braindecode as lbd

    models, x = eeg_models
    model = models[name]
    sal = lbd.explain(model, x, "saliency", target=1, ch_names=CH)
    assert sal.values.shape == x.shape and np.isfinite(sal.values).all() and sal.feature_names == CH
    # ShallowFBCSPNet takes log(mean(square)) of its filtered input, singular at a zero input: a zero baseline
    # makes the path integral converge slowly (3 % error at 512 steps), a noise epoch as baseline does not
    baseline = None if name == "eegnet" else np.random.default_rng(1).normal(size=x.shape[1:]).astype(np.float32)
    ig = lbd.explain(model, x, "integrated_gradients", target=1, n_steps=64, baseline=baseline)
    assert ig.values.shape == x.shape and np.isfinite(ig.values).all()
    gap = np.abs(ig.target_score() - ig.base_value)
    assert np.all(gap > 1e-3)
    assert np.all(np.abs(ig.delta) <= 1e-4 * np.maximum(gap, 1.0))  # completeness


@pytest.mark.parametrize("name,layer", [("eegnet", "conv_temporal"), ("shallow", "conv_time_spat")])
def test_braindecode_grad_cam_on_the_temporal_convolution(eeg_models, name, layer):
    from lumos.integrations import braindecode as lbd

    models, x = eeg_models
    model = models[name]
    assert lbd.temporal_layer(model, x) == layer
    assert lbd.image_order(model, x) == ("CT" if name == "eegnet" else "TC")
    for method in ("grad_cam", "grad_cam_plus_plus"):
        exp = lbd.explain(model, x, method, target=1)
        assert exp.values.shape == x.shape and np.isfinite(exp.values).all() and np.all(exp.values >= 0)
        assert exp.params["layer"] == layer
        lm = exp.extras["layer_map"]
        if name == "eegnet":  # the temporal conv keeps the EEG channels: a channel x time map
            assert lm.shape[1] == 8
        else:  # ShallowFBCSPNet's first layer filters time and space at once: one time course
            assert lm.shape[-1] == 1
            np.testing.assert_allclose(exp.values, np.broadcast_to(exp.values[:, :1], x.shape))
    assert np.any(lbd.explain(model, x, "grad_cam", target=1).values > 0)


def test_braindecode_lrp(eeg_models):
    from lumos.integrations import braindecode as lbd

    models, x = eeg_models
    exp = lbd.explain(models["eegnet"], x, "lrp", target=1, composite="epsilon")
    assert exp.values.shape == x.shape and np.isfinite(exp.values).all()
    logit = exp.target_score()
    assert np.all(np.abs(exp.delta) <= 0.05 * np.abs(logit) + 1e-3)  # conserved up to the biases' share
    plain = __import__("lumos").explain
    with pytest.raises(ValueError, match="ensuredims"):  # lumos alone names the first unknown layer
        plain(models["eegnet"], x, "lrp", target=1)
    with pytest.raises(ValueError, match="conv_time_spat"):  # ShallowFBCSPNet's CombinedConv: named, not crossed
        lbd.explain(models["shallow"], x, "lrp", target=1)
