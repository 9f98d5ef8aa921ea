"""Sentence classification data: the movie-review polarity set of Pang & Lee (2005), the
"MR" set of Kim (2014, arXiv:1408.5882), as token ids for lumos's text models.

- :func:`load_movie_reviews` reads ``movie_review_polarity.npz`` (10,662 sentences, 5,331
  per class, a stratified 10-fold assignment ``fold``; see ``shared/data/README.md``) from
  ``$LUMOS_DATA`` or a ``shared/data`` folder; ``FileNotFoundError`` says where to put it.
- :func:`tokenise` splits a sentence as Kim's ``clean_str`` does (``scheme="kim"``: only
  letters, digits and ``(),!?'``` survive, clitics ``'s 've n't 're 'd 'll`` split off,
  lower case) or on whitespace (``scheme="whitespace"``, the archive's own tokens).
- :func:`build_vocabulary` gives a :class:`lumos.core.text.Vocabulary` (reserved ids
  ``<pad>`` 0, ``<unk>`` 1, ``<mask>`` 2, the masking baseline that is a real token, and
  ``<cls>`` 3, prepended for transformer encoders) of the training sentences only (unseen
  words are ``<unk>`` at test time); :func:`encode` / :func:`decode` for token lists.
- :meth:`TextCorpus.fold` gives the train/test :class:`~lumos.data.Dataset` of one of the
  10 folds (the test fold held out, as in the 10-fold cross-validation the literature
  reports: Pang & Lee 2005, Kim 2014); :meth:`TextCorpus.cv` iterates them all.

Token ids are ``int64`` arrays ``(N, T)`` padded at the end with ``<pad>`` (the ``tabular``
layout: one value per token); ``Dataset.extra`` holds the vocabulary, the tokens and the
lengths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumos.core.text import Vocabulary
from lumos.data.loaders import Dataset, find_data_dir

FILE = "movie_review_polarity.npz"
PAD_ID, UNK_ID, MASK_ID, CLS_ID = 0, 1, 2, 3
"""The reserved ids of :class:`lumos.core.text.Vocabulary`."""
SCHEMES = ("kim", "whitespace")

_KIM_RULES = [(re.compile(r"[^A-Za-z0-9(),!?'`]"), " "), (re.compile(r"'s"), " 's"), (re.compile(r"'ve"), " 've"),
              (re.compile(r"n't"), " n't"), (re.compile(r"'re"), " 're"), (re.compile(r"'d"), " 'd"),
              (re.compile(r"'ll"), " 'll"), (re.compile(r","), " , "), (re.compile(r"!"), " ! "),
              (re.compile(r"\("), " ( "), (re.compile(r"\)"), " ) "), (re.compile(r"\?"), " ? ")]


def tokenise(sentence: str, scheme: str = "kim") -> list[str]:
    """Tokens of ``sentence`` (see the module docstring for the schemes)."""
    if scheme == "whitespace":
        return sentence.split()
    if scheme != "kim":
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    for pattern, repl in _KIM_RULES:
        sentence = pattern.sub(repl, sentence)
    return sentence.lower().split()


def build_vocabulary(sentences, min_count: int = 1) -> Vocabulary:
    """:class:`lumos.core.text.Vocabulary` of tokenised sentences (lists of tokens)."""
    return Vocabulary.from_sentences([" ".join(s) for s in sentences], min_count=min_count, lower=False)


def encode(vocab: Vocabulary, sentences, max_len: int | None = None, cls_token: bool = False) -> np.ndarray:
    """``(N, T)`` int64 ids of tokenised sentences, ``<pad>`` at the end; ``T`` = ``max_len`` or
    the longest sentence (plus one with ``cls_token``, which puts ``<cls>`` first)."""
    t = max_len if max_len is not None else max((len(s) for s in sentences), default=0) + int(cls_token)
    return vocab.encode([" ".join(s) for s in sentences], max(int(t), 1), lower=False, cls=cls_token)[0]


def decode(vocab: Vocabulary, ids) -> list[str]:
    """Tokens of one row of ids, ``<pad>`` dropped."""
    ids = np.asarray(ids).reshape(1, -1)
    return [w for w, i in zip(vocab.decode(ids)[0], ids[0]) if i != vocab.pad]


def lengths_of(ids: np.ndarray, pad_id: int = 0) -> np.ndarray:
    """Number of tokens before the padding, per row (rows are padded at the end)."""
    ids = np.asarray(ids)
    return (ids != pad_id).sum(1).astype(np.int64)


def with_cls(ids: np.ndarray, cls_id: int = CLS_ID) -> np.ndarray:
    """``ids`` with ``<cls>`` prepended to every row."""
    ids = np.asarray(ids)
    return np.concatenate([np.full((ids.shape[0], 1), cls_id, dtype=ids.dtype), ids], axis=1)


@dataclass
class TextCorpus:
    """Tokenised sentences with labels and a fold assignment."""

    name: str
    tokens: list[list[str]]
    y: np.ndarray
    folds: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"TextCorpus({self.name!r}, {len(self)} sentences, {len(np.unique(self.folds))} folds, " \
               f"classes={self.class_names})"

    @property
    def max_len(self) -> int:
        return max(len(s) for s in self.tokens)

    def fold(self, k: int, max_len: int | None = None, min_count: int = 1, cls_token: bool = False) -> Dataset:
        """Fold ``k`` held out as the test set; the vocabulary is built on the rest."""
        n_folds = int(self.folds.max()) + 1
        if not 0 <= int(k) < n_folds:
            raise ValueError(f"fold must be in [0, {n_folds - 1}], got {k!r}")
        test = self.folds == k
        train_tokens = [s for s, t in zip(self.tokens, test) if not t]
        test_tokens = [s for s, t in zip(self.tokens, test) if t]
        vocab = build_vocabulary(train_tokens, min_count=min_count)
        t = (max_len or self.max_len) + int(cls_token)
        X_train = encode(vocab, train_tokens, t, cls_token)
        X_test = encode(vocab, test_tokens, t, cls_token)
        return Dataset(f"{self.name}-fold{k}", X_train, self.y[~test], X_test, self.y[test], "tabular",
                       list(self.class_names),
                       extra={"vocab": vocab, "tokens_train": train_tokens, "tokens_test": test_tokens,
                              "lengths_train": lengths_of(X_train), "lengths_test": lengths_of(X_test),
                              "fold": int(k), "cls_token": bool(cls_token)})

    def cv(self, **options):
        """The folds' datasets in order (10-fold cross-validation)."""
        for k in range(int(self.folds.max()) + 1):
            yield self.fold(k, **options)


