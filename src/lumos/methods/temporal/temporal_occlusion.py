"""Augmented and temporal occlusion (Tonekaboni et al. 2020, FIT, arXiv:2003.02821; tint's
``AugmentedOcclusion``, ``TemporalOcclusion`` and ``TemporalAugmentedOcclusion``).

**Augmented occlusion** is :class:`~lumos.methods.agnostic.Occlusion` whose replacement is
drawn from the data instead of a constant: for each input, ``n_samples`` rows ``b`` of the
``background`` (training rows) are drawn uniformly, and each element's attribution is the
mean, over the draws and the windows W covering it, of

    f_t(x) − f_t(x with W replaced by b_W).

A window's score is then an estimate of E_b[f_t(x) − f_t(x_{W ← b_W})]; for a linear model
it is Σ_{i ∈ W} w_i (x_i − E[b_i]) on average. With a one-row background ``b₀`` it is
exactly ``Occlusion`` with ``baseline=b₀``. (tint draws a row per window and sample; here a
draw serves every window of the same copy, which leaves each window's estimate unchanged.)

**Temporal occlusion** explains a model that predicts from the series seen so far, step
by step as tint's ``TimeForwardTunnel(TemporalOcclusion)``: the score of channel window W
at step t is

    f_t(x_{≤t}) − f_t(x_{<t}, x_t with W replaced),

the model called on the prefix ``x[..., :t+1]`` and only its last step occluded, by the
``baseline``'s step t (tint's ``TemporalOcclusion``) or, given a ``background``, by the
step t of drawn rows (``TemporalAugmentedOcclusion``, FIT's augmented feature occlusion).
The target is the same at every step (the given one, or the class predicted for the whole
series).

Draws come from a generator seeded by (seed, row_offset + i) for input i, so results do not
depend on the batch size or the chunking. All occluded copies of a chunk of inputs (of one
prefix length, with the prefix itself, for temporal occlusion) go through the model in one
call (of the row budget).
"""
from __future__ import annotations

import numpy as np

from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer, reference_rows, row_reference, target_scores
from lumos.methods.agnostic.masking import as_background, sliding_windows
from lumos.methods.agnostic.occlusion import Occlusion
from lumos.methods.base import Chunk, State


def draw_rows(call, index: np.ndarray, n_background: int, shape: tuple[int, ...]) -> np.ndarray:
    """Background row indices ``(len(index), *shape)``, drawn for each input from its own
    generator (seed, row_offset + i)."""
    return np.stack([call.rng(int(i)).integers(n_background, size=shape) for i in index])


@register("augmented_occlusion", "feature_occlusion_augmented")
class AugmentedOcclusion(Occlusion):
    """Occlusion with replacements drawn from the data.

    Parameters
    ----------
    window, stride :
        As :class:`~lumos.methods.agnostic.Occlusion` (default: the whole channel axis and
        about 1/8 of the time axis for (C, T) series).
    n_samples : int, default 1
        Background rows drawn per input (tint's ``n_sampling``); the attribution is the
        mean over them.
    seed : int or None, default 0

    ``explain(x, target, background=..., groups=None, feature_names=None)``: ``background``
    (B, *sample_shape) are rows of the training data (required).
    """

    needs_background = True
    stochastic = True
    call_options = {"background": None, "groups": None, "feature_names": None}

    def __init__(self, model, *, window=None, stride=None, n_samples: int = 1, seed: int | None = 0, **kwargs):
        super().__init__(model, window=window, stride=stride, **kwargs)
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.seed = seed

    def params(self):
        return {**super().params(), "n_samples": self.n_samples, "seed": self.seed}

    def prepare(self, x, call, background=None, groups=None, feature_names=None):
        state = super().prepare(x, call, baseline=0.0, groups=groups, feature_names=feature_names)
        state.background = as_background(background, x)
        return state

    def expansion(self, state):
        return state.n_occlusions * self.n_samples + 1

    def attribute_chunk(self, x, targets, state):
        rows = draw_rows(state.call, targets.index, len(state.background), (self.n_samples,)).reshape(-1)
        return self._attribute(x, targets, state.background[rows], state, self.n_samples)


@register("temporal_occlusion", "temporal_augmented_occlusion")
class TemporalOcclusion(AgnosticExplainer):
    """Occlusion of the last step of every prefix (tint's ``TimeForwardTunnel`` over
    ``TemporalOcclusion``; with a background, ``TemporalAugmentedOcclusion``).

    Parameters
    ----------
    window : int, default 1
        Channels occluded together (tint's sliding window over features); ``None`` for all
        channels at once.
    stride : int, optional
        Step between channel windows; default = window. Overlapping windows are averaged.
    n_samples : int, default 1
        Background rows drawn per input and step (with ``background``).
    seed : int or None, default 0

    ``explain(x, target, baseline=0.0, background=None)``: the replacement is the
    ``baseline``'s step t (a scalar, one sample or one per input), or, with ``background``
    rows (B, C, T), the step t of rows drawn from them.
    """

    layouts = ("timeseries",)
    needs_prefixes = True
    """Calls the model on every prefix ``x[..., :t+1]`` (it must accept any length)."""
    stochastic = True
    call_options = {"baseline": 0.0, "background": None}

    def __init__(self, model, *, window: int | None = 1, stride: int | None = None, n_samples: int = 1,
                 seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.window, self.stride = window, stride
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.seed = seed

    def params(self):
        return {**super().params(), "window": self.window, "stride": self.stride, "n_samples": self.n_samples,
                "seed": self.seed}

    def prepare(self, x, call, baseline=0.0, background=None):
        channels = sliding_windows(x.shape[1:2], (self.window,), None if self.stride is None else (self.stride,))
        count = np.zeros(x.shape[1])
        for (win,) in channels:
            count[win] += 1
        bg = None if background is None else as_background(background, x)
        return State(call, channels=[w for (w,) in channels], count=count, background=bg,
                     base=row_reference(baseline, x).astype(x.dtype, copy=False))

    def _draws(self, state):
        return 1 if state.background is None else self.n_samples

    def expansion(self, state):
        return 1 + len(state.channels) * self._draws(state)

    def expected_rows(self, x, state):
        return x.shape[0] * (x.shape[2] * self.expansion(state) + 1)

    def attribute_chunk(self, x, targets, state):
        scores, t, _ = self.scored(x, targets, state)
        n, channels, steps = x.shape
        s = self._draws(state)
        if state.background is None:
            refs = reference_rows(state.base, targets.index, x.shape)[:, None]  # (n, 1, C, T)
        else:
            drawn = draw_rows(state.call, targets.index, len(state.background), (steps, s))  # (n, T, s)
        copies = 1 + len(state.channels) * s  # the prefix itself, then s draws per channel window
        values = np.zeros(x.shape)
        for step in range(steps):
            last = refs[..., step] if state.background is None else state.background[drawn[:, step], :, step]
            last = np.broadcast_to(last, (n, s, channels))
            batch = np.repeat(x[:, None, :, :step + 1], copies, axis=1)  # (n, copies, C, step + 1)
            for k, win in enumerate(state.channels):
                batch[:, 1 + k * s:1 + (k + 1) * s, win, step] = last[:, :, win]
            f = target_scores(state.adapter, batch.reshape(n * copies, channels, step + 1),
                              np.repeat(t, copies)).reshape(n, copies)
            drops = (f[:, :1] - f[:, 1:]).reshape(n, len(state.channels), s).mean(2)  # (n, windows)
            for k, win in enumerate(state.channels):
                values[:, win, step] += drops[:, k, None]
        values /= state.count[:, None]
        return Chunk(values, scores, t)
