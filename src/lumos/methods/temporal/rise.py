"""RISE, randomized input sampling for explanation (Petsiuk, Das, Saenko 2018,
arXiv:1806.07421), for images (N, C, H, W) and series (N, C, T).

    R_t(x) = E_M[f_t(x ⊙ M) · M] / E[M] ≈ 1 / (n_masks · p) · Σ_i f_t(x ⊙ M_i) · M_i

over random masks M_i made as in the paper: a coarse binary grid (``grid`` cells per
spatial axis, each 1 with probability ``p``) is upsampled linearly (bilinear for images,
linear for series) to (grid + 1) · ⌈size / grid⌉ and cropped at a random shift in
[0, ⌈size / grid⌉) per axis. Interpolation is the paper's ``skimage.transform.resize``
(order 1, ``mode="reflect"``, half-pixel centres), written as a matrix per axis; its weights
sum to 1, so E[M] = p everywhere. A ``grid`` equal to an axis's size uses the binary cells
themselves on that axis (no upsampling, no shift). Masks are shared by the channels, or
drawn for each channel with ``per_channel`` (e.g. ECG leads).

For a model linear in x, f(x) = w·x + b, and masks of independent cells (``grid`` equal to
the size), the expectation is R_u = (1 − p) w_u x_u + p f(x) + (1 − p) b: w ⊙ x up to a
known affine map; the Monte-Carlo error falls as 1/√n_masks.

The masks are shared by every input of a call (the paper reuses them): they come in blocks
of 256 from generators seeded by (seed, block), so results do not depend on the batch size
or the chunking. All masked copies of a chunk of inputs go through the model in calls of the
row budget.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import register
from lumos.core.validate import check_positive_int
from lumos.methods.agnostic.base import AgnosticExplainer
from lumos.methods.base import Chunk, State

MASK_BLOCK = 256
"""Masks drawn per generator (the unit the draws do not depend on)."""
CACHE_ELEMENTS = 2**24
"""Masks of a call up to this many elements are made once and kept (64 MB in float32)."""


def interpolation_matrix(cells: int, size: int) -> np.ndarray:
    """``A`` (size, cells): linear interpolation of ``cells`` values to ``size`` points with
    half-pixel centres and mirror boundaries, as ``skimage.transform.resize(order=1,
    mode="reflect", anti_aliasing=False)`` (``scipy.ndimage.zoom(grid_mode=True, mode="mirror")``)."""
    pos = (np.arange(size) + 0.5) * cells / size - 0.5
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo

    def mirror(i):
        if cells == 1:
            return np.zeros_like(i)
        period = 2 * (cells - 1)
        i = np.mod(i, period)
        return np.where(i >= cells, period - i, i)

    a = np.zeros((size, cells))
    rows = np.arange(size)
    np.add.at(a, (rows, mirror(lo)), 1 - frac)
    np.add.at(a, (rows, mirror(lo + 1)), frac)
    return a


@register("rise")
class Rise(AgnosticExplainer):
    """Randomized input sampling: the mask-weighted mean score.

    Parameters
    ----------
    n_masks : int, default 4000
        Random masks (the paper's N for ResNet-50).
    grid : int or tuple, default 7
        Cells of the coarse grid per spatial axis (the paper's s).
    p : float, default 0.5
        Probability that a cell is kept (the paper's p₁).
    per_channel : bool, default False
        Draw a mask per channel instead of one shared by the channels.
    seed : int or None, default 0
    """

    layouts = ("timeseries", "image")
    stochastic = True
    call_options = {}

    def __init__(self, model, *, n_masks: int = 4000, grid=7, p: float = 0.5, per_channel: bool = False,
                 seed: int | None = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_masks = check_positive_int(n_masks, "n_masks")
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 < p <= 1:
            raise ValueError(f"p must be a probability in (0, 1], got {p!r}")
        self.grid, self.p, self.per_channel, self.seed = grid, float(p), bool(per_channel), seed

    def params(self):
        return {**super().params(), "n_masks": self.n_masks, "grid": self.grid, "p": self.p,
                "per_channel": self.per_channel, "seed": self.seed}

    def prepare(self, x, call):
        spatial = x.shape[2:]
        grid = (self.grid,) * len(spatial) if np.ndim(self.grid) == 0 else tuple(self.grid)
        if len(grid) != len(spatial):
            raise ValueError(f"grid must have one entry per spatial axis ({len(spatial)}), got {self.grid!r}")
        grid = tuple(check_positive_int(g, "grid") for g in grid)
        for g, size in zip(grid, spatial):
            if g > size:
                raise ValueError(f"grid {grid} is finer than the inputs' {tuple(spatial)}")
        axes = []  # per axis: (interpolation matrix (U, g) or None, largest shift)
        for g, size in zip(grid, spatial):
            if g == size:
                axes.append((None, 0))
            else:
                cell = math.ceil(size / g)
                axes.append((torch.as_tensor(interpolation_matrix(g, (g + 1) * cell), dtype=torch.float32), cell))
        state = State(call, grid=grid, axes=axes, masks=None,
                      channels=x.shape[1] if self.per_channel else 1)
        if self.n_masks * state.channels * int(np.prod(spatial)) <= CACHE_ELEMENTS:
            state.masks = self.masks(state, spatial, 0, self.n_masks)
        return state

    def masks(self, state, spatial, start: int, stop: int) -> torch.Tensor:
        """Masks ``start..stop`` of the call, (m, 1 or C, *spatial) float32."""
        parts = []
        for block in range(start // MASK_BLOCK, (stop - 1) // MASK_BLOCK + 1):
            lo = block * MASK_BLOCK
            m = min(MASK_BLOCK, self.n_masks - lo)
            rng = np.random.default_rng([int(state.call.seed), block])
            cells = rng.random((m, state.channels, *state.grid)) < self.p
            shifts = [rng.integers(0, max(shift, 1), size=m) for _, shift in state.axes]
            mask = torch.as_tensor(cells, dtype=torch.float32)
            for axis, ((a, _), shift, size) in enumerate(zip(state.axes, shifts, spatial)):
                if a is None:
                    continue
                rows = a[torch.as_tensor(shift)[:, None] + torch.arange(size)]  # (m, size, g): the cropped rows
                dim = 2 + axis  # (m, C, *spatial): upsample this axis by A
                moved = mask.movedim(dim, -1)  # (m, C, ..., g)
                out = torch.einsum("m...g,msg->m...s", moved, rows)
                mask = out.movedim(-1, dim)
            parts.append(mask[max(start - lo, 0):min(stop - lo, m)])
        return torch.cat(parts).contiguous()

    def expansion(self, state):
        return self.n_masks

    def attribute_chunk(self, x, targets, state):
        scores, t, _ = self.scored(x, targets, state)
        adapter = state.adapter
        xt = torch.as_tensor(x)
        spatial = x.shape[2:]
        total = np.zeros((x.shape[0], state.channels, *spatial))
        for rows, cols in expansion_chunks(x.shape[0], self.n_masks, adapter.batch_size):
            masks = state.masks[cols] if state.masks is not None else self.masks(state, spatial, cols.start, cols.stop)
            masked = xt[rows, None] * masks.to(xt.dtype)[None]  # (r, m, C, *spatial)
            r, m = masked.shape[:2]
            f = adapter.scores(masked.reshape(r * m, *x.shape[1:]))
            f = f[np.arange(r * m), np.repeat(t[rows], m)].reshape(r, m)
            total[rows] += (f @ masks.reshape(m, -1).double().numpy()).reshape(r, state.channels, *spatial)
        values = total / (self.n_masks * self.p)
        return Chunk(np.broadcast_to(values, x.shape).astype(np.float64), scores, t)
