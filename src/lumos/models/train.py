"""Fit a reference model in seconds on the CPU, reproducibly."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def reset_weights(model: nn.Module, seed: int) -> None:
    """Seed torch and re-initialise, in module order, every layer that has ``reset_parameters``
    (``nn.MultiheadAttention``: ``_reset_parameters``), so that a model built without a seed
    starts from the same weights in every process. Parameters created directly in a module's
    ``__init__`` (a learned position embedding) keep their values."""
    torch.manual_seed(seed)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
        if callable(reset):
            reset()


def fit(model: nn.Module, X: np.ndarray, y: np.ndarray, epochs: int = 20, lr: float = 1e-3,
        batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0, progress: bool = False) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy; returns it in eval mode.

    ``seed`` seeds torch (dropout) and the shuffling; the initial weights are the ones the
    model was built with, so the result is the same in every process when the model is built
    after ``torch.manual_seed(seed)`` (or re-drawn with :func:`reset_weights` first).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    iterator = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"training {type(model).__name__}", unit="epoch")
    model.train()
    for _ in iterator:
        order = rng.permutation(len(Xt))
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start:start + batch_size])
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            out = model(torch.as_tensor(X[start:start + batch_size], dtype=torch.float32))
            out = out[0] if isinstance(out, tuple) else out
            correct += int((out.argmax(1).numpy() == y[start:start + batch_size]).sum())
    return correct / len(X)
