"""Synthetic sentences with a planted token that decides the label (a "Clever Hans" for text).

Filler words are drawn uniformly from a vocabulary of ``n_words`` made-up words
(``"w0" ... "w{n-1}"``), so they carry no information about the label. A sentence of class 1
holds the planted word (``"zephyr"`` by default) once, at a uniformly drawn position; a
sentence of class 0 does not. The ground truth of every explanation is therefore known:
the relevance of class 1 belongs on the planted token, and removing it (replacing it by
``<mask>``) turns the sentence into class 0.

>>> data = make_planted_text(400, seed=0)
>>> data.ids.shape, data.labels.mean()          # (400, 12) ids, balanced classes
>>> data.planted_position[data.labels == 1]     # where the cue is (>= 0), −1 without one
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lumos.core.text import Vocabulary


@dataclass
class SyntheticText:
    """Sentences, their ids ``(N, T)``, mask, labels and the position of the planted token."""

    sentences: list[str]
    ids: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    planted_position: np.ndarray
    """Token position of the planted word in ``ids`` (−1 where there is none)."""
    vocab: Vocabulary
    planted_id: int

    @property
    def tokens(self) -> np.ndarray:
        """Token strings ``(N, T)`` (pads as ``""``)."""
        return self.vocab.decode(self.ids)

    def planted_mask(self) -> np.ndarray:
        """``(N, T)`` True at the planted token."""
        out = np.zeros(self.ids.shape, dtype=bool)
        rows = np.flatnonzero(self.planted_position >= 0)
        out[rows, self.planted_position[rows]] = True
        return out


def make_planted_text(n_samples: int = 400, n_words: int = 30, min_len: int = 4, max_len: int = 10,
                      planted: str = "zephyr", cls: bool = False, seed: int = 0) -> SyntheticText:
    """``n_samples`` sentences of ``min_len``–``max_len`` filler words; half (class 1) hold
    ``planted`` once. Ids are padded to ``max_len`` (+1 with ``cls``, which puts ``<cls>``
    first for models read at position 0)."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    fillers = [f"w{i}" for i in range(n_words)]
    labels = np.zeros(n_samples, dtype=np.int64)
    labels[rng.permutation(n_samples)[: n_samples // 2]] = 1
    sentences, where = [], np.full(n_samples, -1, dtype=np.int64)
    for i in range(n_samples):
        length = int(rng.integers(min_len, max_len + 1))
        words = [fillers[j] for j in rng.integers(0, n_words, length)]
        if labels[i]:
            at = int(rng.integers(0, length))
            words[at] = planted
            where[i] = at + int(cls)
        sentences.append(" ".join(words))
    vocab = Vocabulary([Vocabulary.PAD, Vocabulary.UNK, Vocabulary.MASK, Vocabulary.CLS] + fillers + [planted])
    ids, mask = vocab.encode(sentences, max_len + int(cls), cls=cls)
    return SyntheticText(sentences, ids, mask, labels, where, vocab, vocab.index[planted])
