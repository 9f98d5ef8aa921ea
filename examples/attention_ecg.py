"""Attention over an ECG heartbeat: train an AttentionRNN on ECG200 (normal vs myocardial
infarction), plot its attention weights next to Grad-CAM on the recurrent layer, and
run the diagnostics of "Attention is not Explanation" (Jain & Wallace 2019) and
"Attention is not not Explanation" (Wiegreffe & Pinter 2019).

    PYTHONPATH=src python examples/attention_ecg.py   # writes attention_ecg.png (examples/output/; --update-figures: examples/figures/)
"""
from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumos.data import load_ecg200  # noqa: E402
from lumos.methods.attention import AttentionWeights, compare_uniform_attention  # noqa: E402
from lumos.methods.cam import GradCAM  # noqa: E402
from lumos.models import AttentionRNN  # noqa: E402
from lumos.models.train import accuracy, fit  # noqa: E402
from _workshop import figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)

SEED = 0
CONFIG = dict(hidden=16, cell="lstm", bidirectional=True, conv_channels=16)


def main():
    torch.set_num_threads(1)
    d = load_ecg200()
    torch.manual_seed(SEED)
    model = AttentionRNN(1, d.n_classes, **CONFIG)
    start = time.perf_counter()
    fit(model, d.X_train, d.y_train, epochs=60, lr=3e-3, batch_size=16, seed=SEED)
    seconds = time.perf_counter() - start
    acc = accuracy(model, d.X_test, d.y_test)
    print(f"AttentionRNN ({CONFIG}) on ECG200: test accuracy {acc:.2f} after {seconds:.1f} s of CPU training")

    torch.manual_seed(SEED)
    uniform = fit(model.uniform_copy(), d.X_train, d.y_train, epochs=60, lr=3e-3, batch_size=16, seed=SEED)
    cmp = compare_uniform_attention(model, uniform, d.X_test, d.y_test)
    print(f"uniform-attention model of the same architecture: test accuracy {cmp['uniform_accuracy']:.2f}, "
          f"same prediction on {cmp['agreement']:.0%} of test beats")

    exp = AttentionWeights(model, uniform_model=uniform).explain(d.X_test)
    print(f"Kendall tau(alpha, |gradient|) mean {exp.meta['mean_tau_gradient']:.2f}; "
          f"tau(alpha, |leave-one-out|) mean {exp.meta['mean_tau_loo']:.2f}; "
          f"output TVD with uniform weights in the same model {exp.meta['mean_uniform_tvd']:.3f}")
    cam = GradCAM(model, "rnn").explain(d.X_test)

    classes = ["normal", "myocardial infarction"]
    picks = [int(np.flatnonzero((d.y_test == c) & (exp.target == c))[0]) for c in (0, 1)]
    fig, axes = plt.subplots(3, 2, figsize=(10, 7), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1, 1]})
    t = np.arange(d.X_test.shape[-1])
    for col, i in enumerate(picks):
        x, alpha = d.X_test[i, 0], exp.extras["alpha"][i]
        ax = axes[0, col]
        sc = ax.scatter(t, x, c=alpha, cmap="Reds", s=18, vmin=0, zorder=2)
        ax.plot(t, x, color="0.2", lw=0.8, zorder=3)
        fig.colorbar(sc, ax=ax, fraction=0.046, label="attention α")
        ax.set_title(f"test beat {i}: true {classes[d.y_test[i]]}, predicted {classes[exp.target[i]]}", fontsize=9)
        ax.set_ylabel("ECG (z-scored)")
        axes[1, col].bar(t, alpha, color="#c0392b", width=1.0)
        axes[1, col].axhline(1 / len(t), color="k", lw=0.6, ls="--", label="uniform 1/T")
        axes[1, col].set_ylabel("α_t")
        axes[1, col].legend(fontsize=7, loc="upper right")
        axes[1, col].set_title(f"Kendall τ(α, |grad|) = {exp.extras['tau_gradient'][i]:.2f},  "
                               f"τ(α, |leave-one-out|) = {exp.extras['tau_loo'][i]:.2f}", fontsize=8)
        g = cam.values[i, 0]
        axes[2, col].fill_between(t, g / (g.max() or 1), color="#2e6da4", alpha=0.7, step="mid")
        axes[2, col].set_ylabel("Grad-CAM (rnn)\nscaled to max 1")
        axes[2, col].set_xlabel("time step")
    fig.suptitle(f"AttentionRNN on ECG200 (test acc {acc:.2f}; uniform-attention model {cmp['uniform_accuracy']:.2f}): "
                 f"mean τ(α, |grad|) = {exp.meta['mean_tau_gradient']:.2f}", fontsize=10)
    fig.tight_layout()
    FIGURE = figures_dir() / "attention_ecg.png"
    fig.savefig(FIGURE, dpi=110)
    print(f"wrote {FIGURE}")
    return acc, seconds


if __name__ == "__main__":
    main()
