"""Temporal Saliency Rescaling, TSR (Ismail, Gunady, Corrada Bravo, Feizi 2020,
arXiv:2010.13924, Algorithm 1), around any registered attribution method R.

Step one, the time-relevance score of every step t:

    Δ_t = Σ_{c,s} |R(x)_{c,s} − R(x with every channel at step t masked)_{c,s}|;

step two, for the steps whose Δ_t exceeds the threshold α, the feature-relevance score of
each channel c,

    Δ_{t,c} = Σ_{c',s} |R(x)_{c',s} − R(x with channel c at step t masked)_{c',s}|,

and the attribution R^TSR_{c,t} = Δ_t · Δ_{t,c} (0 at the steps below α). Masked cells take
the ``baseline`` (0 by default, as tint's ``TSRTunnel``). α is ``threshold``: ``"mean"``
(the mean of Δ over the steps of each input, the default here) or a number. (The authors'
code min-max scales Δ_t over time and Δ_{t,c} over channels, thresholds at the 0.55
quantile and gives 0.1 instead of Δ_{t,c} below it; tint's ``TSRTunnel`` takes an absolute
α = 0.5. Neither is reproduced.) A step the model ignores leaves R unchanged, so its
Δ_t = 0 and its attributions are exactly 0.

The T masked copies of a chunk of inputs (with the inputs themselves) go through the base
explainer's ``explain`` as one stacked batch, and the selected C copies per step as a
second one (one per input for a base that draws random numbers, whose per-row seeds then
follow the input, so results do not depend on the chunking). Each copy is explained for
its input's target: the given one, or the class predicted for the unmasked input.
"""
from __future__ import annotations

import numpy as np

from lumos.core.batching import chunk_slices
from lumos.core.registry import get, register, split_options
from lumos.methods.agnostic.base import reference_rows, row_reference
from lumos.methods.base import Chunk, Explainer, State

THRESHOLDS = ("mean",)
_STAGE_TWO = 1 << 40
"""Row offset of the second stage's copies, so their seeds never meet the first stage's."""


@register("tsr", "temporal_saliency_rescaling")
class TemporalSaliencyRescaling(Explainer):
    """Two-step temporal saliency rescaling of a base attribution method.

    Parameters
    ----------
    base : str or Explainer class, default "integrated_gradients"
        The method R (any registered method that explains (N, C, T) series).
    base_options : dict, optional
        Its options: constructor options (e.g. ``n_steps``) and call options (e.g. a
        ``baseline`` of IG, or the ``background`` of a Shapley method), told apart by name.
    threshold : "mean" or float, default "mean"
        α: the steps with Δ_t > α get feature scores.

    ``explain(x, target, baseline=0.0)``: the value of masked cells (a scalar, one sample
    or one per input).
    """

    layouts = ("timeseries",)
    needs_gradients = True
    """As the base method (the default, IG, takes gradients); each instance follows its base."""
    call_options = {"baseline": 0.0}

    def __init__(self, model, *, base="integrated_gradients", base_options: dict | None = None,
                 threshold="mean", **kwargs):
        cls = get(base) if isinstance(base, str) else base
        if not (isinstance(cls, type) and issubclass(cls, Explainer)) or issubclass(cls, TemporalSaliencyRescaling):
            raise TypeError(f"base must be the name or class of a registered attribution method, got {base!r}")
        self.needs_gradients = cls.needs_gradients
        super().__init__(model, **kwargs)
        if "timeseries" not in cls.layouts or cls.scope != "local":
            raise ValueError(f"TSR needs a base method that explains each (C, T) series; {cls.__name__} does not")
        if isinstance(threshold, str):
            if threshold not in THRESHOLDS:
                raise ValueError(f"threshold must be 'mean' or a number, got {threshold!r}")
        elif isinstance(threshold, bool) or not np.isfinite(np.float64(threshold)):
            raise ValueError(f"threshold must be 'mean' or a finite number, got {threshold!r}")
        self.threshold = threshold
        config, self.base_call = split_options(cls, dict(base_options or {}))
        self.base = cls(model, output=self.adapter.output, batch_size=self.budget.batch_size, device=self.device,
                        progress=False, **config)

    def params(self):
        return {**super().params(), "base": self.base.name, "base_params": self.base.params(),
                "threshold": self.threshold}

    def with_model(self, model):
        other = super().with_model(model)
        other.base = self.base.with_model(model)
        return other

    def prepare(self, x, call, baseline=0.0):
        return State(call, mask=row_reference(baseline, x).astype(x.dtype, copy=False))

    def expansion(self, state):
        return 1  # the base explainer plans its own model rows; chunks bound the stacked copies

    def plan(self, x, state):
        _, channels, steps = x.shape
        per = state.call.budget.inputs_per_chunk(x[0].size, 1 + steps * (channels + 1), "forward")
        return list(chunk_slices(x.shape[0], per))

    def expected_rows(self, x, state):
        return None

    def _relevance(self, copies: np.ndarray, target: np.ndarray, row_offset: int) -> np.ndarray:
        return np.asarray(self.base.explain(copies, target=target, row_offset=int(row_offset), **self.base_call).values,
                          dtype=np.float64)

    def attribute_chunk(self, x, targets, state):
        call = state.call
        scores = state.adapter.scores(x)
        t = targets(scores)
        n, channels, steps = x.shape
        mask = reference_rows(state.mask, targets.index, x.shape)
        first = call.row_offset + int(targets.index[0])
        # stage one: the inputs and their T copies with one step masked, input-major
        copies = np.repeat(x[:, None], steps + 1, axis=1)  # (n, 1 + T, C, T)
        idx = np.arange(steps)
        copies[:, 1 + idx, :, idx] = mask[:, :, idx].transpose(2, 0, 1)
        rel = self._relevance(copies.reshape(-1, channels, steps), np.repeat(t, steps + 1), first * (steps + 1))
        rel = rel.reshape(n, steps + 1, channels, steps)
        ref = rel[:, 0]
        time_score = np.abs(rel[:, 1:] - ref[:, None]).sum((2, 3))  # (n, T)
        alpha = time_score.mean(1, keepdims=True) if self.threshold == "mean" else np.float64(self.threshold)
        above = time_score > alpha
        # stage two: for each step above alpha, C copies with one cell masked
        j, s = np.nonzero(above)
        cells = np.repeat(x[j][:, None], channels, axis=1)  # (m, C, C, T)
        c = np.arange(channels)
        cells[np.arange(len(j))[:, None], c, c, s[:, None]] = mask[j[:, None], c, s[:, None]]
        feature_score = np.zeros((n, channels, steps))
        if len(j):
            if self.base.stochastic:  # one call per input: its copies' row seeds follow the input alone
                parts = [self._relevance(cells[j == i].reshape(-1, channels, steps),
                                         np.repeat(t[i], (j == i).sum() * channels),
                                         _STAGE_TWO + (first + i) * steps * channels) for i in np.unique(j)]
                rel2 = np.concatenate(parts)
            else:
                rel2 = self._relevance(cells.reshape(-1, channels, steps), np.repeat(t[j], channels), _STAGE_TWO)
            rel2 = rel2.reshape(len(j), channels, channels, steps)
            feature_score[j, :, s] = np.abs(rel2 - ref[j][:, None]).sum((2, 3))
        values = time_score[:, None, :] * feature_score * above[:, None, :]
        return Chunk(values, scores, t, extras={"time_relevance": time_score, "above_threshold": above})
