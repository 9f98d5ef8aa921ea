"""Text as a modality: token ids in, one relevance per token (and per word) out.

Usage
-----
Every explainer takes token ids ``(N, T)`` (int64) to a torch model with an embedding
layer; no extra wrapper is needed::

    import lumos
    from lumos.core.text import Vocabulary
    vocab = Vocabulary.from_sentences(train_sentences)        # whitespace words; pad 0, unk 1, mask 2
    ids, mask = vocab.encode(["a truly great film", "dull"], max_len=16)
    exp = lumos.explain(model, ids, "ig", attention_mask=mask, tokens=vocab.decode(ids),
                        baseline_token=vocab.pad)             # IG on the embeddings, baseline = pad embeddings
    exp.values                  # (N, T): relevance per token, summed over the embedding axis; pads are 0
    exp.tokens                  # (N, T) token strings;  exp.words(0) -> [("a", 0.01), ("truly", 0.3), ...]
    exp.delta                   # Σ_t R_t − (f(x) − f(baseline tokens)): IG's integral error
    lumos.explain(model, ids, "occlusion", baseline_token=vocab.mask, words=word_ids)  # words as features
    exp.plot()                  # words highlighted red (+) / blue (−)

How it works (:mod:`lumos.methods.text` drives it from the explainer template):

- *Which layer*: the ``nn.Embedding`` that reads the token ids (found in one probing
  forward pass), or ``embedding=`` (a module or its qualified name) in the constructor.
- *Gradient and relevance methods* (IG, Saliency, Gradient x Input, SmoothGrad, DeepLIFT,
  LRP...) attribute the embedding output ``e = E[ids]``: the call's private view of the
  model is wrapped in :class:`EmbeddingSpace`, whose input is ``e`` and which runs the
  model on the ids with the embedding layer returning ``e`` in place of its lookup
  output. Values ``(N, T, D)`` are summed over ``D``. IG's default baseline is the
  embedding of ``baseline_token`` at every real position (pad positions keep the pad), so
  ``Σ_t R_t = f(x) − f(baseline ids)`` up to the quadrature error.
- *Perturbation methods* (occlusion, LIME, KernelSHAP, Shapley...) switch tokens or words
  (``words=``): a removed word is replaced by ``baseline_token`` (a real token, pad or
  mask), never by a zero vector; pad positions are never switched.
- *Transformer methods* (rollout, Chefer, AttnLRP) read the ids natively.
- ``attention_mask=`` (``(N, T)``, 1 = real token) is passed to the model when its
  forward takes ``attention_mask`` or ``mask``; positions where it is 0, or whose id is
  ``pad_token``, get relevance exactly 0.

Words: ``words=`` gives the word index of each token ``(N, T)`` (−1: no word, e.g. pads or
special tokens; Hugging Face's ``encoding.word_ids()``), or use :func:`word_ids_from_tokens`
(WordPiece ``##``, SentencePiece ``▁`` and byte-BPE ``Ġ`` markers) or
:func:`word_ids_from_offsets` (tokenizer offsets and the text). Word relevance is the sum
of its tokens' relevance (:func:`aggregate_words`), so sums are preserved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

SUBWORD_PREFIX = "##"
WORD_START = ("\u2581", "\u0120")  # SentencePiece "▁", byte-level BPE "Ġ"


# -- the embedding layer -------------------------------------------------------------------
def find_embedding(model: nn.Module, ids: torch.Tensor, embedding=None, call=None) -> str:
    """The qualified name of the embedding layer that reads the token ids.

    ``embedding``: a module of ``model`` or its name (checked); None: the first
    ``nn.Embedding`` whose input, in one forward pass of ``ids``, equals the ids.
    ``call(model, ids)`` runs the model (default ``model(ids)``)."""
    names = {id(m): n for n, m in model.named_modules()}
    if embedding is not None:
        if isinstance(embedding, str):
            try:
                model.get_submodule(embedding)
            except AttributeError:
                emb = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Embedding))
                raise ValueError(f"embedding={embedding!r} is not a module of {type(model).__name__}; its embedding "
                                 f"layers: {emb or 'none'}") from None
            return embedding
        if id(embedding) in names:
            return names[id(embedding)]
        raise ValueError(f"embedding={type(embedding).__name__} is not a module of this model; pass the module of "
                         "the model itself or its qualified name (e.g. 'embeddings.word_embeddings')")
    found: list[str] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Embedding):
            def hook(mod, inputs, _name=name):
                a = inputs[0]
                if not found and a.shape == ids.shape and bool((a.to(ids.dtype) == ids).all()):
                    found.append(_name)
            hooks.append(m.register_forward_pre_hook(hook))
    if not hooks:
        raise ValueError(f"{type(model).__name__} has no nn.Embedding, so its integer inputs are not token ids "
                         "lumos can embed; pass embedding=<the module that embeds the ids> to the explainer")
    try:
        with torch.no_grad():
            (call or (lambda mdl, t: mdl(t)))(model, ids)
    finally:
        for h in hooks:
            h.remove()
    if not found:
        raise ValueError(f"no nn.Embedding of {type(model).__name__} reads the token ids in a forward pass; pass "
                         "embedding=<module or qualified name> to the explainer")
    return found[0]


def mask_keyword(model: nn.Module) -> str | None:
    """The keyword under which ``model.forward`` takes an attention mask, or None."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("attention_mask", "mask", "padding_mask"):
        if name in params:
            return name
    return None


