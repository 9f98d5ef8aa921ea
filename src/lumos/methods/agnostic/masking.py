"""Feature groups shared by every model-agnostic explainer.

A *group map* is an integer array shaped like one sample (``(d,)`` for tables,
``(C, T)`` for time series, ``(C, H, W)`` for images) whose entry ``g`` says that the
element belongs to interpretable feature ``g``. Occlusion, LIME, Shapley values and
permutation importance switch or permute whole groups, so a time window, a channel, an
image patch or a superpixel counts as one feature. Group ids are relabelled to
``0..G-1`` in order of first appearance of their sorted labels (``np.unique``).

A coalition (or LIME sample, or occlusion) is a boolean matrix ``masks`` of shape
``(m, G)``; :func:`compose` turns it into inputs: element ``j`` of copy ``k`` keeps the
explained value where ``masks[k, groups[j]]`` is true and takes the reference
(baseline or background row) elsewhere.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from lumos.core.validate import as_array, integer_array


def _tuple(value: Any, ndim: int, name: str) -> tuple[int, ...]:
    """An int or a tuple with one positive int per sample dimension (``None`` = whole axis)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * ndim
    value = tuple(value)
    if len(value) != ndim:
        raise ValueError(f"{name} must have one entry per sample dimension ({ndim}), got {value!r}")
    for v in value:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name} entries must be positive integers (or None for a whole axis), got {value!r}")
    return value


def relabel(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary integer labels to ``0..G-1``; return ``(map, G)``."""
    labels, inverse = np.unique(groups, return_inverse=True)
    return inverse.reshape(groups.shape).astype(np.int64), int(labels.size)


def resolve_groups(groups: Any, sample_shape: Sequence[int], name: str = "groups") -> tuple[np.ndarray, int]:
    """Check a user group map against one sample's shape.

    ``None`` makes every element its own feature. A map broadcastable to the sample
    shape is accepted, e.g. ``(1, H, W)`` superpixels shared by all colour channels or
    ``(C, 1)`` one group per channel of a time series.
    """
    sample_shape = tuple(int(s) for s in sample_shape)
    if groups is None:
        size = int(np.prod(sample_shape))
        return np.arange(size, dtype=np.int64).reshape(sample_shape), size
    g = integer_array(groups)
    if g is None:
        raise TypeError(f"{name} must be an integer array of group ids, got dtype {np.asarray(groups).dtype}")
    try:
        g = np.broadcast_to(g, sample_shape)
    except ValueError:
        raise ValueError(f"{name} shape {g.shape} does not match one sample of shape {sample_shape}; "
                         "give a group id per element (broadcastable to the sample)") from None
    return relabel(np.ascontiguousarray(g))


AXIS_NAMES = {1: ("x",), 2: ("ch", "t"), 3: ("ch", "row", "col")}


def group_names(groups: np.ndarray, n_groups: int) -> list[str]:
    """Readable names of the groups of a group map ``(*S)``, from where each group lies:
    a single element by its position (``"x3"``, ``"t 41"``, ``"row 6, col 5"``), a group
    by its extent on every axis it does not span whole (``"t 40–49"``, ``"ch 2"``,
    ``"rows 0–3, cols 4–7"``). Axes of size 1 (one channel) are left out."""
    groups = np.asarray(groups)
    labels = AXIS_NAMES.get(groups.ndim, tuple(f"axis{k}" for k in range(groups.ndim)))
    flat = groups.reshape(-1)
    count = np.bincount(flat, minlength=n_groups)
    extents = []  # per axis: (lo, hi) of every group, in one pass over the elements
    for axis, pos in enumerate(np.indices(groups.shape).reshape(groups.ndim, -1)):
        lo, hi = np.full(n_groups, groups.shape[axis]), np.full(n_groups, -1)
        np.minimum.at(lo, flat, pos)
        np.maximum.at(hi, flat, pos)
        extents.append((lo, hi))
    names = []
    for g in range(n_groups):
        parts = []
        for axis, label in enumerate(labels):
            size, lo, hi = groups.shape[axis], int(extents[axis][0][g]), int(extents[axis][1][g])
            if size == 1 or count[g] == 0 or (lo == 0 and hi == size - 1 and count[g] > 1):
                continue  # one channel, an empty group, or a group that spans this axis
            sep = "" if label == "x" else " "
            plural = label + ("s" if label in ("row", "col") else "")
            parts.append(f"{label}{sep}{lo}" if lo == hi else f"{plural}{sep}{lo}–{hi}")
        names.append(", ".join(parts) if parts else f"group {g}")
    return names


def window_groups(sample_shape: Sequence[int], window: Any) -> tuple[np.ndarray, int]:
    """Non-overlapping tiles of size ``window`` (``None`` = the whole axis): time windows,
    image patches, or channels (``window=(1, None)`` for ``(C, T)`` inputs)."""
    sample_shape = tuple(int(s) for s in sample_shape)
    window = _tuple(window, len(sample_shape), "window")
    index = np.zeros(sample_shape, dtype=np.int64)
    for axis, (size, w) in enumerate(zip(sample_shape, window)):
        w = size if w is None else w
        tiles = np.arange(size) // w
        shape = [1] * len(sample_shape)
        shape[axis] = size
        index = index * math.ceil(size / w) + tiles.reshape(shape)
    return relabel(index)


def channel_groups(sample_shape: Sequence[int]) -> tuple[np.ndarray, int]:
    """One group per channel (first sample axis) of a time series or an image."""
    sample_shape = tuple(sample_shape)
    return window_groups(sample_shape, (1,) + (None,) * (len(sample_shape) - 1))


def superpixel_groups(image: np.ndarray, method: str = "slic", n_segments: int = 50, seed: int = 0,
                      **options) -> tuple[np.ndarray, int]:
    """Superpixels of one ``(C, H, W)`` image, shared by its channels: ``(1, H, W)`` map.

    ``method="slic"`` or ``"quickshift"`` use scikit-image when it is installed (it is
    optional); without it, or with ``method="grid"``, a regular grid of about
    ``n_segments`` square patches is used.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"superpixels need one image of shape (C, H, W), got {image.shape}")
    c, h, w = image.shape
    if method not in ("slic", "quickshift", "grid"):
        raise ValueError(f"superpixel method must be 'slic', 'quickshift' or 'grid', got {method!r}")
    segments = None
    if method != "grid":
        try:
            import skimage.segmentation as seg
        except ImportError:
            seg = None
        if seg is not None:
            rgb = np.moveaxis(image, 0, -1)
            lo, hi = rgb.min(), rgb.max()
            rgb = (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb)
            if method == "slic":
                segments = seg.slic(rgb, n_segments=n_segments, start_label=0,
                                    channel_axis=-1, **{"compactness": 10.0, **options})
            else:
                if c == 1:
                    rgb = np.repeat(rgb, 3, axis=-1)
                segments = seg.quickshift(rgb, rng=seed, **{"kernel_size": 4, "max_dist": 200, "ratio": 0.2,
                                                            **options})
    if segments is None:
        side = max(1, int(round(math.sqrt(h * w / max(n_segments, 1)))))
        return window_groups((1, h, w), (1, side, side))
    return relabel(np.asarray(segments)[None])


