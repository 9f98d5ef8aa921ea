"""Diagnostics of attention as explanation.

- Jain & Wallace 2019, "Attention is not Explanation" (arXiv:1902.10186): rank agreement
  (Kendall tau) between the attention weights and gradient or leave-one-out importance.
- Wiegreffe & Pinter 2019, "Attention is not not Explanation" (arXiv:1908.04626): does a
  model of the same architecture with uniform attention do as well? If so, the learned
  weights are not needed for the decision and say little about it.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import kendalltau


def kendall_tau_rows(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None,
                     return_pvalue: bool = False):
    """Kendall tau-b between ``a[i]`` and ``b[i]`` over the steps where ``valid[i]``;
    NaN where fewer than two valid steps or a row is constant. ``return_pvalue=True``
    returns ``(tau, p)`` with scipy's two-sided p-values (Jain & Wallace's "significant"
    rows are those with p < 0.05)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"kendall_tau_rows needs two (N, T) arrays of the same shape, got {a.shape} and {b.shape}")
    valid = np.ones(a.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    out, pvalue = np.full(a.shape[0], np.nan), np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        m = valid[i] & np.isfinite(a[i]) & np.isfinite(b[i])
        if m.sum() >= 2 and np.ptp(a[i][m]) > 0 and np.ptp(b[i][m]) > 0:
            res = kendalltau(a[i][m], b[i][m])
            out[i], pvalue[i] = res.statistic, res.pvalue
    return (out, pvalue) if return_pvalue else out


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``0.5 * sum_k |p_k - q_k|`` per row (the output distance used by Jain & Wallace)."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=1)


def compare_uniform_attention(model: torch.nn.Module, uniform_model: torch.nn.Module, X, y,
                              lengths=None, batch_size: int = 256) -> dict:
    """Test accuracy of an attention model and of a uniform-attention model of the same
    architecture (trained separately), with the fraction of equal predictions.

    Returns ``{"accuracy": ..., "uniform_accuracy": ..., "agreement": ...,
    "mean_tvd": ...}``; a uniform model as accurate as the attention model means the
    learned weights are not needed for the decision (Wiegreffe & Pinter 2019).
    """
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = np.asarray(y)
    preds, probs = [], []
    for m in (model, uniform_model):
        was = m.training
        m.eval()
        outs = []
        with torch.no_grad():
            for s in range(0, len(X), batch_size):
                kw = {} if lengths is None else {"lengths": torch.as_tensor(lengths)[s:s + batch_size]}
                out = m(X[s:s + batch_size], **kw)
                outs.append((out[0] if isinstance(out, tuple) else out).float())
        m.train(was)
        logits = torch.cat(outs)
        preds.append(logits.argmax(1).numpy())
        probs.append(torch.softmax(logits, 1).numpy())
    return {"accuracy": float((preds[0] == y).mean()), "uniform_accuracy": float((preds[1] == y).mean()),
            "agreement": float((preds[0] == preds[1]).mean()), "mean_tvd": float(total_variation(*probs).mean())}
