"""Hidden representations and linear probes.

- :func:`representations`: the activations of a named layer for a set of inputs, projected
  to 2-D with PCA or t-SNE (scikit-learn) and coloured by label, the picture of Mohamed,
  Hinton & Penn, "Understanding how deep belief networks perform acoustic modelling" (ICASSP 2012).
- :func:`probe`: a logistic-regression classifier trained on the frozen activations of each
  layer; its cross-validated accuracy says how linearly decodable the labels are there
  (Alain & Bengio, "Understanding intermediate layers using linear classifier probes",
  arXiv 1610.01644).

Layers are read with the shared hook mechanism (:func:`lumos.core.hooks.capture_activations`),
in chunks of ``batch_size`` inputs, on a private view of the model (:func:`lumos.core.view.model_view`; the model itself is not changed). The layer name
``"input"`` means the raw inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lumos.core.batching import chunk_slices
from lumos.core.view import model_view
from lumos.core.hooks import capture_activations, find_layer
from lumos.core.model import ModelAdapter
from lumos.core.validate import as_array, check_choice, check_positive_int

INPUT = "input"


def layer_activations(model: torch.nn.Module, layers: Sequence[str], inputs, batch_size: int = 256
                      ) -> dict[str, np.ndarray]:
    """Flattened activations ``(N, D)`` of each named layer (``"input"``: the inputs)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"reading layers needs a torch model, got {type(model).__name__}")
    x = as_array(inputs)
    batch_size = check_positive_int(batch_size, "batch_size")
    for name in layers:
        if name != INPUT:
            find_layer(model, name)  # a wrong name fails here, listing the candidates
    parts: dict[str, list] = {name: [] for name in layers}
    with model_view(model) as view, torch.no_grad(), capture_activations(view, layers_of(view, layers)) as store:
        adapter = ModelAdapter(view, batch_size=batch_size)
        for sl in chunk_slices(len(x), batch_size):
            xb = adapter.to_tensor(x[sl])
            view(xb)
            for name in layers:
                if name != INPUT and name not in store:
                    raise ValueError(f"layer {name!r} did not run in the model's forward pass; it has no activations")
                act = xb if name == INPUT else store[name]
                parts[name].append(act.reshape(act.shape[0], -1).cpu().numpy().astype(np.float64))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def layers_of(model: torch.nn.Module, layers: Sequence[str]) -> dict:
    return {name: find_layer(model, name)[1] for name in layers if name != INPUT}


@dataclass
class Representation:
    """Activations of one layer and their 2-D (or k-D) projection."""

    layer: str
    activations: np.ndarray
    embedding: np.ndarray
    labels: np.ndarray | None
    method: str
    explained_variance_ratio: np.ndarray | None = None

    def plot(self, ax=None, class_names: Sequence[str] | None = None, s: float = 8.0):
        """Scatter of the first two projected coordinates, coloured by label."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4.5))
        e = self.embedding
        if self.labels is None:
            ax.scatter(e[:, 0], e[:, 1], s=s, c="tab:blue", alpha=0.7)
        else:
            classes = np.unique(self.labels)
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                sel = self.labels == c
                name = class_names[int(c)] if class_names is not None else str(c)
                ax.scatter(e[sel, 0], e[sel, 1], s=s, color=cmap(i % cmap.N), alpha=0.7, label=name)
            ax.legend(fontsize=7, markerscale=1.5, loc="best", ncol=2 if len(classes) > 5 else 1)
        axis = "PC" if self.method == "pca" else "t-SNE "
        if self.explained_variance_ratio is not None:
            ev = self.explained_variance_ratio
            ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% var.)")
            ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}% var.)")
        else:
            ax.set_xlabel(f"{axis}1")
            ax.set_ylabel(f"{axis}2")
        ax.set_title(f"{self.layer} ({self.activations.shape[1]} units, {self.method})", fontsize=10)
        return ax


def _check_labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with one entry per input ({n}), got shape {y.shape}")
    return y


def representations(model: torch.nn.Module, layer: str, inputs, labels=None, method: str = "pca",
                    n_components: int = 2, perplexity: float = 30.0, batch_size: int = 256,
                    seed: int = 0) -> Representation:
    """Activations of ``layer`` for ``inputs``, projected with PCA or t-SNE.

    Parameters
    ----------
    layer : str
        A module name of ``model`` (``"input"`` for the raw inputs).
    method : {"pca", "tsne"}
    perplexity : float
        t-SNE perplexity (capped below the number of inputs).
    seed : int
        ``random_state`` of the projection.
    """
    check_choice(method, "method", ("pca", "tsne"))
    n_components = check_positive_int(n_components, "n_components")
    acts = layer_activations(model, [layer], inputs, batch_size)[layer]
    y = None if labels is None else _check_labels(labels, len(acts))
    if n_components > min(acts.shape):
        raise ValueError(f"n_components={n_components} exceeds min(n_inputs, n_units) = {min(acts.shape)}")
    ratio = None
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_components, random_state=seed)
        emb = pca.fit_transform(acts)
        ratio = pca.explained_variance_ratio_
    else:
        from sklearn.manifold import TSNE

        perp = min(float(perplexity), max(1.0, (len(acts) - 1) / 3))
        emb = TSNE(n_components=n_components, perplexity=perp, init="pca", random_state=seed).fit_transform(acts)
    return Representation(layer, acts, emb, y, method, ratio)


@dataclass
class ProbeResult:
    """Cross-validated accuracy of a linear probe on each layer."""

    layers: list[str]
    accuracy: np.ndarray
    accuracy_std: np.ndarray
    fold_scores: np.ndarray
    chance: float
    n_units: list[int]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.layers, self.accuracy.tolist()))

    def plot(self, ax=None):
        """Accuracy per layer with ±1 std over folds, and the chance level (majority class)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(1.2 + 0.9 * len(self.layers), 3.5))
        pos = np.arange(len(self.layers))
        ax.errorbar(pos, self.accuracy, yerr=self.accuracy_std, marker="o", capsize=3)
        ax.axhline(self.chance, color="gray", ls="--", lw=1, label="chance (majority class)")
        ax.set_xticks(pos)
        ax.set_xticklabels([f"{n}\n({u})" for n, u in zip(self.layers, self.n_units)], fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("probe accuracy (CV)")
        ax.legend(fontsize=8, loc="lower right")
        return ax


def probe(model: torch.nn.Module, layers: Sequence[str], inputs, labels, cv: int = 5, C: float = 1.0,
          max_iter: int = 2000, batch_size: int = 256, seed: int = 0) -> ProbeResult:
    """Linear probe per layer: standardised activations → logistic regression, accuracy by
    stratified ``cv``-fold cross-validation (shuffled with ``seed``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty: name at least one layer to probe")
    cv = check_positive_int(cv, "cv", 2)
    acts = layer_activations(model, layers, inputs, batch_size)
    y = _check_labels(labels, len(next(iter(acts.values()))))
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < cv:
        raise ValueError(f"the rarest label has {counts.min()} examples, fewer than cv={cv} folds")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    scores = []
    for name in layers:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
        scores.append(cross_val_score(clf, acts[name], y, cv=folds))
    scores = np.array(scores)
    return ProbeResult(layers, scores.mean(1), scores.std(1), scores, float(counts.max() / counts.sum()),
                       [acts[n].shape[1] for n in layers])
