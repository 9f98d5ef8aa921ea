"""``lumos explain`` on text: token ids from the data file, words printed in the terminal.

A data file's ``X`` is read as float32 by the loader; when it holds non-negative whole
numbers in two dimensions and the model has an ``nn.Embedding``, they are token ids again
(int64) and the text layout applies (:mod:`lumos.core.text`). An ``.npz`` may carry
``tokens`` (strings ``(N, T)``), ``attention_mask`` (or ``mask``) and ``words`` beside ``X``;
they are passed to the method. After the explanation, each input's words are printed with
ANSI 24-bit backgrounds (red raises the explained score, blue lowers it) on a terminal, and
as ``word(+value)`` for the words above 10 % of the largest |relevance| otherwise.
"""
from __future__ import annotations

import sys

import click
import numpy as np

EXTRA_KEYS = (("tokens", "tokens"), ("attention_mask", "attention_mask"), ("mask", "attention_mask"),
              ("words", "words"))


def text_inputs(model, x: np.ndarray, data_path, limit) -> tuple[np.ndarray, dict]:
    """``(inputs, call options)``: token ids and the file's text arrays when ``x`` holds ids."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return x, {}
    if not (isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.Embedding) for m in model.modules())):
        return x, {}
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or (x < 0).any() or not np.all(x == np.round(x)):
        return x, {}
    opts: dict = {}
    if str(data_path).endswith(".npz"):
        with np.load(data_path, allow_pickle=False) as f:
            for key, name in EXTRA_KEYS:
                if key in f.files and name not in opts:
                    opts[name] = f[key][:limit]
    return x.astype(np.int64), opts


def echo_words(exp, limit: int = 10, colour: bool | None = None) -> None:
    """Print the words of the first ``limit`` inputs of a text explanation."""
    from lumos.plot.text import ansi_words

    colour = sys.stdout.isatty() if colour is None else colour
    for i in range(min(limit, len(exp))):
        head = f"[{i}] class {int(exp.target[i])}: " if exp.target is not None else f"[{i}] "
        click.echo(head + ansi_words(exp.words(i), colour=colour))
