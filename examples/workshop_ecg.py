"""Workshop: ECG200 heartbeats — normal vs myocardial infarction (MI).

Data: UCR ECG200 (Olszewski 2001), 96 samples per beat, from ../shared/data/ecg200.npz
(set LUMOS_DATA). Two models: a 1-D CNN with global average pooling (so CAM applies) and
lumos's AttentionRNN (a GRU with additive attention over time steps, whose weights are
shown). Methods: Integrated Gradients, saliency, CAM / Grad-CAM (CNN only), occlusion,
LIME and KernelSHAP with the twelve 8-sample segments of the beat as features, attention
weights (RNN only), and permutation importance (lumos.PermutationImportance) of the same
8-sample windows as groups.

What they say: the class-averaged relevance shows which part of the beat separates MI
from normal beats; the printout names the window with the largest relevance for each class.

Clinical views (lumos.plot.ecg): the first MI test beat the CNN detects, as an ECG strip
over its IG relevance (ECG200 has no sampling rate and is z-normalised: time in samples),
and a 2-lead record of UEA AtrialFibrillation (5 s at 128 Hz,
../shared/data/atrial_fibrillation.npz) explained for a small CNN's predicted class, on ECG
paper, with R peaks detected and the beat-averaged relevance beside each lead. That task
(does AF terminate: n / s / t) is hard and has 15 training records: the CNN is near chance,
so the figure shows the view, not a finding. The archive names no leads and states no unit;
the amplitudes (R waves about 1 mV, quantised in steps of 1/200) are read as mV.

Run:  python examples/workshop_ecg.py
Time: the first run trains three models (ECG200 CNN 60 epochs, AttentionRNN 80 epochs, the AF CNN)
and takes minutes, not one: measured on 2 cores shared with other jobs (load 14), the CNN's 60
epochs took 9.5 min of wall time and the RNN ran at ~20 s per epoch (the run was stopped there).
Later runs load the fitted weights from lumos's cache (LUMOS_CACHE) and only explain and draw.
"""
from __future__ import annotations

import numpy as np

from _workshop import explain_all, normalise, save, setup

WINDOW = 8
N_PER_CLASS = 10  # beats per class explained by every method (IG explains the whole test set)


def segments(length: int) -> np.ndarray:
    """Group map (1, T): consecutive 8-sample windows of the beat, the features of LIME,
    KernelSHAP and permutation importance."""
    return (np.arange(length) // WINDOW)[None]


def methods_for(label: str, ds) -> dict:
    """label -> (lumos method, options) for one model."""
    groups = segments(ds.X_train.shape[2])
    background = ds.X_train.mean(0, keepdims=True)  # the mean training beat: segments are "removed" to it
    out = {
        "integrated_gradients": ("integrated_gradients", {"n_steps": 32}),
        "saliency": ("saliency", {}),
        "occlusion": ("occlusion", {"window": (1, WINDOW), "baseline": background[0]}),
        "lime (segments)": ("lime", {"groups": groups, "baseline": background[0], "n_samples": 1000, "seed": 0}),
        "kernel_shap (segments)": ("kernel_shap", {"groups": groups, "background": background, "seed": 0}),
    }
    if label == "CNN1d":
        out.update({"cam": ("cam", {}), "grad_cam": ("grad_cam", {})})
    else:
        out["attention"] = ("attention", {"diagnostics": False})
    return out


def models(ds, seed=0, quiet=False):
    import torch

    import lumos.models as lm
    from lumos.models.cache import cached_fit

    torch.manual_seed(seed)
    cnn = cached_fit(lm.CNN1d(1, 2, channels=(16, 32, 32)), ds.X_train, ds.y_train, epochs=60, lr=3e-3,
                     batch_size=16, seed=seed, name="ecg200-CNN1d", progress=not quiet)
    rnn = lm.AttentionRNN(1, 2)
    rnn = cached_fit(rnn, ds.X_train, ds.y_train, epochs=80, lr=5e-3, batch_size=16, seed=seed,
                     name=f"ecg200-{type(rnn).__name__}", progress=not quiet)
    return {"CNN1d": cnn, type(rnn).__name__: rnn}


def accuracy(model, X, y):
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(X))
        out = out[0] if isinstance(out, tuple) else out
        return float((out.argmax(1).numpy() == y).mean())


def window_importance(model, X, y, seed=0, n_repeats=10) -> np.ndarray:
    """Mean drop in accuracy when one 8-sample window is permuted across beats."""
    import lumos

    pfi = lumos.PermutationImportance(model, scoring="accuracy", n_repeats=n_repeats, seed=seed)
    exp = pfi.explain(X, y, groups=segments(X.shape[2]))
    return exp.extras["importances"].mean(axis=1)


