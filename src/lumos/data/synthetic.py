"""Synthetic sets whose class evidence is planted at a known place, for checking that an
explanation points at it. Each returns a :class:`Dataset` with boolean ``mask_train`` /
``mask_test`` shaped like ``X``: True where the evidence of the sample's class was planted
(all False for samples of a class that carries no planted evidence).

- :func:`make_bump_series` — time series; class 1 has a Gaussian bump, class 0 none.
- :func:`make_clever_hans_images` — images whose real class cue is a faint bar, and whose
  "shortcut" class also carries a bright watermark in a corner (Lapuschkin et al. 2019,
  "Unmasking Clever Hans predictors", Nat. Commun. 10:1096). :func:`add_watermark` plants the
  same watermark on any image batch (e.g. MNIST).
- :func:`make_erp` — EEG-like epochs; targets carry a positive deflection at a chosen
  latency on chosen channels, on top of 1/f-like background noise.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lumos.data.loaders import Dataset


def _split(X, y, mask, n_train, name, layout, classes, **kw) -> Dataset:
    return Dataset(name, X[:n_train], y[:n_train], X[n_train:], y[n_train:], layout, classes,
                   mask_train=mask[:n_train], mask_test=mask[n_train:], **kw)


def make_bump_series(n_samples: int = 400, length: int = 128, n_channels: int = 1, width: float = 4.0,
                     amplitude: float = 2.0, noise: float = 0.5, position: int | None = None,
                     test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Gaussian noise series (N, C, T); class 1 adds ``amplitude * exp(-(t-c)²/(2 width²))``
    on a random channel at a random centre ``c`` (or at ``position``).

    The mask covers ``|t - c| <= 2 width`` on that channel (95% of the bump's area).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, noise, (n_samples, n_channels, length)).astype(np.float32)
    y = (np.arange(n_samples) % 2).astype(np.int64)
    rng.shuffle(y)
    mask = np.zeros(X.shape, dtype=bool)
    t = np.arange(length)
    margin = int(np.ceil(2 * width))
    if position is not None and not margin <= position < length - margin:
        raise ValueError(f"position must be in [{margin}, {length - margin}) for width {width}, got {position}")
    for i in np.where(y == 1)[0]:
        c = position if position is not None else int(rng.integers(margin, length - margin))
        ch = int(rng.integers(n_channels))
        X[i, ch] += (amplitude * np.exp(-((t - c) ** 2) / (2 * width ** 2))).astype(np.float32)
        mask[i, ch] = np.abs(t - c) <= 2 * width
    n_train = int(round(n_samples * (1 - test_fraction)))
    return _split(X, y, mask, n_train, "bump_series", "timeseries", ["noise", "bump"],
                  feature_names=[f"ch{c}" for c in range(n_channels)])


def watermark_pattern(size: int = 4) -> np.ndarray:
    """A ``size x size`` checkerboard of 0/1: the planted "copyright tag"."""
    i, j = np.indices((size, size))
    return ((i + j) % 2 == 0).astype(np.float32)


def add_watermark(X: np.ndarray, where: np.ndarray | None = None, size: int = 4, corner: str = "bottom_right",
                  value: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stamp a checkerboard watermark onto images (N, C, H, W).

    ``where`` selects the images (boolean or index array; all when None). The tag's bright
    squares take ``value`` (default: the batch maximum), the dark ones the batch minimum.
    Returns the stamped copy and the boolean mask of the stamped pixels.
    """
    X = np.array(X, dtype=np.float32, copy=True)
    if X.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {X.shape}")
    n, _, h, w = X.shape
    if size < 2 or size > min(h, w) // 2:
        raise ValueError(f"watermark size must be in [2, {min(h, w) // 2}] for {h}x{w} images, got {size}")
    rows = slice(h - size - 1, h - 1) if corner.startswith("bottom") else slice(1, size + 1)
    cols = slice(w - size - 1, w - 1) if corner.endswith("right") else slice(1, size + 1)
    sel = np.zeros(n, dtype=bool)
    sel[np.arange(n) if where is None else where] = True
    hi = float(X.max()) if value is None else float(value)
    lo = float(X.min())
    pattern = lo + (hi - lo) * watermark_pattern(size)
    X[sel, :, rows, cols] = pattern
    mask = np.zeros(X.shape, dtype=bool)
    mask[sel, :, rows, cols] = True
    return X, mask