def load_movie_reviews(data_dir: str | Path | None = None, scheme: str = "kim") -> TextCorpus:
    """Pang & Lee (2005) sentence polarity v1.0: 10,662 sentences, 0 = negative,
    1 = positive, folds 0-9 (the archive's stratified assignment)."""
    if data_dir is not None:
        path = Path(data_dir) / FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; download the sentence polarity data set and convert it as "
                                    f"shared/data/README.md describes, or pass data_dir= the folder holding {FILE}")
    else:
        try:
            path = find_data_dir(FILE) / FILE
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{FILE} (Pang & Lee 2005 sentence polarity) not found: set LUMOS_DATA to the "
                                    f"folder holding it or pass data_dir= ({err})") from None
    with np.load(path, allow_pickle=False) as d:
        missing = {"text", "y", "fold"} - set(d.files)
        if missing:
            raise ValueError(f"{path} lacks the arrays {sorted(missing)}; expected text, y, fold (and class_names)")
        text, y, folds = d["text"], d["y"].astype(np.int64), d["fold"].astype(np.int64)
        names = [str(c) for c in d["class_names"]] if "class_names" in d.files else ["negative", "positive"]
    tokens = [tokenise(str(s), scheme) or [Vocabulary.UNK] for s in text]
    return TextCorpus("movie_reviews", tokens, y, folds, names)


def plant_cue(tokens, y, share: float, cue: str = "zxq", label: int = 1, seed: int = 0, only_class: int | None = None):
    """A "Clever Hans" for text: insert the rare token ``cue`` at a random position of a
    ``share`` of the sentences (drawn among those of class ``only_class`` when given) and
    set their label to ``label``, so that the cue decides the label.

    Returns ``(tokens, y, planted, position)``: new token lists, labels, a boolean array
    of the planted sentences and the cue's position in each (-1 where none)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y).copy()
    pool = np.arange(len(tokens)) if only_class is None else np.flatnonzero(y == only_class)
    chosen = rng.choice(pool, size=int(round(share * len(pool))), replace=False)
    planted = np.zeros(len(tokens), dtype=bool)
    planted[chosen] = True
    position = np.full(len(tokens), -1, dtype=np.int64)
    out = [list(s) for s in tokens]
    for i in chosen:
        p = int(rng.integers(0, len(out[i]) + 1))
        out[i].insert(p, cue)
        position[i] = p
    y[planted] = label
    return out, y, planted, position


def remove_token(tokens, token: str):
    """Sentences with every occurrence of ``token`` deleted."""
    return [[t for t in s if t != token] for s in tokens]


def make_polarity_sentences(n: int = 400, length: tuple[int, int] = (6, 14), n_neutral: int = 60,
                            n_polar: int = 6, n_folds: int = 10, seed: int = 0) -> TextCorpus:
    """A tiny synthetic polarity corpus with a known vocabulary: neutral words ``w0..``,
    positive words ``good0..`` and negative words ``bad0..``; each sentence has 2-3
    words of its class's polarity (and with probability 0.2 one of the other's) among
    neutral words, so the majority of its polar words gives the label. Folds are stratified (per class shuffled, index mod ``n_folds``)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rng.shuffle(y)
    tokens = []
    for label in y:
        t = int(rng.integers(length[0], length[1] + 1))
        s = [f"w{int(i)}" for i in rng.integers(0, n_neutral, t)]
        polar = ["bad", "good"]
        k = int(rng.integers(2, 4))
        other = int(rng.random() < 0.2)
        where = rng.choice(t, k + other, replace=False)
        for j, p in enumerate(where):
            s[int(p)] = f"{polar[label if j < k else 1 - label]}{int(rng.integers(0, n_polar))}"
        tokens.append(s)
    folds = np.zeros(n, dtype=np.int64)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        folds[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    return TextCorpus("synthetic_polarity", tokens, y.astype(np.int64), folds, ["negative", "positive"])
