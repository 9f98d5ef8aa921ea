"""Workshop: what does an EEG classifier of P300 target epochs look at?

Data: BNCI Horizon 003-2015 visual P300 speller (Guger et al. 2009), 8 channels, 256 Hz,
epochs -0.1..0.8 s around each flash, from ../shared/data/p300_bnci2015003.npz (set
LUMOS_DATA to its folder). Not shipped with lumos.

Steps: decimate to 64 Hz, train a small EEG network (spatial filters, then a dense layer over time) on a class-balanced subset (targets vs
twice as many non-targets), explain the target class on held-out target epochs with every
gradient/relevance method (IG, Gradient x Input, LRP-epsilon, SmoothGrad), average |relevance| over trials into a channel x time
map, find its peak latency (expected 250-600 ms after the flash), and measure permutation
importance per channel (lumos.PermutationImportance, one group per channel, ROC AUC). The
relevance is set beside what the data themselves make decodable: the squared point-biserial
correlation of every (channel, time) sample with the label on the held-out epochs.

What it finds: the network reads the early posterior response (about 100-200 ms over PO7, Oz,
PO8), not the P300 in 250-600 ms, and so does the data's own class difference (its r² peaks
near 190 ms). This speller was used with overt attention: the user looks at the letter, so the
flashes of its row and column also change what is at fixation, and the visual N200 over
occipital sites separates them before any P300 does (Brunner et al. 2010, J. Neural Eng.
7:056013; Treder & Blankertz 2010, Behav. Brain Funct. 6:28; Frenzel et al. 2011, J. Neural Eng.
8:036021). A classifier of this speller largely detects where the user looks.

Control: the same pipeline on a visual oddball without that confound (../shared/data/
p300_muse_eegnotebooks.npz, Muse headband, subject 1, the one clearly decodable subject) puts
its relevance peak in the P300 window (about 320-360 ms), where that set's label correlation
peaks too: the pipeline finds a P300 where the data carry one.

Clinical view: the Integrated Gradients map of the speller as scalp maps over time, with
every channel's time course (MNE's joint plot of lumos.integrations.mne.to_evoked, positions
from the standard 10-20 montage) when mne is installed (pip install lumos-xai[eeg]), else as
a channel x time heatmap (lumos.plot.eeg_heatmap). With 8 electrodes the scalp maps are
coarse interpolations: read them with the sensor dots.

Run:  python examples/workshop_p300.py      (about 1-2 minutes on 2 cores; cached afterwards)
"""
from __future__ import annotations

import numpy as np

from _workshop import explain_all, normalise, save, setup

#: label -> (lumos method, options); each explains the "target" class score.
METHODS = {
    "integrated_gradients": ("integrated_gradients", {"n_steps": 32}),
    "gradient_x_input": ("gradient_x_input", {}),
    "lrp (epsilon)": ("lrp", {"composite": "epsilon"}),
    "smoothgrad": ("smoothgrad", {"n_samples": 32, "seed": 0}),
}

SFREQ = 64.0  # epochs are block-averaged to 64 Hz (BNCI: 256 Hz / 4; Muse: 128 Hz / 2)
#: the positive control: a visual oddball without a speller's gaze confound, the one clearly
#: decodable subject of ../shared/data/p300_muse_eegnotebooks.npz (its README)
ODDBALL, ODDBALL_SUBJECT = "muse_eegnotebooks", 1