def make_clever_hans_images(n_samples: int = 600, size: int = 16, shortcut_class: int = 1,
                            watermark_rate: float = 1.0, test_watermark_rate: float | None = None,
                            signal: float = 0.35, noise: float = 0.25, watermark_size: int = 4,
                            test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Two-class images (N, 1, size, size) in [0, 1] with a planted shortcut.

    Class 0 ("horizontal") shows a faint horizontal bar, class 1 ("vertical") a vertical
    bar, at random positions, under Gaussian noise. A fraction ``watermark_rate`` of the
    ``shortcut_class`` training images carries a bright checkerboard tag in the bottom-right
    corner; ``test_watermark_rate`` (default: same) applies to the test split. The masks mark
    the watermark pixels, the ground truth of the shortcut. ``extra["bar_mask_*"]`` marks
    the genuine bar.
    """
    if shortcut_class not in (0, 1):
        raise ValueError(f"shortcut_class must be 0 or 1, got {shortcut_class}")
    rng = np.random.default_rng(seed)
    y = (np.arange(n_samples) % 2).astype(np.int64)
    rng.shuffle(y)
    X = np.clip(0.3 + rng.normal(0.0, noise, (n_samples, 1, size, size)), 0, 1).astype(np.float32)
    bar = np.zeros(X.shape, dtype=bool)
    lo, hi = 2, size - watermark_size - 3
    for i in range(n_samples):
        k = int(rng.integers(lo, hi))
        a, b = sorted(rng.integers(1, size - watermark_size - 1, 2))
        b = max(b, a + size // 3)
        if y[i] == 0:
            bar[i, 0, k:k + 2, a:b] = True
        else:
            bar[i, 0, a:b, k:k + 2] = True
    X = np.clip(X + signal * bar, 0, 1).astype(np.float32)
    n_train = int(round(n_samples * (1 - test_fraction)))
    test_rate = watermark_rate if test_watermark_rate is None else test_watermark_rate
    rate = np.where(np.arange(n_samples) < n_train, watermark_rate, test_rate)
    stamp = (y == shortcut_class) & (rng.random(n_samples) < rate)
    X, mask = add_watermark(X, stamp, size=watermark_size, value=1.0)
    X = np.clip(X, 0, 1)
    ds = _split(X, y, mask, n_train, "clever_hans", "image", ["horizontal", "vertical"])
    ds.extra.update(bar_mask_train=bar[:n_train], bar_mask_test=bar[n_train:], shortcut_class=shortcut_class,
                    watermark_train=stamp[:n_train], watermark_test=stamp[n_train:])
    return ds


def _pink_noise(rng, shape, sfreq: float) -> np.ndarray:
    """Noise with a 1/f amplitude spectrum along the last axis, unit standard deviation."""
    t = shape[-1]
    freqs = np.fft.rfftfreq(t, 1 / sfreq)
    scale = 1.0 / np.maximum(freqs, freqs[1] if len(freqs) > 1 else 1.0)
    spec = (rng.normal(size=shape[:-1] + (len(freqs),)) + 1j * rng.normal(size=shape[:-1] + (len(freqs),))) * scale
    out = np.fft.irfft(spec, n=t, axis=-1)
    return out / out.std(axis=-1, keepdims=True)


def make_erp(n_trials: int = 600, ch_names: Sequence[str] = ("Fz", "Cz", "P3", "Pz", "P4", "PO7", "Oz", "PO8"),
             erp_channels: Sequence[str] = ("Cz", "Pz"), latency: float = 0.35, width: float = 0.05,
             amplitude: float = 4.0, noise: float = 5.0, sfreq: float = 128.0, tmin: float = -0.1,
             tmax: float = 0.8, target_rate: float = 0.3, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """EEG-like epochs (N, C, T) in µV: 1/f background of standard deviation ``noise``;
    target trials add a positive Gaussian deflection ``amplitude * exp(-(t-latency)²/(2 width²))``
    on ``erp_channels`` (a P300-like component).

    The mask of a target trial covers ``|t - latency| <= 2 width`` on the ERP channels.
    """
    missing = [c for c in erp_channels if c not in ch_names]
    if missing:
        raise ValueError(f"erp_channels {missing} are not in ch_names {list(ch_names)}")
    if not tmin < latency < tmax:
        raise ValueError(f"latency {latency} s lies outside the epoch [{tmin}, {tmax}] s")
    rng = np.random.default_rng(seed)
    times = np.arange(int(round(tmin * sfreq)), int(round(tmax * sfreq)) + 1) / sfreq
    n_ch = len(ch_names)
    X = (noise * _pink_noise(rng, (n_trials, n_ch, len(times)), sfreq)).astype(np.float32)
    y = (rng.random(n_trials) < target_rate).astype(np.int64)
    chans = np.array([c in erp_channels for c in ch_names])
    wave = amplitude * np.exp(-((times - latency) ** 2) / (2 * width ** 2))
    X[np.ix_(y == 1, chans)] += wave.astype(np.float32)
    mask = np.zeros(X.shape, dtype=bool)
    mask[np.ix_(y == 1, chans)] = np.abs(times - latency) <= 2 * width
    n_train = int(round(n_trials * (1 - test_fraction)))
    return _split(X, y, mask, n_train, "synthetic_erp", "timeseries", ["non-target", "target"],
                  feature_names=list(ch_names), sfreq=sfreq, times=times.astype(np.float32))