def main(quiet=False, seed=0) -> dict:
    setup(seed=seed)
    import torch

    from lumos.data import load_ecg200

    ds = load_ecg200()
    nets = models(ds, seed, quiet)
    findings = {}
    class_maps = {}
    one_beat = {}
    import lumos

    mi_idx = np.where(ds.y_test == 1)[0]
    subset = np.concatenate([mi_idx[:N_PER_CLASS], np.where(ds.y_test == 0)[0][:N_PER_CLASS]])
    for label, model in nets.items():
        acc = accuracy(model, ds.X_test, ds.y_test)
        if not quiet:
            print(f"{label}: test accuracy {acc:.3f}")
        ig = lumos.IntegratedGradients(model, n_steps=32).explain(ds.X_test, target=ds.y_test).values[:, 0]
        class_maps[label] = {c: ig[ds.y_test == c].mean(0) for c in (0, 1)}
        exps = explain_all(model, ds.X_test[subset], methods_for(label, ds), target=ds.y_test[subset], quiet=quiet)
        one_beat[label] = {n: e.values[0] for n, e in exps.items()}  # subset[0] is the first MI beat
        imp = window_importance(model, ds.X_test, ds.y_test, seed)
        findings[label] = {"accuracy": acc, "window_importance": imp,
                           "segment_mass": {n: _segment_share(e.values[:, 0]) for n, e in exps.items()}}
        for c, name in enumerate(ds.class_names):
            m = class_maps[label][c]
            w = int(np.argmax([m[s:s + WINDOW].sum() for s in range(0, len(m), WINDOW)]))
            findings[label][f"top_window_{name}"] = (w * WINDOW, w * WINDOW + WINDOW)
    figures(ds, class_maps, one_beat, mi_idx[0], findings, quiet)
    with torch.no_grad():
        pred = nets["CNN1d"](torch.as_tensor(ds.X_test[mi_idx])).argmax(1).numpy()
    hits = mi_idx[pred == 1]
    printout_ecg200(nets["CNN1d"], ds, int(hits[0] if len(hits) else mi_idx[0]), quiet)
    af = atrial_fibrillation(seed, quiet)
    if af is not None:
        findings["atrial_fibrillation"] = af
    if not quiet:
        for label in nets:
            f = findings[label]
            tops = {k: v for k, v in f.items() if k.startswith("top_window")}
            print(f"{label}: most relevant window per class (samples): {tops}; "
                  f"PFI top window: samples {int(np.argmax(f['window_importance'])) * WINDOW}-"
                  f"{int(np.argmax(f['window_importance'])) * WINDOW + WINDOW - 1}")
            for n, share in f["segment_mass"].items():
                top = int(np.argmax(share))
                print(f"    {n:<24} largest share of |attribution|: samples {top * WINDOW}-{top * WINDOW + WINDOW - 1} "
                      f"({share[top]:.0%})")
        if af is None:
            print("AtrialFibrillation skipped: atrial_fibrillation.npz not found")
        else:
            print(f"AtrialFibrillation (2-lead, 128 Hz): CNN test accuracy {af['accuracy']:.2f} (chance 0.33); "
                  f"R peaks detected per 5-s record: {af['beats_min']}-{af['beats_max']} "
                  f"({af['rate_min']:.0f}-{af['rate_max']:.0f} bpm)")
    return findings


def printout_ecg200(model, ds, i, quiet):
    """One MI test beat (the first the CNN detects) as a strip over the Integrated Gradients
    relevance of the predicted class (lumos.plot.ecg)."""
    import lumos
    import lumos.plot

    exp = lumos.IntegratedGradients(model, n_steps=32).explain(ds.X_test[i:i + 1])  # the predicted class
    fig = lumos.plot.ecg(exp, 0, sfreq=None, lead_names=["ECG"], class_names=ds.class_names,
                         unit="z-normalised", true_label=int(ds.y_test[i]),
                         title=f"ECG200 test beat #{i} (96 samples, no sampling rate stated), CNN1d")
    save(fig, "ecg200_printout.png", quiet)


def atrial_fibrillation(seed=0, quiet=False) -> dict | None:
    """Train a small CNN on UEA AtrialFibrillation (15 two-lead records), explain one test
    record's predicted class with IG and draw it as a 2-lead printout with beat-averaged
    relevance. None when the archive is not available."""
    import torch

    import lumos
    import lumos.models as lm
    import lumos.plot
    from lumos.data import find_data_dir, load_npz_dataset
    from lumos.models.cache import cached_fit

    try:
        ds = load_npz_dataset(find_data_dir("atrial_fibrillation.npz") / "atrial_fibrillation.npz",
                              "atrial_fibrillation")
    except FileNotFoundError:
        return None
    torch.manual_seed(seed)
    cnn = cached_fit(lm.CNN1d(2, 3, channels=(16, 32, 32), kernel_size=9), ds.X_train, ds.y_train, epochs=60,
                     lr=3e-3, batch_size=5, seed=seed, name="af-CNN1d", progress=not quiet)
    acc = accuracy(cnn, ds.X_test, ds.y_test)
    names = {"n": "n (AF, does not terminate)", "s": "s (AF, terminates later)", "t": "t (AF, terminates at once)"}
    class_names = [names.get(c, c) for c in ds.class_names]
    i = 0
    exp = lumos.IntegratedGradients(cnn, n_steps=32).explain(ds.X_test[i:i + 1])
    fig = lumos.plot.ecg(exp, 0, sfreq=ds.sfreq, lead_names=["lead 1", "lead 2"], class_names=class_names,
                         unit="mV", true_label=int(ds.y_test[i]),
                         title=f"AtrialFibrillation test record #{i} (5 s, 128 Hz), CNN1d, test accuracy {acc:.2f} "
                               "(chance 0.33)")
    save(fig, "ecg_af_printout.png", quiet)
    counts = [len(lumos.plot.detect_r_peaks(r, ds.sfreq)) for r in ds.X_test]
    duration = ds.X_test.shape[2] / ds.sfreq
    return {"accuracy": acc, "beats_min": min(counts), "beats_max": max(counts),
            "rate_min": min(counts) / duration * 60, "rate_max": max(counts) / duration * 60}


