"""A global surrogate: a depth-3 decision tree imitating an MLP on the breast-cancer table.

Prints the fidelity for depths 1-6 and the rules of the depth-3 tree; writes
surrogate_tree_breast_cancer.png to the figures folder (examples/output/, or $LUMOS_FIGURES;
examples/figures/ with --update-figures).

    PYTHONPATH=src python examples/surrogate_tree_breast_cancer.py
"""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumos.analysis import surrogate_tree  # noqa: E402
from lumos.data import load_breast_cancer  # noqa: E402
from lumos.models import MLP  # noqa: E402
from lumos.models.train import accuracy, fit  # noqa: E402

from _workshop import figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)


def main():
    torch.set_num_threads(1)
    ds = load_breast_cancer()
    model = fit(MLP(30, 2), ds.X_train, ds.y_train, epochs=60, lr=1e-3, seed=0)
    print(f"MLP test accuracy {accuracy(model, ds.X_test, ds.y_test):.3f}")
    # fit on the training table, measure fidelity on the held-out test table
    for depth in range(1, 7):
        r = surrogate_tree(model, ds.X_train, max_depth=depth, held_out=ds.X_test, feature_names=ds.feature_names)
        tree_acc = np.mean(r.predict(ds.X_test) == ds.y_test)
        print(f"depth {depth}: fidelity {r.fidelity:.3f} (train {r.train_fidelity:.3f}), "
              f"{r.n_leaves} leaves, tree accuracy on true labels {tree_acc:.3f}")
    r = surrogate_tree(model, ds.X_train, max_depth=3, held_out=ds.X_test, feature_names=ds.feature_names)
    print("rules of the depth-3 surrogate (standardised features):\n" + r.rules)
    FIGURES = figures_dir()
    fig, ax = plt.subplots(figsize=(16, 7))
    r.plot(ax=ax, class_names=ds.class_names)
    fig.tight_layout()
    fig.savefig(FIGURES / "surrogate_tree_breast_cancer.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