class EmbeddingSpace(nn.Module):
    """``e -> model(ids, mask)`` with the embedding layer's output replaced by ``e``.

    ``ids`` and ``mask`` are one row ``(T,)`` shared by every row of ``e`` (the driver groups
    inputs by their pad pattern, so any row of a group stands for all: the model sees the
    same positions, the same padding and the same mask). The first call of the embedding
    per forward pass returns ``e`` instead of looking the ids up (its ``forward`` is replaced
    for the pass; hooks attached to it still run). Built around the call's private view, so
    the user's model is never touched."""

    def __init__(self, model: nn.Module, embedding: str, ids: torch.Tensor, mask: torch.Tensor | None = None,
                 mask_key: str | None = None):
        super().__init__()
        self.model = model
        self.embedding = embedding
        self.register_buffer("ids", ids.reshape(1, -1), persistent=False)
        self.register_buffer("mask", None if mask is None else mask.reshape(1, -1), persistent=False)
        self.mask_key = mask_key

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        n = e.shape[0]
        module = self.model.get_submodule(self.embedding)
        original = module.forward
        used = []

        def replaced(ids, *args, **kwargs):  # the first call gives e, without the lookup it replaces
            if used:
                return original(ids, *args, **kwargs)
            used.append(True)
            if tuple(e.shape[:ids.ndim]) != tuple(ids.shape):
                raise ValueError(f"the embedding {self.embedding!r} is called on ids of shape {tuple(ids.shape)}, "
                                 f"but the embeddings given are {tuple(e.shape)}")
            weight = getattr(module, "weight", None)
            return e if weight is None or weight.dtype == e.dtype else e.to(weight.dtype)

        module.forward = replaced  # on the call's private view (an instance attribute, removed below)
        try:
            kw = {} if self.mask is None or self.mask_key is None else {self.mask_key: self.mask.expand(n, -1)}
            return self.model(self.ids.expand(n, -1), **kw)
        finally:
            del module.forward


class TokenSpace(nn.Module):
    """``ids -> model(ids, mask)`` for perturbation methods: their float rows are rounded
    back to integer ids; the mask row ``(T,)`` is shared by every row (one pad pattern)."""

    def __init__(self, model: nn.Module, mask: torch.Tensor | None = None, mask_key: str | None = None):
        super().__init__()
        self.model = model
        self.register_buffer("mask", None if mask is None else mask.reshape(1, -1), persistent=False)
        self.mask_key = mask_key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.round().long() if x.is_floating_point() else x.long()
        kw = {} if self.mask is None or self.mask_key is None else {self.mask_key: self.mask.expand(x.shape[0], -1)}
        return self.model(ids, **kw)


# -- words -----------------------------------------------------------------------------------
def word_ids_from_tokens(tokens: Sequence[str], skip: Iterable[str] = ("[CLS]", "[SEP]", "[PAD]", "<s>", "</s>",
                                                                       "<pad>", "<cls>", "<sep>")) -> np.ndarray:
    """Word index of each token of one sequence: WordPiece continuations (``##ing``) join the
    previous word; with SentencePiece/byte-BPE markers (``▁``, ``Ġ``) a token starts a word only
    when it carries the marker; special tokens in ``skip`` get −1."""
    skip = set(skip)
    markers = any(t.startswith(WORD_START) for t in tokens)
    out = np.full(len(tokens), -1, dtype=np.int64)
    word = -1
    for i, tok in enumerate(tokens):
        if tok in skip:
            continue
        starts = tok.startswith(WORD_START) if markers else not tok.startswith(SUBWORD_PREFIX)
        if starts or word < 0 or out[i - 1] < 0:
            word += 1
        out[i] = word
    return out


