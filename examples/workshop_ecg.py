"""Workshop: ECG200 heartbeats — normal vs myocardial infarction (MI).

Data: UCR ECG200 (Olszewski 2001), 96 samples per beat, from ../shared/data/ecg200.npz
(set LUMOS_DATA). Two models: a 1-D CNN with global average pooling (so CAM applies) and
a recurrent classifier (lumos's AttentionRNN when installed, whose attention weights are
shown; else a GRU). Methods, each used when installed: Integrated Gradients, saliency,
CAM / Grad-CAM, occlusion, LIME and KernelSHAP on time segments, attention weights, and
permutation importance over 8-sample time windows (lumos's PFI, else an inline shuffle).

What they say: the class-averaged relevance shows which part of the beat separates MI
from normal beats; the printout names the window with the largest relevance for each class.

Run:  python examples/workshop_ecg.py     (under a minute on 2 cores)
"""
from __future__ import annotations

import numpy as np

from _workshop import available, explain_all, normalise, save, setup

WINDOW = 8
METHODS = ("integrated_gradients", "saliency", "cam", "grad_cam", "occlusion", "lime", "kernel_shap", "attention")


def models(ds, seed=0, quiet=False):
    import torch

    import lumos.models as lm
    from lumos.models.cache import cached_fit

    torch.manual_seed(seed)
    cnn = cached_fit(lm.CNN1d(1, 2, channels=(16, 32, 32)), ds.X_train, ds.y_train, epochs=60, lr=3e-3,
                     batch_size=16, seed=seed, name="ecg200-CNN1d", progress=not quiet)
    rnn_cls = getattr(lm, "AttentionRNN", None)
    rnn = rnn_cls(1, 2) if rnn_cls is not None else lm.RecurrentClassifier(1, 2, hidden=32)
    rnn = cached_fit(rnn, ds.X_train, ds.y_train, epochs=80, lr=5e-3, batch_size=16, seed=seed,
                     name=f"ecg200-{type(rnn).__name__}", progress=not quiet)
    return {"CNN1d": cnn, type(rnn).__name__: rnn}


def accuracy(model, X, y):
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(X))
        out = out[0] if isinstance(out, tuple) else out
        return float((out.argmax(1).numpy() == y).mean())


def window_importance(model, X, y, seed=0, n_repeats=10):
    """Drop in accuracy when one time window is permuted across beats."""
    groups = [np.s_[:, :, s:s + WINDOW] for s in range(0, X.shape[2], WINDOW)]
    if available("permutation_importance"):
        try:
            import lumos

            exp = lumos.explain(model, X, method="permutation_importance", y=y, n_repeats=n_repeats, seed=seed,
                                groups=[np.s_[..., s:s + WINDOW] for s in range(0, X.shape[2], WINDOW)])
            return np.asarray(exp.values).reshape(-1), "lumos permutation_importance"
        except Exception as err:  # noqa: BLE001
            print(f"  permutation_importance over windows failed ({err}); using the inline shuffle")
    rng = np.random.default_rng(seed)
    base = accuracy(model, X, y)
    out = np.zeros(len(groups))
    for g, sl in enumerate(groups):
        for _ in range(n_repeats):
            Xp = X.copy()
            Xp[sl] = X[rng.permutation(len(X))][sl]
            out[g] += (base - accuracy(model, Xp, y)) / n_repeats
    return out, "inline window shuffle (accuracy drop)"


def main(quiet=False, seed=0) -> dict:
    setup(seed=seed)
    from lumos.data import load_ecg200

    ds = load_ecg200()
    nets = models(ds, seed, quiet)
    findings = {}
    class_maps = {}
    one_beat = {}
    mi_idx = np.where(ds.y_test == 1)[0]
    for label, model in nets.items():
        acc = accuracy(model, ds.X_test, ds.y_test)
        if not quiet:
            print(f"{label}: test accuracy {acc:.3f}")
        exps = explain_all(model, ds.X_test, available(*METHODS), target=ds.y_test, quiet=quiet)
        if "integrated_gradients" in exps:
            v = exps["integrated_gradients"].values[:, 0]
            class_maps[label] = {c: v[ds.y_test == c].mean(0) for c in (0, 1)}
        one_beat[label] = {n: e.values[mi_idx[0]] for n, e in exps.items()}
        imp, how = window_importance(model, ds.X_test, ds.y_test, seed)
        findings[label] = {"accuracy": acc, "window_importance": imp, "pfi": how}
        for c, name in enumerate(ds.class_names):
            if label in class_maps:
                m = class_maps[label][c]
                w = int(np.argmax([m[s:s + WINDOW].sum() for s in range(0, len(m), WINDOW)]))
                findings[label][f"top_window_{name}"] = (w * WINDOW, w * WINDOW + WINDOW)
    figures(ds, class_maps, one_beat, mi_idx[0], findings, quiet)
    if not quiet:
        for label, f in findings.items():
            tops = {k: v for k, v in f.items() if k.startswith("top_window")}
            print(f"{label}: most relevant window per class (samples): {tops}; "
                  f"PFI top window starts at sample {int(np.argmax(f['window_importance'])) * WINDOW} ({f['pfi']})")
    return findings


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
            top.plot(t, ds.X_test[ds.y_test == c, 0].mean(0), color=colours[c], label=f"mean {ds.class_names[c]} beat")
            bottom.plot(t, maps[c], color=colours[c], label=f"explaining the true class ({ds.class_names[c]})")
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
    axes[1, -1].axis("off")
    save(fig, "ecg_class_relevance.png", quiet)

    label = next(iter(one_beat))
    panels = one_beat[label]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False)
        x = ds.X_test[i, 0]
        for ax, (n, v) in zip(axes[0], panels.items()):
            v = normalise(np.broadcast_to(v, (1, len(x)))[0])
            ax.plot(t, x, color="0.7", lw=0.8)
            sc = ax.scatter(t, x, c=v, cmap="bwr", vmin=-1, vmax=1, s=10)
            ax.set_title(n, fontsize=9)
            ax.set_xlabel("sample")
        fig.colorbar(sc, ax=axes[0].tolist(), label="relative attribution (MI)")
        fig.suptitle(f"{label}: one MI beat explained by each method", fontsize=9, y=1.06)
        save(fig, "ecg_methods_one_beat.png", quiet)


if __name__ == "__main__":
    main()