def prepare(seed: int = 0, which: str = "bnci2015003", subject: int | None = None):
    """Load, keep one subject if asked, block-average to 64 Hz, scale by the training SD, and
    draw a class-balanced training subset (all targets, twice as many non-targets)."""
    from lumos.data import load_p300

    ds = load_p300(which=which)
    if subject is not None:
        train, test = ds.extra["subject_train"] == subject, ds.extra["subject_test"] == subject
        ds.X_train, ds.y_train, ds.X_test, ds.y_test = ds.X_train[train], ds.y_train[train], ds.X_test[test], ds.y_test[test]
    factor = int(round(ds.sfreq / SFREQ))
    n = ds.X_train.shape[2] // factor * factor
    block = lambda a: a[..., :n].reshape(*a.shape[:-1], n // factor, factor).mean(-1)  # noqa: E731
    ds.X_train, ds.X_test = block(ds.X_train).astype(np.float32), block(ds.X_test).astype(np.float32)
    ds.times = block(ds.times)
    ds.sfreq = ds.sfreq / factor
    scale = float(ds.X_train.std())
    ds.X_train, ds.X_test = ds.X_train / scale, ds.X_test / scale
    rng = np.random.default_rng(seed)
    pos = np.where(ds.y_train == 1)[0]
    neg = rng.choice(np.where(ds.y_train == 0)[0], 2 * len(pos), replace=False)
    idx = rng.permutation(np.concatenate([pos, neg]))
    return ds, ds.X_train[idx], ds.y_train[idx]


def eeg_net(n_channels: int, n_times: int, n_spatial: int = 8, hidden: int = 32):
    """Spatial filters (a 1x1 convolution across channels, as in xDAWN/EEGNet), then a
    small dense network over the filtered time courses; keeps the latency information
    that a global-average-pooling CNN would discard."""
    from torch import nn

    return nn.Sequential(nn.Conv1d(n_channels, n_spatial, 1), nn.Flatten(), nn.Linear(n_spatial * n_times, hidden),
                         nn.ReLU(), nn.Linear(hidden, 2))


def train(ds, X, y, seed=0, quiet=False, name="p300-eegnet"):
    import torch
    from sklearn.metrics import roc_auc_score

    from lumos.models.cache import cached_fit

    torch.manual_seed(seed)
    model = eeg_net(X.shape[1], X.shape[2])
    model = cached_fit(model, X, y, epochs=30, lr=1e-3, weight_decay=1e-3, seed=seed, name=name, progress=not quiet)
    with torch.no_grad():
        p = torch.softmax(model(torch.as_tensor(ds.X_test)), 1)[:, 1].numpy()
    return model, float(roc_auc_score(ds.y_test, p))


def relevance_map(model, ds, names, n_trials=300, quiet=False):
    """Mean |relevance| over correctly detected held-out target trials: channel x time."""
    import torch

    with torch.no_grad():
        pred = model(torch.as_tensor(ds.X_test)).argmax(1).numpy()
    trials = np.where((ds.y_test == 1) & (pred == 1))[0][:n_trials]
    exps = explain_all(model, ds.X_test[trials], names, target=1, quiet=quiet)
    maps = {name: np.abs(e.values).mean(0) for name, e in exps.items()}
    return maps, trials


def label_correlation(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Point-biserial correlation of every (channel, time) feature with the label."""
    xc = X - X.mean(0)
    yc = (y - y.mean()).astype(np.float64)
    return np.einsum("n,nct->ct", yc, xc) / (np.sqrt((xc ** 2).sum(0)) * np.sqrt((yc ** 2).sum()) + 1e-12)


def decodable_profile(ds) -> np.ndarray:
    """Squared label correlation of each (channel, time) sample on the held-out epochs,
    summed over channels: how much class information the data carry at each latency,
    whatever model reads it."""
    return (label_correlation(ds.X_test, ds.y_test) ** 2).sum(0)


def peak_latency(rmap: np.ndarray, times: np.ndarray) -> float:
    """Time (s) where the channel-averaged |relevance| is largest."""
    return float(times[int(np.argmax(rmap.mean(0)))])


def channel_importance(model, ds, seed=0, n_repeats=5):
    """``(mean, std)`` drop in ROC AUC when one channel's epochs are shuffled across the
    held-out trials (lumos.PermutationImportance, one group per channel)."""
    import lumos

    pfi = lumos.PermutationImportance(model, output="softmax", scoring="roc_auc", n_repeats=n_repeats, seed=seed)
    exp = pfi.explain(ds.X_test, ds.y_test, groups=np.arange(ds.X_test.shape[1])[:, None],
                      feature_names=list(ds.feature_names))
    return exp.extras["importances"].mean(axis=1), exp.extras["importances"].std(axis=1)


def _time_course(ax, times, maps, decodable, title):
    """Channel-averaged relevance of each method over time, beside the data's own label
    correlation (dashed), each scaled to its maximum."""
    t_ms = times * 1000
    for name, m in maps.items():
        ax.plot(t_ms, normalise(m.mean(0)), label=name)
    ax.plot(t_ms, normalise(decodable), color="k", ls="--", lw=1.2, label="data: Σ_ch r²(label)")
    ax.axvspan(250, 600, color="k", alpha=0.08, label="250–600 ms")
    ax.set_xlabel("time after the stimulus (ms)")
    ax.set_ylabel("mean |relevance| (relative)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)


def figures(ds, maps, trials, importance, spread, decodable, oddball=None, quiet=False):
    import matplotlib.pyplot as plt

    t_ms = ds.times * 1000
    erp = ds.X_test[ds.y_test == 1].mean(0) - ds.X_test[ds.y_test == 0].mean(0)
    n = len(maps) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, gridspec_kw=dict(wspace=0.55))
    ax = axes[0, 0]
    lim = np.abs(erp).max()
    im = ax.imshow(erp, aspect="auto", cmap="PuOr_r", vmin=-lim, vmax=lim, extent=(t_ms[0], t_ms[-1], 7.5, -0.5))
    ax.set_title("target − non-target ERP\n(standardised amplitude)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05, label="amplitude (SD units)")
    for ax, (name, m) in zip(axes[0, 1:], maps.items()):
        im = ax.imshow(normalise(m), aspect="auto", cmap="Reds", vmin=0, vmax=1, extent=(t_ms[0], t_ms[-1], 7.5, -0.5))
        ax.set_title(f"{name.replace('_', ' ')}: mean |relevance| (target class)\n{len(trials)} target trials, peak {peak_latency(m, ds.times) * 1000:.0f} ms",
                     fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05, label="relative |relevance|")
    for ax in axes[0]:
        ax.set_yticks(range(8), ds.feature_names, fontsize=8)
        ax.set_xlabel("time after flash (ms)", fontsize=8)
        for edge in (250, 600):  # a shading would vanish under the heatmap's colours
            ax.axvline(edge, color="0.25", ls="--", lw=0.8)
        ax.axvline(0, color="k", ls=":", lw=0.7)
    fig.suptitle("P300: where in channel x time the network finds the target (dashed: 250–600 ms; dotted: the flash)",
                 fontsize=11, y=1.06)
    save(fig, "p300_relevance_channel_time.png", quiet)

    fig, axes = plt.subplots(1, 2 if oddball is None else 3, figsize=(11 if oddball is None else 16, 3.4),
                             layout="constrained")
    a1, a2 = axes[0], axes[-1]
    _time_course(a1, ds.times, maps, decodable, "speller (BNCI 003-2015): relevance over time (all channels)\n"
                 "beside the data's own label correlation (dashed)")
    if oddball is not None:
        _time_course(axes[1], oddball["times"], oddball["maps"], oddball["decodable"],
                     f"control: visual oddball (Muse, subject {ODDBALL_SUBJECT}, AUC {oddball['test_auc']:.2f})\n"
                     "the same pipeline, where the data carry a P300")
    a2.bar(ds.feature_names, importance, yerr=spread, color="#7d3c98", ecolor="0.3")
    a2.set_ylabel("drop in held-out ROC AUC")
    a2.set_title("speller: permutation importance per channel\n(epochs of one channel shuffled across trials; "
                 "± s.d., 5 repeats)", fontsize=9)
    save(fig, "p300_time_course_and_channels.png", quiet)


def scalp_view(ds, rmap, n_trials, quiet=False, times_ms=(200, 300, 400, 500)):
    """The IG map (mean |relevance| over ``n_trials`` target trials) as MNE's joint plot:
    the channels' time courses with scalp maps at the relevance peak and ``times_ms``;
    without mne, a channel x time heatmap. Returns the file written."""
    title = f"P300 speller (BNCI 003-2015): mean |IG relevance| for 'target' over {n_trials} held-out target trials"
    try:
        from lumos.integrations.mne import plot_joint, to_evoked
        evoked = to_evoked(rmap, list(ds.feature_names), ds.sfreq, tmin=float(ds.times[0]), nave=n_trials,
                           comment="mean |IG relevance|")
    except ImportError:
        import lumos.plot

        fig = lumos.plot.eeg_heatmap(rmap, list(ds.feature_names), times=ds.times, window=(0.25, 0.6),
                                     label="mean |IG relevance|", title=title.replace(" for ", "\nfor "))
        return save(fig, "p300_relevance_heatmap.png", quiet)
    peak = peak_latency(rmap, ds.times)
    times = sorted({peak, *[t / 1000 for t in times_ms if abs(t / 1000 - peak) > 0.05]})
    fig = plot_joint(evoked, times=np.asarray(times), label="|relevance|",
                     title=f"{title}\nscalp maps interpolated from 8 electrodes (dots): coarse")
    return save(fig, "p300_relevance_scalp.png", quiet)


def oddball_control(seed: int = 0, quiet: bool = False) -> dict | None:
    """The same pipeline on a visual oddball without a speller's gaze confound (Muse
    headband, subject 1): where the data carry a P300, does the relevance find it?
    None when the archive is not available."""
    try:
        ds, X, y = prepare(seed, which=ODDBALL, subject=ODDBALL_SUBJECT)
    except FileNotFoundError:
        return None
    model, auc = train(ds, X, y, seed, quiet, name="p300-oddball-eegnet")
    maps, trials = relevance_map(model, ds, {k: METHODS[k] for k in ("integrated_gradients", "gradient_x_input")},
                                 quiet=quiet)
    decodable = decodable_profile(ds)
    return {"test_auc": auc, "maps": maps, "times": ds.times, "decodable": decodable, "n_trials": len(trials),
            "peaks_s": {name: peak_latency(m, ds.times) for name, m in maps.items()},
            "data_peak_s": float(ds.times[int(np.argmax(decodable))])}


def main(quiet: bool = False, seed: int = 0) -> dict:
    setup(seed=seed)
    ds, X, y = prepare(seed)
    model, auc = train(ds, X, y, seed, quiet)
    maps, trials = relevance_map(model, ds, METHODS, quiet=quiet)
    importance, spread = channel_importance(model, ds, seed)
    decodable = decodable_profile(ds)
    oddball = oddball_control(seed, quiet)
    figures(ds, maps, trials, importance, spread, decodable, oddball, quiet)
    scalp_view(ds, maps["integrated_gradients"], len(trials), quiet)
    peaks = {name: peak_latency(m, ds.times) for name, m in maps.items()}
    ranked = sorted(zip(ds.feature_names, importance), key=lambda kv: -kv[1])
    findings = {"test_auc": auc, "peaks_s": peaks, "channel_importance": dict(zip(ds.feature_names, importance)),
                "importance_method": "lumos.PermutationImportance (ROC AUC drop)",
                "top_channels": [c for c, _ in ranked[:3]],
                "data_peak_s": float(ds.times[int(np.argmax(decodable))]),
                "oddball": oddball and {k: oddball[k] for k in ("test_auc", "peaks_s", "data_peak_s", "n_trials")}}
    if not quiet:
        print(f"held-out ROC AUC {auc:.3f}")
        for name, p in peaks.items():
            print(f"  {name:<24} relevance peaks at {p * 1000:.0f} ms after the flash")
        print(f"  the data's class information (Σ_ch r²) peaks at {findings['data_peak_s'] * 1000:.0f} ms")
        print("  most important channels:", ", ".join(f"{c} ({v:.3f})" for c, v in ranked[:3]))
        print("  reading: an early posterior response (the gaze-related visual N200 of an overt-attention speller),\n"
              "  not the P300 in 250-600 ms, separates targets here; see this file's docstring")
        if oddball is None:
            print("control skipped: p300_muse_eegnotebooks.npz not found")
        else:
            print(f"control, visual oddball (Muse, subject {ODDBALL_SUBJECT}): held-out ROC AUC {oddball['test_auc']:.3f}, "
                  f"{oddball['n_trials']} target trials; relevance peaks at "
                  + ", ".join(f"{p * 1000:.0f} ms ({n})" for n, p in oddball["peaks_s"].items())
                  + f"; the data's class information at {oddball['data_peak_s'] * 1000:.0f} ms")
    return findings


if __name__ == "__main__":
    main()