def word_ids_from_offsets(offsets, text: str) -> np.ndarray:
    """Word index of each token from a tokenizer's character offsets ``(T, 2)`` into ``text``:
    tokens belong to the same word while no whitespace separates them; empty spans
    (special tokens, pads) get −1."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(offsets), -1, dtype=np.int64)
    word, last_end = -1, None
    for i, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        if last_end is None or re.search(r"\s", text[last_end:a]):
            word += 1
        out[i] = word
        last_end = b
    return out


def aggregate_words(values: np.ndarray, word_ids: np.ndarray) -> list[np.ndarray]:
    """Word relevance of each input: ``W_w = Σ_{t: word(t) = w} R_t`` (tokens with word −1 are
    left out). ``values`` and ``word_ids`` are ``(N, T)``; returns one array per input."""
    values, word_ids = np.asarray(values), np.asarray(word_ids)
    if values.shape != word_ids.shape:
        raise ValueError(f"word ids of shape {word_ids.shape} do not match the token values {values.shape}")
    out = []
    for v, w in zip(values, word_ids):
        keep = w >= 0
        n = int(w[keep].max()) + 1 if keep.any() else 0
        out.append(np.bincount(w[keep], weights=v[keep].astype(np.float64), minlength=n))
    return out


def word_texts(tokens: Sequence[str], word_ids: np.ndarray) -> list[str]:
    """The text of each word: its tokens joined, sub-word markers removed."""
    word_ids = np.asarray(word_ids)
    n = int(word_ids.max()) + 1 if (word_ids >= 0).any() else 0
    parts: list[list[str]] = [[] for _ in range(n)]
    for tok, w in zip(tokens, word_ids):
        if w >= 0:
            t = str(tok)
            if t.startswith(SUBWORD_PREFIX):
                t = t[len(SUBWORD_PREFIX):]
            parts[w].append(t.lstrip("".join(WORD_START)))
    return ["".join(p) for p in parts]


def explanation_words(exp, index: int) -> list[tuple[str, float]]:
    """``[(word, relevance), ...]`` of input ``index`` of a text explanation."""
    values = np.asarray(exp.values)
    if values.ndim != 2:
        raise ValueError(f"words() needs a text explanation with one value per token (N, T); got values of shape "
                         f"{values.shape}")
    n = values.shape[0]
    if not -n <= index < n:
        raise IndexError(f"input index {index} out of range for {n} inputs")
    wid = exp.extras.get("word_ids")
    if wid is None:
        mask = exp.extras.get("attention_mask")
        wid = np.where(mask[index], np.cumsum(mask[index]) - 1, -1) if mask is not None else np.arange(values.shape[1])
        wid = np.asarray(wid)[None]
        v = values[index][None]
    else:
        wid, v = wid[index][None], values[index][None]
    tokens = exp.extras.get("tokens")
    if tokens is None:
        ids = exp.inputs[index] if exp.inputs is not None else np.arange(values.shape[1])
        tokens = [str(int(t)) for t in np.asarray(ids).ravel()]
    else:
        tokens = [str(t) for t in tokens[index]]
    return list(zip(word_texts(tokens, wid[0]), aggregate_words(v, wid)[0].tolist()))


# -- a whitespace vocabulary -----------------------------------------------------------------
@dataclass
class Vocabulary:
    """A whitespace word vocabulary: one token per word, so tokens are words.

    ``words[i]`` is the text of id ``i``; ids 0, 1, 2, 3 are ``<pad>``, ``<unk>``, ``<mask>``,
    ``<cls>`` (the first token of models read at position 0; ``encode(..., cls=True)``).
    """

    words: list[str]

    PAD, UNK, MASK, CLS = "<pad>", "<unk>", "<mask>", "<cls>"

    SPECIALS = (PAD, UNK, MASK, CLS)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_sentences(cls, sentences: Iterable[str], min_count: int = 1, lower: bool = True) -> "Vocabulary":
        counts: dict[str, int] = {}
        for s in sentences:
            for w in (s.lower() if lower else s).split():
                counts[w] = counts.get(w, 0) + 1
        kept = sorted(w for w, c in counts.items() if c >= min_count)
        return cls([cls.PAD, cls.UNK, cls.MASK, cls.CLS] + [w for w in kept if w not in cls.SPECIALS])

    @property
    def pad(self) -> int:
        return 0

    @property
    def unk(self) -> int:
        return 1

    @property
    def mask(self) -> int:
        return 2

    @property
    def cls(self) -> int:
        return 3

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Sequence[str], max_len: int, lower: bool = True,
               cls: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, mask)``, both ``(N, max_len)``: ids padded with 0 at the end (longer sentences
        cut), mask True on real tokens; ``cls=True`` puts ``<cls>`` first."""
        ids = np.zeros((len(sentences), max_len), dtype=np.int64)
        for i, s in enumerate(sentences):
            toks = ([self.CLS] if cls else []) + (s.lower() if lower else s).split()
            toks = toks[:max_len]
            ids[i, :len(toks)] = [self.index.get(t, self.unk) for t in toks]
        return ids, ids != self.pad

    def decode(self, ids) -> np.ndarray:
        """Token strings ``(N, T)`` of ids (pads as ``""``)."""
        ids = np.asarray(ids)
        words = np.asarray(self.words, dtype=object)
        out = words[ids].astype(str)
        out[ids == self.pad] = ""
        return out
