"""Global surrogate: a shallow decision tree that imitates a model.

The tree is fitted to the model's *predictions* (not the true labels) on a set of inputs;
its fidelity is the fraction of held-out inputs on which it predicts the same class as the
model. A tree of high fidelity is a readable global description of the model; its rules are
returned as text (Craven & Shavlik, "Extracting tree-structured representations of trained
networks", NIPS 1996; Molnar, *Interpretable Machine Learning*, section "Global surrogate").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lumos.core.view import model_view
from lumos.core.model import ModelAdapter
from lumos.core.validate import as_array, check_positive_int


@dataclass
class SurrogateTree:
    """A decision tree imitating a model.

    Attributes
    ----------
    tree : sklearn.tree.DecisionTreeClassifier
    fidelity : float
        Agreement with the model on held-out inputs.
    train_fidelity : float
        Agreement on the inputs the tree was fitted to.
    rules : str
        The tree as nested if/else rules (``sklearn.tree.export_text``).
    """

    tree: object
    fidelity: float
    train_fidelity: float
    rules: str
    feature_names: list[str]
    n_train: int
    n_test: int

    @property
    def depth(self) -> int:
        return int(self.tree.get_depth())

    @property
    def n_leaves(self) -> int:
        return int(self.tree.get_n_leaves())

    def predict(self, inputs) -> np.ndarray:
        x = as_array(inputs)
        return self.tree.predict(x.reshape(len(x), -1))

    def plot(self, ax=None, class_names: Sequence[str] | None = None):
        import matplotlib.pyplot as plt
        from sklearn.tree import plot_tree

        if ax is None:
            _, ax = plt.subplots(figsize=(2.5 * self.n_leaves + 2, 1.6 * self.depth + 2))
        plot_tree(self.tree, feature_names=self.feature_names, ax=ax, filled=True, fontsize=7,
                  class_names=list(class_names) if class_names is not None else None)
        ax.set_title(f"surrogate tree: fidelity {self.fidelity:.3f} on {self.n_test} held-out inputs", fontsize=9)
        return ax


def surrogate_tree(model: Callable, inputs, max_depth: int = 3, held_out=None, test_fraction: float = 0.3,
                   feature_names: Sequence[str] | None = None, min_samples_leaf: int = 1, output: str = "raw",
                   threshold: float | None = None, batch_size: int = 256, seed: int = 0) -> SurrogateTree:
    """Fit a decision tree of depth ``max_depth`` to the classes ``model`` predicts on ``inputs``.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Anything :class:`lumos.core.model.ModelAdapter` accepts (e.g. ``clf.predict_proba``).
        Its class is the argmax of its scores; a one-output model predicts class 1 when its
        score exceeds ``threshold`` (0 for ``output="raw"`` logits, 0.5 otherwise).
    inputs : array (N, ...)
        Inputs the tree is fitted on (flattened to features).
    held_out : array, optional
        Inputs to measure fidelity on; by default ``test_fraction`` of ``inputs`` is held out.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier, export_text

    max_depth = check_positive_int(max_depth, "max_depth")
    x = as_array(inputs)
    adapter = ModelAdapter(model, output=output, batch_size=batch_size)
    if threshold is None:
        threshold = 0.0 if output == "raw" else 0.5

    def predict(batch: np.ndarray) -> np.ndarray:
        with model_view(adapter.model, warn_training=False) as view:
            scores = adapter.bound(view).scores(batch)
        return scores.argmax(1) if scores.shape[1] > 1 else (scores[:, 0] > threshold).astype(np.int64)

    if held_out is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
        x_train, x_test = train_test_split(x, test_size=test_fraction, random_state=seed)
    else:
        x_train, x_test = x, as_array(held_out, "held_out")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"held_out inputs have shape {x_test.shape[1:]} per sample, inputs {x.shape[1:]}")
    d = int(np.prod(x.shape[1:]))
    if feature_names is None:
        feature_names = [f"x{i}" for i in range(d)]
    feature_names = [str(f) for f in feature_names]
    if len(feature_names) != d:
        raise ValueError(f"{len(feature_names)} feature names for {d} features")
    y_train, y_test = predict(x_train), predict(x_test)
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=seed)
    tree.fit(flat_train, y_train)
    return SurrogateTree(
        tree, float(np.mean(tree.predict(flat_test) == y_test)), float(np.mean(tree.predict(flat_train) == y_train)),
        export_text(tree, feature_names=feature_names), feature_names, len(x_train), len(x_test),
    )
