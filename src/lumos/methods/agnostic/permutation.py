"""Permutation feature importance (Breiman 2001; Fisher, Rudin & Dominici 2019, arXiv:1801.01489).

    I_j = s(f, X, y) − 1/K Σ_k s(f, X with feature (group) j permuted by π_k, y)

A global explanation: one value per feature or feature group (a time window, a
channel, a patch: all elements of a group are permuted together across samples), the
standard deviation over the K repeats in ``extras["std"]``. All permuted copies of a
chunk go through the model in one call. Given the same permutations (see
:func:`sklearn_permutations`) the result equals ``sklearn.inspection.permutation_importance``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer
from lumos.methods.agnostic.masking import group_names, resolve_groups
from lumos.methods.base import Chunk, State

SCORINGS = ("accuracy", "roc_auc", "log_loss", "mse")


def sklearn_permutations(n_samples: int, n_repeats: int, random_state: int) -> np.ndarray:
    """The row orders scikit-learn's ``permutation_importance(random_state=...)`` applies
    to every column (it reshuffles the permuted column cumulatively): ``(n_repeats, n)``."""
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    rs = np.random.RandomState(seed)
    idx = np.arange(n_samples)
    current = np.arange(n_samples)
    out = []
    for _ in range(n_repeats):
        rs.shuffle(idx)
        current = current[idx]
        out.append(current.copy())
    return np.stack(out)


def _probabilities(scores: np.ndarray, output: str, is_torch: bool) -> np.ndarray:
    """Class probabilities from scores: kept when the output already is probabilities
    (softmax/sigmoid, or a callable's rows on the simplex), else softmax of logits."""
    if output == "log_softmax":
        return np.exp(scores)
    if scores.shape[1] == 1:
        p = scores[:, 0] if output == "sigmoid" or (not is_torch and output == "raw" and
                                                     ((scores >= 0) & (scores <= 1)).all()) else 1 / (1 + np.exp(-scores[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if output == "softmax" or (not is_torch and output == "raw" and (scores >= 0).all()
                               and np.allclose(scores.sum(1), 1.0)):
        return scores
    z = scores - scores.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@register("permutation_importance", "pfi", "permutation")
class PermutationImportance(AgnosticExplainer):
    """Permutation feature importance.

    Parameters
    ----------
    scoring : {"accuracy", "roc_auc", "log_loss", "mse"} or callable, default "accuracy"
        Higher is better: ``log_loss`` and ``mse`` are negated (as scikit-learn's
        ``neg_log_loss``, ``neg_mean_squared_error``). A callable is
        ``scoring(y_true, scores) -> float`` (higher is better) on the ``(N, K)`` scores.
        Accuracy of a single-output model thresholds the score at ``threshold``
        (0.5 for ``output="sigmoid"``, else 0).
    n_repeats : int, default 5
    per_class : bool, default False
        Also score the rows of each true class separately (``extras["per_class"]``,
        shape (n_classes, n_features); per-class recall for accuracy, one-vs-rest AUC).
    seed : int or None, default 0
        Seeds the permutations (shared by all features); None draws a fresh seed, recorded
        in the explanation's ``params``.

    ``explain(X, y, groups=None, permutations=None, feature_names=None)``: the true labels
    ``y`` are the ``target`` argument (``explain(X, y=y)`` is accepted too); ``permutations``
    are row orders ``(n_repeats, N)`` shared by all features or ``(n_features, n_repeats, N)``.
    """

    scope = "global"
    needs_labels = True
    stochastic = True
    call_options = {"y": None, "groups": None, "permutations": None, "feature_names": None}

    def __init__(self, model, *, scoring: str | Callable = "accuracy", n_repeats: int = 5,
                 per_class: bool = False, threshold: float | None = None, seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        if not callable(scoring) and scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS} or a callable(y_true, scores), got {scoring!r}")
        self.scoring = scoring
        self.n_repeats = check_positive_int(n_repeats, "n_repeats")
        self.per_class = bool(per_class)
        self.threshold = threshold
        self.seed = seed

    def params(self):
        return {**super().params(), "scoring": self.scoring if isinstance(self.scoring, str) else repr(self.scoring),
                "n_repeats": self.n_repeats, "per_class": self.per_class, "seed": self.seed}

    # -- scoring --------------------------------------------------------------
    def _score(self, y: np.ndarray, s: np.ndarray, cls: int | None = None) -> float:
        if callable(self.scoring):
            rows = slice(None) if cls is None else y == cls
            return float(self.scoring(y[rows], s[rows]))
        if self.scoring == "mse":
            rows = slice(None) if cls is None else y == cls
            pred = s[rows, 0] if s.shape[1] == 1 else s[rows]
            return -float(np.mean((y[rows] - pred) ** 2))
        if self.scoring == "accuracy":
            if s.shape[1] == 1:
                thr = self.threshold if self.threshold is not None else (0.5 if self.adapter.output == "sigmoid" else 0.0)
                pred = (s[:, 0] > thr).astype(np.int64)
            else:
                pred = s.argmax(1)
            rows = slice(None) if cls is None else y == cls
            return float(np.mean(pred[rows] == y[rows]))
        from sklearn.metrics import log_loss, roc_auc_score

        p = _probabilities(s, self.adapter.output, self.adapter.is_torch)
        if self.scoring == "log_loss":
            rows = slice(None) if cls is None else y == cls
            return -float(log_loss(y[rows], p[rows], labels=np.arange(p.shape[1])))
        if cls is not None:
            return float(roc_auc_score(y == cls, p[:, cls]))
        if p.shape[1] == 2:
            return float(roc_auc_score(y, p[:, 1]))
        return float(roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1])))

    # -- the template ---------------------------------------------------------
    def _validate_target(self, target, n):
        if target is None:  # the labels may come as the option y= (checked in attribute_chunk)
            return None
        return super()._validate_target(target, n)

    def prepare(self, x, call, y=None, groups=None, permutations=None, feature_names=None):
        labels = None if y is None else super()._validate_target(y, x.shape[0])
        groups, n_groups = resolve_groups(groups, x.shape[1:])
        perms = self._permutations(permutations, n_groups, x.shape[0], call)
        return State(call, y=labels, groups=groups, n_groups=n_groups, perms=perms, feature_names=feature_names)

    def expansion(self, state):
        return state.n_groups * self.n_repeats

    def attribute_chunk(self, x, targets, state):
        y = targets.given
        if state.y is not None:
            if y is not None:
                raise ValueError("permutation importance got the labels twice: give them once, explain(X, y) "
                                 "or explain(X, y=y)")
            y = state.y
        if y is None:
            raise ValueError("permutation importance needs the true targets: explain(X, y)")
        raw, per_class = self._importances(state.adapter, x, y, state)
        extras = {"importances": raw, "std": raw.std(axis=1), "groups": state.groups.astype(np.int32)[None]}
        if per_class is not None:
            extras.update(per_class=per_class.mean(2), per_class_std=per_class.std(2))
        return Chunk(raw.mean(axis=1), extras=extras)  # global: the one chunk is the whole set

    def finish(self, x, result, state):
        result.feature_names = [str(n) for n in (state.feature_names or group_names(state.groups, state.n_groups))]
        result.meta = {"n_samples": x.shape[0]}
        result.inputs = None  # a global explanation describes the features, not the rows

    def _permutations(self, permutations, n_groups, n, call):
        if permutations is None:
            rng = call.shared_rng()
            return np.stack([[rng.permutation(n) for _ in range(self.n_repeats)] for _ in range(n_groups)])
        p = np.asarray(permutations)
        if p.ndim == 2:
            p = np.broadcast_to(p, (n_groups, *p.shape))
        if p.shape != (n_groups, self.n_repeats, n) or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(f"permutations must be integer row orders of shape (n_repeats, N) = {(self.n_repeats, n)} "
                             f"or (n_features, n_repeats, N) = {(n_groups, self.n_repeats, n)}, got {p.shape}")
        if not (np.sort(p, axis=-1) == np.arange(n)).all():
            raise ValueError("every row of permutations must be a permutation of range(N)")
        return p

    def _importances(self, adapter, x, y, state):
        groups, n_groups, perms = state.groups, state.n_groups, state.perms
        n, r = x.shape[0], self.n_repeats
        base_scores = adapter.scores(x)
        classes = np.unique(y).astype(np.int64) if self.per_class else None
        baseline = self._score(y, base_scores)
        raw = np.empty((n_groups, r))
        per_class = None if classes is None else np.empty((len(classes), n_groups, r))
        base_cls = None if classes is None else [self._score(y, base_scores, c) for c in classes]
        member = np.eye(n_groups, dtype=bool)[:, groups]  # (G, *S)
        copies = [(g, k) for g in range(n_groups) for k in range(r)]
        per_call = max(1, adapter.batch_size // n)  # whole permuted copies of the set per model call
        for start in range(0, len(copies), per_call):
            chunk = copies[start:start + per_call]
            batch = np.stack([np.where(member[g], x[perms[g, k]], x) for g, k in chunk])
            s = adapter.scores(batch.reshape(len(chunk) * n, *x.shape[1:])).reshape(len(chunk), n, -1)
            for (g, k), sk in zip(chunk, s):
                raw[g, k] = baseline - self._score(y, sk)
                if classes is not None:
                    for ci, c in enumerate(classes):
                        per_class[ci, g, k] = base_cls[ci] - self._score(y, sk, c)
        return raw, per_class