def group_sizes(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of elements in each group, shape (G,)."""
    return np.bincount(groups.ravel(), minlength=n_groups)


def spread(group_values: np.ndarray, groups: np.ndarray, n_groups: int, divide: bool = True) -> np.ndarray:
    """Put per-group values ``(..., G)`` back on the elements: ``(..., *sample_shape)``.

    With ``divide`` each element gets ``value / group size``, so the sum over the
    elements of a sample equals the sum over its groups (efficiency is preserved).
    """
    vals = np.asarray(group_values)
    if divide:
        vals = vals / np.maximum(group_sizes(groups, n_groups), 1)
    return vals[..., groups]


def compose(x: np.ndarray, reference: np.ndarray, masks: np.ndarray, groups: np.ndarray,
            out: np.ndarray | None = None) -> np.ndarray:
    """Inputs built from coalitions.

    Parameters
    ----------
    x : array, one sample ``(*S)``
    reference : array ``(*S)`` (a baseline) or ``(B, *S)`` (background rows)
    masks : bool array ``(m, G)``; true keeps the group of ``x``
    groups : int array ``(*S)``

    out : array, optional
        C-contiguous buffer of the result's shape to write into.

    Returns ``(m, *S)`` for one reference or ``(m, B, *S)`` for a background.
    """
    return compose_rows(x[None], reference, masks, groups, None if out is None else out[None])[0]


def compose_rows(xs: np.ndarray, reference: np.ndarray, masks: np.ndarray, groups: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
    """:func:`compose` for ``r`` samples ``xs (r, *S)`` at once: ``(r, m, *S)`` for one
    reference, ``(r, m, B, *S)`` for a background, in one pass over the result (the
    per-call work, the masks' expansion to elements, is shared by the samples)."""
    return Blend(reference, masks, groups, np.result_type(xs, reference), xs)(xs, slice(None), out)


class Blend:
    """:func:`compose_rows` for many calls over the same reference and coalitions: the masks'
    expansion to elements, its blend factors and the reference's cast and finiteness check are
    made once (up to :data:`BLEND_ELEMENTS` factor elements; more are expanded per call), so a
    call composing a run of coalitions costs little more than its one broadcast pass.

    ``xs`` (any inputs that will be composed) decides with the reference whether the
    arithmetic blend is exact (finite values); ``blend(xs, cols, out)`` composes the rows
    ``xs (r, *S)`` with the coalitions ``masks[cols]`` (a slice) into ``out``.
    """

    def __init__(self, reference: np.ndarray, masks: np.ndarray, groups: np.ndarray, dtype, xs: np.ndarray):
        self.masks, self.groups, self.dtype = masks, groups, np.dtype(dtype)
        self.background = reference.ndim == groups.ndim + 1
        self.reference = np.ascontiguousarray(reference, dtype=self.dtype)
        self.arith = self.dtype in _BLEND and bool(np.isfinite(xs).all()) and bool(np.isfinite(self.reference).all())
        self.factors = None
        if masks.shape[0] * groups.size <= BLEND_ELEMENTS:
            self.factors = self._factors(slice(None))

    def _factors(self, cols: slice):
        keep = self.masks[cols][:, self.groups]  # (c, *S)
        if self.background:
            keep = keep[:, None]  # (c, 1, *S): broadcast over the background rows
        if not self.arith:
            return np.ascontiguousarray(keep), None
        # masks[:, groups] is laid out column-first: a strided k slows the pass 2x
        k = keep.astype(self.dtype, order="C")
        return k, np.subtract(1, k, dtype=self.dtype)

    def __call__(self, xs: np.ndarray, cols: slice, out: np.ndarray | None = None) -> np.ndarray:
        if self.factors is None:
            k, rest = self._factors(cols)
        else:
            k, rest = (f if f is None else f[cols] for f in self.factors)
        xs = xs.reshape(xs.shape[0], *([1] * (k.ndim - xs.ndim + 1)), *xs.shape[1:])  # (r, 1, [1,] *S)
        if out is None:
            out = np.empty((xs.shape[0], *np.broadcast_shapes(k.shape, self.reference.shape)), dtype=self.dtype)
        # Written into a C-contiguous buffer: np.where may return a strided layout whose later
        # reshape to a flat batch costs a slow copy.
        if self.arith and out.flags.c_contiguous:
            # x · k + reference · (1 − k) with k ∈ {0, 1}, in one broadcast addcmul: exact for finite
            # values (products with 0 and 1 and sums with 0 round nothing) and 2-4x faster than
            # torch.where, which reads its broadcast bool mask element by element; the small
            # factors x · k and 1 − k (one per coalition, not per background row) in numpy
            torch.addcmul(torch.from_numpy(np.multiply(xs, k, dtype=self.dtype)), torch.from_numpy(self.reference),
                          torch.from_numpy(rest), out=torch.from_numpy(out))
            return out
        keep = k if rest is None else k.astype(bool)
        try:  # torch.where fills the broadcast result about 3x faster than numpy's masked copy
            torch.where(torch.from_numpy(np.ascontiguousarray(keep)),
                        torch.from_numpy(np.ascontiguousarray(xs, dtype=self.dtype)),
                        torch.from_numpy(self.reference), out=torch.from_numpy(out))
        except (TypeError, ValueError):  # a dtype torch lacks (long double), a buffer with negative strides
            out[...] = self.reference
            np.copyto(out, xs, where=keep)
        return out


BLEND_ELEMENTS = 2**22
"""Blend factors (coalitions x sample elements) a :class:`Blend` expands once for all its calls."""


_BLEND = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
"""Dtypes composed by the arithmetic blend (others, or non-finite values, by a masked copy)."""


def sliding_windows(sample_shape: Sequence[int], window: Any, stride: Any = None) -> list[tuple[slice, ...]]:
    """Positions of a window slid with ``stride`` over every sample dimension.

    ``None`` in ``window`` spans the whole axis. Positions start at 0 every ``stride``;
    when the stride does not land on the end, one last window aligned to the end is
    added so that every element is covered at least once.
    """
    sample_shape = tuple(int(s) for s in sample_shape)
    window = _tuple(window, len(sample_shape), "window")
    window = tuple(s if w is None else w for s, w in zip(sample_shape, window))
    stride = window if stride is None else _tuple(stride, len(sample_shape), "stride")
    stride = tuple(w if s is None else s for w, s in zip(window, stride))
    axes = []
    for size, w, s in zip(sample_shape, window, stride):
        if w > size:
            raise ValueError(f"window {window} is larger than the sample {sample_shape}")
        if s > w:
            raise ValueError(f"stride {stride} exceeds the window {window}: elements between windows "
                             "would never be occluded")
        starts = list(range(0, size - w + 1, s))
        if starts[-1] + w < size:
            starts.append(size - w)
        axes.append([slice(a, a + w) for a in starts])
    grids = np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij")
    return [tuple(axes[k][int(i)] for k, i in enumerate(idx)) for idx in zip(*(g.ravel() for g in grids))]


def as_inputs(inputs: Any, name: str = "inputs") -> np.ndarray:
    """A batch as a floating array (integers are converted to float32)."""
    x = as_array(inputs, name)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def as_background(background: Any, x: np.ndarray, name: str = "background") -> np.ndarray:
    """Background rows shaped like the samples: ``(B, *S)``, checked and cast (``x=None``:
    checked only, e.g. in a constructor, before the inputs are known)."""
    if background is None:
        raise ValueError(f"{name} is required: pass rows of the training data shaped like the inputs, to the "
                         f"constructor or to explain(..., {name}=...)")
    bg = as_array(background, name)
    if x is None:
        return bg
    if bg.shape[1:] != x.shape[1:]:
        raise ValueError(f"{name} rows have shape {bg.shape[1:]}, but the inputs have samples of shape {x.shape[1:]}")
    return bg.astype(x.dtype, copy=False)
