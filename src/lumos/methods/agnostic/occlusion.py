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
from lumos.methods.agnostic.base import AgnosticExplainer, reference_rows, row_reference, target_scores
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
        return state.n_occlusions

    def attribute_chunk(self, x, targets, state):
        scores, t, f_x = self.scored(x, targets, state)
        base = reference_rows(state.base, targets.index, x.shape)
        if state.windows is None:
            values = self._groups(x, t, base, f_x, state)
        else:
            values = self._windows(x, t, base, f_x, state)
        return Chunk(values, scores, t)

    def finish(self, x, result, state):
        result.extras["n_occlusions"] = np.asarray(state.n_occlusions)
        result.feature_names = state.feature_names

    @staticmethod
    def _windows(x, target, base, f_x, state):
        adapter, windows = state.adapter, state.windows
        total = np.zeros(x.shape)
        for rows, cols in expansion_chunks(x.shape[0], len(windows), adapter.batch_size):
            xs, bs = x[rows], base[rows]
            wins = windows[cols]
            batch = np.repeat(xs[:, None], len(wins), axis=1)  # (r, c, *S)
            for k, win in enumerate(wins):
                batch[(slice(None), k) + win] = bs[(slice(None),) + win]
            r, c = batch.shape[:2]
            drop = f_x[rows, None] - target_scores(adapter, batch.reshape(r * c, *x.shape[1:]),
                                                   np.repeat(target[rows], c)).reshape(r, c)
            block = total[rows]
            for k, win in enumerate(wins):
                block[(slice(None),) + win] += drop[:, k].reshape((r,) + (1,) * (x.ndim - 1))
            total[rows] = block
        return total / state.count

    @staticmethod
    def _groups(x, target, base, f_x, state):
        adapter, keep, n_groups = state.adapter, state.keep, state.n_groups
        drops = np.empty((x.shape[0], n_groups))
        for rows, cols in expansion_chunks(x.shape[0], n_groups, adapter.batch_size):
            batch = np.where(keep[None, cols], x[rows, None], base[rows, None])
            r, c = batch.shape[:2]
            drops[rows, cols] = f_x[rows, None] - target_scores(
                adapter, batch.reshape(r * c, *x.shape[1:]), np.repeat(target[rows], c)).reshape(r, c)
        return drops[:, state.groups]
