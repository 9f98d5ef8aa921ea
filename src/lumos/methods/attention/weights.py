"""Attention weights as an explanation, with the diagnostics that question them.

For a model whose forward accepts ``return_attention=True`` and returns
``(logits, alpha)`` with ``alpha`` of shape (N, T) (e.g. :class:`lumos.models.AttentionRNN`,
additive attention of Bahdanau et al. 2015, arXiv:1409.0473), the explanation of input
``x`` (N, C, T) is ``alpha`` as (N, 1, T), broadcastable to the input. Padded steps
(``lengths`` or ``mask`` passed to :meth:`AttentionWeights.explain`) have weight 0.

Diagnostics (Jain & Wallace 2019, arXiv:1902.10186; Wiegreffe & Pinter 2019,
arXiv:1908.04626), all per input and over valid steps only:

- ``extras["gradient_importance"]``: ``sum_c |dy_c/dx_{c,t}|``;
- ``extras["loo_importance"]``: ``y_c(x) - y_c(x without step t)``, the step deleted from
  the sequence (one shorter sequence per step, evaluated in batches);
- ``extras["tau_gradient"]``, ``extras["tau_loo"]``: Kendall tau-b between ``alpha`` and
  the magnitudes of those importances;
- ``extras["uniform_scores"]`` and ``extras["uniform_tvd"]``: the same trained model with
  uniform weights (when its forward takes ``uniform_attention=True``) and the total
  variation distance of its output distribution to the model's;
- ``extras["uniform_model_scores"]``: a separately trained uniform-attention model of the
  same architecture, when given as ``uniform_model``.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.model import accepts_keyword as _accepts, run_model
from lumos.core.registry import register
from lumos.core.view import model_view
from lumos.methods.attention.diagnostics import kendall_tau_rows, total_variation
from lumos.methods.base import Chunk, Explainer, State


def _padding(n: int, t: int, lengths, mask) -> tuple[np.ndarray, dict]:
    """Valid-step mask (N, T) and the keyword arguments describing padding to the model."""
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if lengths is not None:
        lengths = np.asarray(lengths.detach().cpu() if isinstance(lengths, torch.Tensor) else lengths)
        if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any() or (lengths > t).any():
            raise ValueError(f"lengths must be {n} integers in [1, {t}], got {lengths!r}")
        return np.arange(t)[None] < lengths[:, None], {"lengths": lengths.astype(np.int64)}
    if mask is not None:
        mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
        if mask.shape != (n, t):
            raise ValueError(f"mask must have shape {(n, t)}, got {mask.shape}")
        if not mask.any(1).all():
            raise ValueError("every sequence needs at least one valid (True) step in mask")
        return mask, {"mask": mask}
    return np.ones((n, t), dtype=bool), {}


def _rows(kw: dict, sl) -> dict:
    return {k: torch.as_tensor(v[sl]) for k, v in kw.items()}


@register("attention", "attention_weights")
class AttentionWeights(Explainer):
    """The model's attention weights over time steps, with Jain & Wallace diagnostics.

    Parameters
    ----------
    diagnostics : bool, default True
        Compute gradient and leave-one-out importance, their Kendall tau with ``alpha``,
        and the uniform-attention comparison. False returns the weights only.
    uniform_model : torch.nn.Module, optional
        A trained model of the same architecture with uniform attention; its scores are
        reported in ``extras["uniform_model_scores"]``.

    ``explain(x, target=None, lengths=None, mask=None)``: ``lengths`` (N,) or ``mask`` (N, T)
    mark padded steps, which get weight 0 and are ignored by the diagnostics.
    """

    needs_gradients = True
    needs_attention = True
    layouts = ("timeseries",)
    call_options = {"lengths": None, "mask": None}

    def __init__(self, model, *, diagnostics: bool = True, uniform_model: torch.nn.Module | None = None, **kwargs):
        super().__init__(model, **kwargs)
        if not _accepts(self.model, "return_attention"):
            raise TypeError(
                f"{type(self.model).__name__}.forward does not take return_attention=True; AttentionWeights needs "
                "a model returning (logits, attention weights), such as lumos.models.AttentionRNN"
            )
        if uniform_model is not None and not isinstance(uniform_model, torch.nn.Module):
            raise TypeError(f"uniform_model must be a torch.nn.Module, got {type(uniform_model).__name__}")
        self.diagnostics = bool(diagnostics)
        self.uniform_model = uniform_model

    def params(self):
        return {**super().params(), "diagnostics": self.diagnostics,
                "uniform_model": None if self.uniform_model is None else type(self.uniform_model).__name__}

    def prepare(self, x, call, lengths=None, mask=None):
        valid, kw = _padding(x.shape[0], x.shape[-1], lengths, mask)
        uniform = None
        if self.diagnostics and self.uniform_model is not None:
            uniform = call.stack.enter_context(model_view(self.uniform_model, self.device))
        return State(call, valid=valid, kw=kw, uniform=uniform)

    def expansion(self, state):
        return 1 + (state.valid.shape[1] + 2 if self.diagnostics else 0)

    @staticmethod
    def _call(model, x, kw, **extra):
        return run_model(model, x, **kw, **extra)

    def attribute_chunk(self, x, targets, state):
        rows = targets.index
        kw = {k: v[rows] for k, v in state.kw.items()}
        xt = state.adapter.to_tensor(x)
        scores, alpha = self._scores_alpha(state, state.call.model, xt, kw)
        t = targets(scores)
        extras = {"alpha": alpha}
        if self.diagnostics:
            extras.update(self._diagnose(state, xt, kw, state.valid[rows], t, scores, alpha))
        return Chunk(alpha[:, None, :], scores, t, extras)

    def finish(self, x, result, state):
        result.meta = {**result.meta, **self._summary(result.extras)}

    def _scores_alpha(self, state, model, xt, kw, **extra):
        with torch.no_grad():
            out = self._call(model, xt, _rows(kw, slice(None)), return_attention=True, **extra)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError("with return_attention=True the model must return (logits, attention weights)")
        logits, a = out
        if a.shape != (len(logits), xt.shape[-1]):
            raise ValueError(f"attention weights have shape {tuple(a.shape)}, expected (N, T) = "
                             f"{(len(logits), xt.shape[-1])}")
        return state.adapter.transform(logits).cpu().numpy(), a.cpu().numpy()

    def _diagnose(self, state, xt, kw, valid, target, scores, alpha) -> dict:
        grad = self._gradient(state, xt, _rows(kw, slice(None)), torch.as_tensor(target, device=xt.device))
        loo = self._leave_one_out(state, xt, kw, valid, target, scores)
        out = {"gradient_importance": grad, "loo_importance": loo,
               "tau_gradient": kendall_tau_rows(alpha, np.abs(grad), valid),
               "tau_loo": kendall_tau_rows(alpha, np.abs(loo), valid)}
        if _accepts(state.call.model, "uniform_attention"):
            uni, _ = self._scores_alpha(state, state.call.model, xt, kw, uniform_attention=True)
            out["uniform_scores"] = uni
            prob = (lambda s: s) if self.adapter.output == "softmax" else _softmax
            out["uniform_tvd"] = total_variation(prob(scores), prob(uni))
        if state.uniform is not None:
            out["uniform_model_scores"], _ = self._scores_alpha(state, state.uniform, xt, kw)
        return out

    def _gradient(self, state, x, kw, target) -> np.ndarray:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = self._call(state.call.model, xg, kw, return_attention=True)[0]
            selected = state.adapter.transform(logits).gather(1, target.view(-1, 1)).sum()
            (g,) = torch.autograd.grad(selected, xg)
        state.call.note_gradient(g)
        return g.abs().sum(1).cpu().numpy()

    def _leave_one_out(self, state, xt, kw, valid, target, scores) -> np.ndarray:
        """``y_c(x) - y_c(x with step t deleted)``; NaN on padded steps and for length-1 inputs."""
        n, t = xt.shape[0], xt.shape[-1]
        loo = np.full((n, t), np.nan)
        if t < 2:
            return loo
        keep = torch.as_tensor(np.array([[j for j in range(t) if j != s] for s in range(t)]), device=xt.device)
        base = scores[np.arange(n), target]
        for rows, steps in expansion_chunks(n, t, state.call.rows(xt[0].numel(), "forward")):
            idx = keep[steps]  # (S, T-1)
            xs = xt[rows][:, :, idx].permute(0, 2, 1, 3)  # (n_r, S, C, T-1)
            xs = xs.reshape(-1, xt.shape[1], t - 1)
            kws = {}
            step_ids = np.arange(t)[steps]
            if "lengths" in kw:
                lens = kw["lengths"][rows][:, None] - (step_ids[None] < kw["lengths"][rows][:, None])
                kws["lengths"] = torch.as_tensor(np.maximum(lens, 1).reshape(-1))
            if "mask" in kw:
                m = kw["mask"][rows][:, idx.cpu().numpy()]  # (n_r, S, T-1)
                m = m.reshape(-1, t - 1)
                m[~m.any(1), 0] = True  # deleting the only valid step: scored, then discarded below
                kws["mask"] = torch.as_tensor(m)
            with torch.no_grad():
                logits = self._call(state.call.model, xs, kws, return_attention=True)[0]
            y = state.adapter.transform(logits).cpu().numpy().reshape(-1, len(step_ids), logits.shape[1])
            tgt = target[rows]
            loo[rows, steps] = base[rows][:, None] - y[np.arange(len(tgt)), :, tgt]
        n_valid = valid.sum(1)
        loo[~valid] = np.nan
        loo[n_valid < 2] = np.nan
        return loo

    @staticmethod
    def _summary(extras) -> dict:
        out = {}
        for k in ("tau_gradient", "tau_loo"):
            if k in extras and np.isfinite(extras[k]).any():
                out[f"mean_{k}"] = float(np.nanmean(extras[k]))
        if "uniform_tvd" in extras:
            out["mean_uniform_tvd"] = float(np.mean(extras["uniform_tvd"]))
        return out


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)
