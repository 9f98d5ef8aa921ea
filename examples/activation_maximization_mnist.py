"""Activation maximisation on an MNIST CNN: fooling noise versus regularised class images.

Trains lumos' reference CNN (conv blocks -> global average pooling -> linear) on the
10k-image MNIST subset, then optimises one input per class from small noise:

1. unregularised, maximising the class log-probability (Nguyen et al. 2015): classified as
   the target with near certainty, looking like noise;
2. unregularised, maximising the class logit (Simonyan et al. 2014): saturated patterns;
3. regularised logit (Yosinski et al. 2015): L2 decay, total variation, blur every 4 steps,
   jitter, clipping to [0, 1].

Reading the figure: the log-probability images are classified with p > 0.99 yet look like
noise (the "fooling" result); the logit images saturate to black/white textures and do not
always win the softmax (another class's logit grows too). Regularised, each class shows a
smooth texture of oriented strokes (horizontal bars for 2, slanted bars for 1 and 8, a
corner for 7) rather than a whole digit: the network ends in global average pooling, so it
cannot encode where a stroke is, only which strokes are present.

Writes activation_maximization_mnist.png to the figures folder (examples/output/, or
$LUMOS_FIGURES; examples/figures/ with --update-figures).

    PYTHONPATH=src python examples/activation_maximization_mnist.py
"""
from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumos.analysis import activation_maximization, class_log_probability, class_logit  # noqa: E402
from lumos.data import load_mnist  # noqa: E402
from lumos.models import CNN2d  # noqa: E402
from lumos.models.train import accuracy, fit  # noqa: E402

from _workshop import figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)

SETTINGS = {
    "unregularised log-probability (fooling)": (class_log_probability, dict(steps=300, lr=0.02)),
    "unregularised logit": (class_logit, dict(steps=300, lr=0.02)),
    "regularised logit (L2, TV, blur, jitter)": (class_logit, dict(steps=300, lr=0.05, l2=0.02, tv=0.3,
                                                                   blur_every=4, blur_sigma=0.7, jitter=2)),
}


def main():
    torch.set_num_threads(1)
    ds = load_mnist()
    t0 = time.perf_counter()
    model = fit(CNN2d(1, 10), ds.X_train, ds.y_train, epochs=6, lr=3e-3, seed=0)
    acc = accuracy(model, ds.X_test, ds.y_test)
    print(f"trained CNN2d in {time.perf_counter() - t0:.1f}s, test accuracy {acc:.3f}")
    results = {}
    for title, (objective, kw) in SETTINGS.items():
        t0 = time.perf_counter()
        r = activation_maximization(model, objective(list(range(10))), shape=(1, 28, 28), clip=(0, 1), seed=0, **kw)
        seconds = time.perf_counter() - t0
        conf = r.probabilities()[np.arange(10), np.arange(10)]
        pred = r.probabilities().argmax(1)
        results[title] = (r, conf, pred, seconds)
        print(f"{title}: all 10 classes in {seconds:.1f}s; confidence in target "
              f"{np.array2string(conf, precision=3)}; predicted {pred.tolist()}")
    FIGURES = figures_dir()
    means = [ds.X_train[ds.y_train == k, 0].mean(0) for k in range(10)]
    fig, axes = plt.subplots(len(results) + 1, 10, figsize=(15, 1.75 * (len(results) + 1) + 0.6))
    for k in range(10):
        axes[0, k].imshow(means[k], cmap="gray", vmin=0, vmax=1)
        axes[0, k].set_title(f"class {k}", fontsize=9)
    axes[0, 0].set_ylabel("training\nmean", fontsize=8)
    for row, (title, (r, conf, pred, seconds)) in enumerate(results.items(), start=1):
        for k in range(10):
            axes[row, k].imshow(r.inputs[k, 0], cmap="gray", vmin=0, vmax=1)
            colour = "black" if pred[k] == k else "red"
            axes[row, k].set_title(f"p({k}) = {conf[k]:.2f}", fontsize=8, color=colour)
        axes[row, 0].set_ylabel(title.replace(" (", "\n("), fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Activation maximisation, MNIST CNN with global average pooling (red: another class wins)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(FIGURES / "activation_maximization_mnist.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
