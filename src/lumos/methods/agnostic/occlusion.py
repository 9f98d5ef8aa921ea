"""Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901).

A window is slid with a stride over the sample (any number of dimensions: a time
window, an image patch, one channel or all channels) and replaced by a baseline; each
element's attribution is the mean, over the windows covering it, of

    f_t(x) − f_t(x with the window set to the baseline).

Alternatively ``groups`` (a group map, see :mod:`~lumos.methods.agnostic.masking`)
occludes one feature group at a time (superpixels, channels). For a linear model each
window's score is Σ_{i ∈ window} w_i (x_i − b_i). All occluded copies of a chunk of inputs
go through the model in one call.
"""
from __future__ import annotations

import math

import numpy as np

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.methods.agnostic.base import AgnosticExplainer, reference_rows, row_reference, target_columns
from lumos.methods.agnostic.masking import resolve_groups, sliding_windows
from lumos.methods.base import Chunk, State


def default_window(sample_shape) -> tuple:
    """1 per element for tables; else the whole first (channel) axis and ~1/8 of the others."""
    if len(sample_shape) == 1:
        return (1,)
    return (None,) + tuple(max(1, math.ceil(s / 8)) for s in sample_shape[1:])


@register("occlusion")
class Occlusion(AgnosticExplainer):
    """Occlusion sensitivity.

    Parameters
    ----------
    window : int or tuple, optional
        Window shape per sample dimension (``None`` spans the axis). Default: 1 for
        tables; the whole channel axis and ~1/8 of every other axis otherwise.
    stride : int or tuple, optional
        Step per dimension; default = window (non-overlapping). Overlapping windows are
        averaged; a last window aligned to the end covers any remainder.

    ``explain(x, target, baseline=0.0, groups=None, feature_names=None)``: ``baseline`` is a
    scalar, one sample or one per input; with ``groups`` each group is occluded in turn and
    every element of a group gets the group's score.
    """

    call_options = {"baseline": 0.0, "groups": None, "feature_names": None}

    def __init__(self, model, *, window=None, stride=None, **kwargs):
        super().__init__(model, **kwargs)
        self.window = window
        self.stride = stride

    def params(self):
        return {**super().params(), "window": self.window, "stride": self.stride}

    def prepare(self, x, call, baseline=0.0, groups=None, feature_names=None):
        base = row_reference(baseline, x).astype(x.dtype, copy=False)
        state = State(call, base=base, feature_names=feature_names, windows=None, groups=None)
        if groups is not None:
            state.groups, state.n_groups = resolve_groups(groups, x.shape[1:])
            state.keep = ~np.eye(state.n_groups, dtype=bool)[:, state.groups]  # (G, *S): False on the occluded group
            state.n_occlusions = state.n_groups
        else:
            state.windows = sliding_windows(x.shape[1:], self.window or default_window(x.shape[1:]), self.stride)
            state.count = np.zeros(x.shape[1:])
            for win in state.windows:
                state.count[win] += 1
            state.n_occlusions = len(state.windows)
        return state

    def expansion(self, state):
        return state.n_occlusions + 1  # + the input itself, in the same call (see _attribute)

    def expected_rows(self, x, state):
        return x.shape[0] * self.expansion(state)

    def attribute_chunk(self, x, targets, state):
        return self._attribute(x, targets, reference_rows(state.base, targets.index, x.shape), state)

    def _attribute(self, x, targets, base, state, s: int = 1):
        """The occlusion map of the inputs ``x`` (n, *S) with the replacements ``base``
        (n·s, *S: ``s`` per input, input by input; the map is the mean over them).

        One model call when the chunk's rows fit the budget: the inputs (their scores give
        the prediction, the target and f_t(x)) and their occluded copies go through the
        model together (a recurrent model's call costs nearly as much for 64 rows as for
        256, so a call of the inputs alone cost as much as their occlusions); otherwise the
        inputs first, then the copies in calls of at most ``batch_size`` rows.

        A copy equal to its input (a black patch occluded with a black baseline, a replacement
        equal to the data) changes nothing: its drop is exactly 0 and the model does not see it."""
        n, occ, adapter, shape = x.shape[0], state.n_occlusions, state.adapter, x.shape[1:]
        xr = np.repeat(x, s, axis=0) if s > 1 else x
        total = np.zeros(xr.shape)
        if n * (s * occ + 1) <= adapter.batch_size:
            copies = self._copies(xr, base, slice(0, occ), state)  # (n·s, occ, *S)
            changed = _changed(copies, xr)  # (n·s, occ)
            out = adapter.scores(np.concatenate([x, copies[changed]]))
            scores = out[:n]
            t = targets(scores)
            t_rep, f_rep = np.repeat(t, s), np.repeat(scores[np.arange(n), t], s)
            drops = _drops(changed, f_rep, t_rep, out[n:], state.call)
            total = self._spread(drops, slice(0, n * s), slice(0, occ), total, state)
        else:
            scores, t, f_x = self.scored(x, targets, state)
            t_rep, f_rep = np.repeat(t, s), np.repeat(f_x, s)
            for rows, cols in expansion_chunks(n * s, occ, adapter.batch_size):
                copies = self._copies(xr[rows], base[rows], cols, state)
                changed = _changed(copies, xr[rows])
                perturbed = adapter.scores(copies[changed]) if changed.any() else None
                total = self._spread(_drops(changed, f_rep[rows], t_rep[rows], perturbed, state.call), rows, cols,
                                     total, state)
        values = total if state.windows is None else total / state.count
        return Chunk(values if s == 1 else values.reshape(n, s, *shape).mean(1), scores, t)

    @staticmethod
    def _copies(x, base, cols, state):
        """The occluded copies ``(r, c, *S)`` of the rows ``x``: occlusions ``cols`` (groups or windows)."""
        if state.windows is None:
            return np.where(state.keep[None, cols], x[:, None], base[:, None])
        wins = state.windows[cols]
        batch = np.repeat(x[:, None], len(wins), axis=1)
        for k, win in enumerate(wins):
            batch[(slice(None), k) + win] = base[(slice(None),) + win]
        return batch

    @staticmethod
    def _spread(drops, rows, cols, total, state):
        """Add the score drops ``(r, c)`` of occlusions ``cols`` of inputs ``rows`` to their cells
        (groups: the drop of a cell's group; windows: summed over the windows covering it)."""
        if state.windows is None:
            full = np.zeros((drops.shape[0], state.n_groups))
            full[:, cols] = drops
            total[rows] += full[:, state.groups]
            return total
        block = total[rows]
        for k, win in enumerate(state.windows[cols]):
            block[(slice(None),) + win] += drops[:, k].reshape((-1,) + (1,) * (total.ndim - 1))
        total[rows] = block
        return total

    def finish(self, x, result, state):
        result.extras["n_occlusions"] = np.asarray(state.n_occlusions)
        result.feature_names = state.feature_names


def _drops(changed: np.ndarray, f_x: np.ndarray, target: np.ndarray, perturbed, call) -> np.ndarray:
    """``(r, c)`` score drops ``f_t(x_i) - f_t(copy_ik)`` from the scores ``perturbed`` of the changed
    copies (in order; None when none changed): exactly 0 for a copy equal to its input, which the
    model did not see (counted as done for the progress bar)."""
    drops = np.zeros(changed.shape)
    flat = changed.reshape(-1)
    if perturbed is not None:
        c = changed.shape[1]
        drops[changed] = np.repeat(f_x, c)[flat] - target_columns(perturbed, np.repeat(target, c)[flat])
    call.count_rows(int(flat.size - flat.sum()))
    return drops


def _changed(copies: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(r, c)``: whether copy ``k`` of row ``i`` differs from the row (NaN counts as a change)."""
    r, c = copies.shape[:2]
    return (copies.reshape(r, c, -1) != x.reshape(r, 1, -1)).any(-1)
