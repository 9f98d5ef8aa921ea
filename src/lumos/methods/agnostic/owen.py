"""Owen values over a hierarchy of player groups (Owen 1977, "Values of games with a priori
unions"; the nested form is Winter 1989's value for levels structures; shap's
PartitionExplainer computes it for a binary hierarchy).

For players partitioned into unions B_1..B_m and player i in union B_k,

    φ_i = Σ_{R ⊆ M∖{k}} Σ_{T ⊆ B_k∖{i}}  |R|!(m−|R|−1)!/m! · |T|!(b_k−|T|−1)!/b_k!
          · [v(Q_R ∪ T ∪ {i}) − v(Q_R ∪ T)],          Q_R = ∪_{r∈R} B_r:

the unions play a Shapley game among themselves, and each union's share is divided
among its members by a Shapley game in which the other unions are present or absent as
whole blocks. A deeper hierarchy nests the same rule: at every node, its children play
a Shapley game, given the coalition of the rest that the ancestors' games put in place.
Owen values are efficient (Σ_i φ_i = v(N) − v(∅) = f(x) − E f(background)), symmetric
within a union, and equal to Shapley values when the hierarchy is flat (one level) or
every union is a single player; they differ when players interact across unions
(e.g. v = x_2 · max(x_0, x_1) with unions {0, 1}, {2}: Owen (¼, ¼, ½), Shapley
(1/6, 1/6, 2/3)).

Players are the features or feature groups (``groups=``, e.g. time windows or
superpixels); the hierarchy nests them (windows inside segments, superpixels inside
regions). The values are computed exactly: every coalition the nested games need is
enumerated once (:func:`owen_coefficients`), so the cost is the number of distinct
coalitions (2^(m−1) · 2^(b−1) · 2 per player for two levels), bounded by ``max_evals``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.shapley import ShapleyExplainer


def hierarchy_from_linkage(linkage: np.ndarray) -> list:
    """A scipy linkage matrix (n−1, 4) (as shap's ``Partition`` masker takes) as nested lists."""
    z = np.asarray(linkage)
    n = z.shape[0] + 1
    nodes: list[Any] = list(range(n))
    for a, b in z[:, :2].astype(int):
        nodes.append([nodes[a], nodes[b]])
    return nodes[-1]


def segment_hierarchy(n_players: int, per_segment: int) -> list:
    """Consecutive players (time windows) nested in segments of ``per_segment``."""
    n_players, per_segment = check_positive_int(n_players, "n_players"), check_positive_int(per_segment, "per_segment")
    return [list(range(s, min(s + per_segment, n_players))) for s in range(0, n_players, per_segment)]


def _normalise(node, seen: list) -> Any:
    if isinstance(node, (int, np.integer)):
        seen.append(int(node))
        return int(node)
    if isinstance(node, (str, bytes, dict)) or not hasattr(node, "__iter__"):
        raise TypeError(node)
    children = [_normalise(c, seen) for c in node]
    if not children:
        raise ValueError("hierarchy: a node has no children")
    return children[0] if len(children) == 1 else children


def check_hierarchy(hierarchy, n_players: int) -> Any:
    """Nested lists of player indices (or a linkage matrix) holding every player once."""
    if isinstance(hierarchy, np.ndarray) and hierarchy.ndim == 2 and hierarchy.shape[1] == 4:
        hierarchy = hierarchy_from_linkage(hierarchy)
    seen: list[int] = []
    try:
        tree = _normalise(hierarchy, seen)
    except TypeError:
        raise ValueError("hierarchy must be nested lists of player (group) indices, e.g. [[0, 1], [2, 3, 4]], "
                         "or a scipy linkage matrix") from None
    if sorted(seen) != list(range(n_players)):
        raise ValueError(f"hierarchy must hold every one of the {n_players} players (features or groups) exactly "
                         f"once; it holds {sorted(seen)}")
    return tree


def _members(node) -> int:
    return 1 << node if isinstance(node, int) else sum(_members(c) for c in node)


def owen_coefficients(tree, n_players: int, max_evals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The coalitions ``masks (M, d)`` and coefficients ``C (M, d)`` with φ = v(masks) @ C
    for the Owen value of the hierarchy ``tree``."""
    terms: dict[int, dict[int, float]] = {}  # coalition bitmask -> {player: coefficient}

    def add(mask, player, w):
        row = terms.setdefault(mask, {})
        row[player] = row.get(player, 0.0) + w

    def walk(node, contexts: dict[int, float]):
        if isinstance(node, int):
            bit = 1 << node
            for ctx, w in contexts.items():
                add(ctx | bit, node, w)
                add(ctx, node, -w)
            if max_evals is not None and len(terms) > max_evals:
                raise ValueError(f"Owen values of this hierarchy need more than max_evals={max_evals} coalitions; "
                                 "nest the players deeper (fewer children per node) or raise max_evals")
            return
        members = [_members(c) for c in node]
        m = len(node)
        if max_evals is not None and (m - 1 >= 62 or len(contexts) << (m - 1) > max_evals):
            # checked before the 2^(m-1) subsets are walked: a flat hierarchy of 64 pixels would never end
            raise ValueError(f"Owen values of this hierarchy need more than max_evals={max_evals} coalitions (a node "
                             f"with {m} children needs 2^{m - 1} subsets per child); nest the players deeper "
                             "(hierarchy=..., fewer children per node), group the features (groups=...) or raise "
                             "max_evals")
        weight = [math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m) for r in range(m)]
        for j, child in enumerate(node):
            others = [members[k] for k in range(m) if k != j]
            inner: dict[int, float] = {}
            for bits in range(1 << (m - 1)):  # subsets R of the other children
                q = sum(o for k, o in enumerate(others) if bits >> k & 1)
                wr = weight[bin(bits).count("1")]
                for ctx, w in contexts.items():
                    key = ctx | q
                    inner[key] = inner.get(key, 0.0) + w * wr
            walk(child, inner)

    walk(tree, {0: 1.0})
    keys = sorted(terms)
    masks = ((np.array(keys, dtype=object)[:, None] >> np.arange(n_players)) & 1).astype(bool)
    coef = np.zeros((len(keys), n_players))
    for r, key in enumerate(keys):
        for player, w in terms[key].items():
            coef[r, player] = w
    return masks, coef


@register("owen", "owen_values", "partition_shap")
class OwenValues(ShapleyExplainer):
    """Exact Owen values over a hierarchy of players (Owen 1977; shap's PartitionExplainer):
    Shapley games among the children of every node of the hierarchy, nested. Efficient:
    ``values.sum() + base_value == f(x)``. See the module docstring.

    Parameters
    ----------
    hierarchy : nested lists or linkage matrix
        Nests the players — features, or the groups of ``groups=`` — e.g.
        ``[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]`` for 12 windows in 3 segments
        (:func:`segment_hierarchy`), or a scipy linkage matrix (binary, as shap's
        ``maskers.Partition(clustering=...)``). Also accepted by ``explain()``.
    max_evals : int, default 65536
        Refuse hierarchies needing more distinct coalitions per input.
    background / baseline : the absent players take the background rows' values (one row:
        a baseline), as for the other Shapley explainers.
    """

    stochastic = False
    call_options = {**ShapleyExplainer.call_options, "hierarchy": None}

    def __init__(self, model, *, hierarchy=None, max_evals: int = 65536, **kwargs):
        super().__init__(model, **kwargs)
        self.hierarchy = hierarchy
        self.max_evals = check_positive_int(max_evals, "max_evals")

    def params(self):
        return {**super().params(), "max_evals": self.max_evals}

    def prepare(self, x, call, hierarchy=None, **options):
        state = super().prepare(x, call, **options)
        d = state.n_groups
        h = hierarchy if hierarchy is not None else self.hierarchy
        tree = list(range(d)) if h is None else check_hierarchy(h, d)  # none: one level (Shapley)
        state.masks, state.coef = owen_coefficients(tree, d, self.max_evals)
        return state

    def _width(self, state):
        return state.masks.shape[0]

    def expansion(self, state):
        return state.masks.shape[0] * state.bg.shape[0]

    def _shapley(self, x, target, f_x, base, state):
        return self._values(x, target, state.masks, state) @ state.coef, {}