def _segment_share(v: np.ndarray) -> np.ndarray:
    """Share of the total |attribution| per 8-sample segment, averaged over beats."""
    a = np.abs(v).reshape(len(v), -1, WINDOW).sum(-1)
    return (a / np.maximum(a.sum(1, keepdims=True), 1e-12)).mean(0)


def figures(ds, class_maps, one_beat, i, findings, quiet):
    import matplotlib.pyplot as plt

    t = np.arange(ds.X_test.shape[2])
    n = len(class_maps) + 1
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 5.2), squeeze=False, sharex=True,
                             gridspec_kw=dict(height_ratios=(1.2, 1), hspace=0.1))
    colours = {0: "#2e6da4", 1: "#c0392b"}
    for k, (label, maps) in enumerate(class_maps.items()):
        top, bottom = axes[0, k], axes[1, k]
        for c in (0, 1):
            top.plot(t, ds.X_test[ds.y_test == c, 0].mean(0), color=colours[c], label=f"mean {ds.class_names[c].replace('_', ' ')} beat")
            bottom.plot(t, maps[c], color=colours[c], label=f"{ds.class_names[c].replace('_', ' ')} beats")
        bottom.axhline(0, color="k", lw=0.5)
        top.set_title(f"{label} (test accuracy {findings[label]['accuracy']:.2f})", fontsize=9)
        top.set_ylabel("amplitude (z-normalised)", fontsize=8)
        bottom.set_ylabel("class-mean IG attribution", fontsize=8)
        bottom.set_xlabel("sample (beat resampled to 96 points)", fontsize=8)
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    ax = axes[0, -1]
    for label, f in findings.items():
        ax.step(np.arange(len(f["window_importance"]) + 1) * WINDOW,
                np.append(f["window_importance"], f["window_importance"][-1]), where="post", label=label)
    ax.set_title("permutation importance of 8-sample windows", fontsize=9)
    ax.set_ylabel("accuracy drop", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_xlabel("window start (sample)", fontsize=8)
    ax.tick_params(labelbottom=True)
    axes[1, -1].axis("off")
    axes[1, -1].text(0, 0.72, "Bottom: Integrated Gradients (zero baseline)\naveraged over the test beats of each class,\n"
                     "each explaining its own true class.\nRight: accuracy lost when one 8-sample window\n"
                     "is shuffled across test beats (10 repeats).", fontsize=8, va="top", transform=axes[1, -1].transAxes)
    save(fig, "ecg_class_relevance.png", quiet)

    cols = max(len(p) for p in one_beat.values())
    fig, axes = plt.subplots(len(one_beat), cols, figsize=(2.9 * cols, 2.5 * len(one_beat) + 0.4), squeeze=False,
                             sharex=True, sharey=True)
    x = ds.X_test[i, 0]
    for r, (label, panels) in enumerate(one_beat.items()):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(panels):
                ax.axis("off")
                continue
            n, v = list(panels.items())[c]
            v = normalise(np.broadcast_to(v, (1, len(x)))[0])
            ax.plot(t, x, color="0.7", lw=0.8)
            sc = ax.scatter(t, x, c=v, cmap="bwr", vmin=-1, vmax=1, s=10)
            ax.set_title(f"{label}\n{n.replace('_', ' ')}", fontsize=8)
            if r == len(one_beat) - 1:
                ax.set_xlabel("sample", fontsize=8)
            if c == 0:
                ax.set_ylabel("amplitude (z-norm.)", fontsize=8)
    cbar = fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.8)
    cbar.set_ticks([-1, 0, 1])
    cbar.set_ticklabels(["against MI", "0", "for MI"])
    fig.suptitle(f"One myocardial-infarction test beat (#{i}): evidence for the class 'MI' by each method "
                 "(each panel scaled to its largest |value|; CAM, Grad-CAM and attention are non-negative)",
                 fontsize=9)
    save(fig, "ecg_methods_one_beat.png", quiet)


if __name__ == "__main__":
    main()
