"""The text layout of the explainer template: token ids ``(N, T)`` in, one value per token out.

:meth:`lumos.methods.base.Explainer.explain` hands integer ``(N, T)`` inputs to a torch
model with an ``nn.Embedding`` (or any inputs with ``attention_mask=``/``words=``/``tokens=``)
to :func:`explain_text`. Usage and the definitions are in :mod:`lumos.core.text`.

Each method runs in one of three modes (:func:`text_mode`):

``"embedding"`` (methods that take gradients: IG, Saliency, Gradient x Input, SmoothGrad,
    DeepLIFT, GradientShap, LRP) — the method explains :class:`~lumos.core.text.EmbeddingSpace`
    on the embeddings ``E[ids]`` ``(N, T, D)``; values are summed over ``D``. A ``baseline``
    call option defaults to the embeddings of ``baseline_token`` (an int or an int array
    given as ``baseline`` is read as token ids and embedded too).
``"tokens"`` (perturbation methods: occlusion, LIME, Shapley estimators) — the method
    perturbs the ids themselves (:class:`~lumos.core.text.TokenSpace` rounds them back to
    integers); the removal value is ``baseline_token`` at real positions, the input itself
    at pad positions (so pads are never switched); ``words=`` become the feature groups.

``"native"`` (transformer and attention methods) — the method reads the ids itself.

Inputs are explained in groups that share one pad pattern (positions of the mask, of
``pad_token`` and of id 0) and, with ``words=`` for perturbation methods, one word map:
within a group every model row stands for any input of the group (same positions, same
mask), which is what lets one shared ``ids``/``mask`` row serve every expanded row (IG
steps, noise copies, coalitions). Rows keep their positions in the batch for per-row
seeds, so results do not depend on the grouping.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from lumos.core.explanation import Explanation
from lumos.core.text import EmbeddingSpace, TokenSpace, find_embedding, mask_keyword
from lumos.core.validate import integer_array
from lumos.core.view import model_view

TEXT_OPTIONS = ("attention_mask", "words", "tokens")


def is_text(explainer, x: np.ndarray) -> bool:
    """Token ids: 2-D integers to a torch model with an ``nn.Embedding`` (or ``embedding=``)."""
    if x.ndim != 2 or x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        return False
    model = explainer.adapter.model
    if not isinstance(model, nn.Module):
        return False
    if explainer.text_config.get("embedding") is not None:
        return True
    return any(isinstance(m, nn.Embedding) for m in model.modules())


def text_mode(explainer) -> str:
    cls = type(explainer)
    if getattr(cls, "needs_transformer", False) or cls.needs_attention or cls.needs_layer:
        return "native"
    return "embedding" if cls.needs_gradients else "tokens"


def _mask_of(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"attention_mask has shape {m.shape}, the token ids {shape}; give one 0/1 per token")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("attention_mask must hold 0/1 (or booleans): 1 marks a real token, 0 a pad")
        m = m.astype(bool)
    return m


def _words_of(words, shape) -> np.ndarray | None:
    if words is None:
        return None
    w = integer_array(words.detach().cpu().numpy() if isinstance(words, torch.Tensor) else words)
    if w is None or w.shape != shape:
        raise ValueError(f"words must be integer word indices, one per token {shape} (−1 for none), got "
                         f"{np.asarray(words).shape}")
    return w


def _tokens_of(tokens, shape) -> np.ndarray | None:
    if tokens is None:
        return None
    t = np.asarray([[str(s) for s in row] for row in tokens])
    if t.shape != shape:
        raise ValueError(f"tokens must be one string per token id {shape}, got shape {t.shape}")
    return t


def _groups(*keys: np.ndarray | None) -> list[np.ndarray]:
    """Indices of the rows that share every key row, in order of first appearance."""
    parts = [k.reshape(k.shape[0], -1) for k in keys if k is not None]
    if not parts:
        raise ValueError("no keys")
    key = np.concatenate([p.astype(np.int64) for p in parts], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == g) for g in order]


def _embedded_baseline(b, idx, ids, ref_ids, valid, emb, dev):
    """The baseline embeddings of the rows ``idx``: None -> the embeddings of the baseline
    tokens; integers -> token ids (one id for every real position, ``(T,)`` or ``(N, T)``),
    embedded; floats -> embeddings as given (``(N, T, D)`` taken per row)."""
    n, t = ids.shape
    if isinstance(b, torch.Tensor):
        b = b.detach().cpu().numpy()
    if b is None:
        tok = ref_ids[idx]
    else:
        arr = np.asarray(b)
        if not (arr.dtype != bool and np.issubdtype(arr.dtype, np.integer)):
            return arr[idx] if arr.ndim == 3 and arr.shape[0] == n else arr
        if arr.ndim == 0:
            tok = np.where(valid[idx], int(arr), ids[idx])
        elif arr.shape == (t,):
            tok = np.broadcast_to(arr, (len(idx), t))
        elif arr.shape == (n, t):
            tok = arr[idx]
        else:
            raise ValueError(f"an integer baseline holds token ids: one id, ({t},) or ({n}, {t}); got {arr.shape}")
    with torch.no_grad():
        return emb(torch.as_tensor(np.ascontiguousarray(tok), device=dev)).detach()


def _embedding_is_input(explainer, name: str) -> None:
    """On the embedding space the embedding's output is the input: LRP composites pass
    relevance through the (replaced) embedding layer; a signed gradient summed over the
    embedding axis cancels (exactly, after a LayerNorm), which deserves a warning."""
    import copy

    from lumos.methods.transformer.attnlrp import EmbeddingInput

    composite = getattr(explainer, "composite", None)
    if composite is not None and hasattr(composite, "name_map"):
        composite = copy.copy(composite)
        composite.name_map = {**composite.name_map, name: EmbeddingInput()}
        explainer.composite = composite
    base = getattr(explainer, "base", explainer)
    if base.name == "saliency" and not getattr(base, "absolute", True):
        warnings.warn(f"{type(explainer).__name__} on text sums signed gradients over the embedding axis, where "
                      "they cancel (to exactly 0 after a LayerNorm); explain with base='gradient_x_input' or "
                      "'integrated_gradients' (SmoothGrad), or absolute=True", stacklevel=5)


def _rows(given, idx):
    return given if given is None or np.ndim(given) == 0 else np.asarray(given)[idx]


def _stitch(parts: list[tuple[np.ndarray, Explanation]], n: int, name: str):
    first = getattr(parts[0][1], name)
    if first is None:
        return None
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    for idx, r in parts:
        out[idx] = getattr(r, name)
    return out


def explain_text(explainer, ids: np.ndarray, given, options: dict, text_options: dict, passed: set,
                 row_offset: int, seed) -> Explanation:
    """Explain token ids ``ids`` ``(N, T)`` with ``explainer`` (see the module docstring)."""
    if not is_text(explainer, ids):
        raise ValueError(f"{', '.join(sorted(text_options))} apply to token ids: integer inputs (N, T) to a torch "
                         f"model with an nn.Embedding (or embedding=...); got {ids.dtype} inputs of shape {ids.shape}")
    ids = ids.astype(np.int64, copy=False)
    if (ids < 0).any():
        raise ValueError(f"token ids must be >= 0, got {int(ids.min())}")
    n, _ = ids.shape
    cfg = explainer.text_config
    mask = _mask_of(text_options.get("attention_mask"), ids.shape)
    words = _words_of(text_options.get("words"), ids.shape)
    tokens = _tokens_of(text_options.get("tokens"), ids.shape)
    pad = cfg.get("pad_token")
    valid = np.ones(ids.shape, dtype=bool) if mask is None else mask.copy()
    mode = text_mode(explainer)
    meta = {"layout": "text", "mode": mode}
    with model_view(explainer.adapter.model, explainer.device) as view:
        dev = next((t.device for t in view.parameters()), torch.device("cpu"))
        mkey = mask_keyword(view) if mask is not None else None
        if mask is not None and mkey is None and mode != "native":
            warnings.warn(f"{type(view).__name__}.forward takes no attention_mask/mask argument: the mask only sets "
                          "the relevance of its pad positions to 0", stacklevel=4)
        first_kw = {} if mkey is None else {mkey: torch.as_tensor(mask[:1], device=dev)}
        name = None
        emb = None
        if mode != "native" or cfg.get("embedding") is not None:
            name = find_embedding(view, torch.as_tensor(ids[:1], device=dev), cfg.get("embedding"),
                                  call=lambda m, t: m(t, **first_kw))
            emb = view.get_submodule(name)
            meta["embedding"] = name
        if pad is None and isinstance(emb, nn.Embedding) and emb.padding_idx is not None:
            pad = int(emb.padding_idx)
        if pad is not None:
            valid &= ids != pad
        base_token = cfg.get("baseline_token")
        if base_token is None:
            base_token = pad if pad is not None else 0
        ref_ids = np.where(valid, base_token, ids)
        if mode == "native":
            result = explainer._run(ids, given, options, row_offset, seed)
            if result.values.shape != ids.shape:
                raise ValueError(f"{type(explainer).__name__} gave values of shape {result.values.shape} for token "
                                 f"ids {ids.shape}")
            parts = [(np.arange(n), result)]
        else:
            key = [valid, ids == 0, None if pad is None else ids == pad, None if mkey is None else mask]
            if mode == "tokens" and words is not None and "groups" not in passed:
                key.append(words)
            groups = _groups(*key)
            parts = []
            ids_t = torch.as_tensor(ids, device=dev)
            for idx in groups:
                i0 = int(idx[0])
                row_mask = None if mkey is None else torch.as_tensor(mask[i0], device=dev)
                opts = dict(options)
                if mode == "embedding":
                    space = EmbeddingSpace(view, name, ids_t[i0], row_mask, mkey)
                    with torch.no_grad():
                        x = emb(ids_t[idx]).detach()
                    if "baseline" in opts:
                        b = opts["baseline"] if "baseline" in passed else None
                        if b is None:
                            b = getattr(explainer, "baseline", None)  # the constructor's
                        opts["baseline"] = _embedded_baseline(b, idx, ids, ref_ids, valid, emb, dev)
                    x_np = x.cpu().numpy()
                else:
                    space = TokenSpace(view, row_mask, mkey)
                    x_np = ids[idx].astype(np.float32)
                    ref = ref_ids[idx].astype(np.float32)
                    if "baseline" in opts and "baseline" not in passed:
                        opts["baseline"] = ref
                    if "background" in opts and opts.get("background") is None and \
                            getattr(explainer, "background", None) is None:
                        opts["background"] = ref[:1]
                    if words is not None and "groups" in opts and "groups" not in passed:
                        w = words[i0].copy()
                        w[(w < 0) | ~valid[i0]] = w.max() + 1
                        opts["groups"] = w
                sub = explainer.with_model(space)
                if mode == "embedding":
                    _embedding_is_input(sub, "model." + name)
                r = sub._run(x_np, _rows(given, idx), opts, row_offset, seed, positions=idx, model=space)
                if mode == "embedding":
                    full = r.values.reshape(len(idx), -1).sum(1)
                    r.values = r.values.sum(-1)
                    r.inputs = ids[idx]
                    if r.delta is not None:
                        r.delta = r.delta + (r.values.sum(1) - full)
                parts.append((idx, r))
    first = parts[0][1]
    values = _stitch(parts, n, "values")
    cut = np.where(valid, 0, values).sum(1)
    values = np.where(valid, values, 0).astype(values.dtype, copy=False)
    delta = _stitch(parts, n, "delta")
    if delta is not None:
        delta = delta - cut
    extras = {}
    for k in first.extras:
        if all(k in r.extras and r.extras[k].shape[1:] == first.extras[k].shape[1:] for _, r in parts):
            out = np.empty((n, *first.extras[k].shape[1:]), dtype=first.extras[k].dtype)
            for idx, r in parts:
                out[idx] = r.extras[k]
            extras[k] = out
    word_ids = words if words is not None else np.where(valid, np.cumsum(valid, axis=1) - 1, -1)
    extras.update({"attention_mask": valid, "word_ids": np.where(valid, word_ids, -1).astype(np.int64)})
    if tokens is not None:
        extras["tokens"] = tokens
    params = {**first.params, "pad_token": pad, "baseline_token": int(base_token)}
    if seed is not None and explainer.stochastic:
        params["seed"] = seed
    return Explanation(values=values, target=_stitch(parts, n, "target"), method=explainer.name, params=params,
                       prediction=_stitch(parts, n, "prediction"), base_value=_stitch(parts, n, "base_value"),
                       delta=delta, feature_names=first.feature_names, extras=extras, inputs=ids, scope=first.scope,
                       meta={**first.meta, **meta})
