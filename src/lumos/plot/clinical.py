"""Clinical views of time-series relevance: a multi-lead ECG printout and an EEG
channel x time map.

Both keep lumos's colour convention: a diverging map, red where the samples speak *for*
the explained class, blue where they speak *against* it, white at zero, with limits
symmetric about zero (so the colour of a value never depends on the sign of the largest
one) and a colour bar saying so.

ECG (:func:`ecg`)
    Leads on a grid like a printout (one column for up to four leads, two columns of six
    for a 12-lead record: limb leads left, chest leads right), time in seconds, amplitude in
    the data's unit, every lead on the same amplitude scale. With ``unit="mV"`` and a
    sampling rate the panels are drawn over an ECG-paper grid (0.2 s x 0.5 mV boxes,
    0.04 s x 0.1 mV small boxes), their height near the paper's proportions (25 mm/s,
    10 mm/mV) within readable limits (the boxes are not exactly square). When R peaks are
    given or detected (:func:`detect_r_peaks`), a column beside each lead shows the mean
    beat around R with its beat-averaged relevance (:func:`beat_average`).

EEG (:func:`eeg_heatmap`)
    Channels x time in ms after the event, channel names on the y axis, a signed
    (red/blue) or, for |relevance| averaged over trials, a sequential colour scale. Pure
    matplotlib; :mod:`lumos.integrations.mne` gives topomaps when mne is installed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: leads of a standard 12-lead ECG in printout order
TWELVE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_GRID_MINOR, _GRID_MAJOR = "#f6d5cf", "#e8a89c"  # ECG paper: pale small boxes, darker 5 mm boxes
_EVIDENCE = "red: evidence for the class, blue: against; white: 0"


# -- helpers shared with lumos.integrations.mne -------------------------------------------------
def probabilities(prediction: np.ndarray) -> np.ndarray:
    """Class probabilities from an explanation's ``prediction`` (N, K).

    Rows that are already probabilities (in [0, 1], summing to 1) are kept; log-probabilities
    (all <= 0, ``exp`` summing to 1, e.g. a final ``LogSoftmax``) are exponentiated; one
    output column is read as a logit (sigmoid); anything else as logits (softmax).
    """
    p = np.asarray(prediction, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.shape[1] == 1:
        if np.all((p >= 0) & (p <= 1)):
            return np.concatenate([1 - p, p], 1)
        s = 1.0 / (1.0 + np.exp(-p))
        return np.concatenate([1 - s, s], 1)
    if np.all((p >= 0) & (p <= 1)) and np.allclose(p.sum(1), 1, atol=1e-3):
        return p
    if np.all(p <= 0) and np.allclose(np.exp(p).sum(1), 1, atol=1e-3):
        return np.exp(p)
    z = np.exp(p - p.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def select_values(explanation, index=0, target=None, absolute: bool = False) -> tuple[np.ndarray, int]:
    """The ``(C, T)`` relevance of one sample, or its mean over several, and how many were averaged.

    ``explanation`` is an :class:`~lumos.core.explanation.Explanation` with values ``(N, C, T)``
    (values broadcastable to the inputs, e.g. a CAM map ``(N, 1, T)``, are broadcast) or an
    array ``(C, T)`` / ``(N, C, T)``. ``index``: an int (one sample), a sequence of indices or
    a boolean mask (their mean), or None (the mean over all samples). ``target``: keep only
    the samples that explain this class (class average). ``absolute``: average ``|values|``
    (signs of single trials cancel in a plain mean).
    """
    values = getattr(explanation, "values", explanation)
    values = np.asarray(values, dtype=np.float64)
    inputs = getattr(explanation, "inputs", None)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise ValueError(f"expected relevance of shape (N, channels, times) or (channels, times), got {values.shape}")
    if inputs is not None and np.asarray(inputs).ndim == 3 and values.shape != np.asarray(inputs).shape:
        values = np.broadcast_to(values, np.asarray(inputs).shape)
    rows = np.arange(len(values))
    if target is not None:
        tgt = getattr(explanation, "target", None)
        if tgt is None:
            raise ValueError("target= needs an Explanation that records its targets")
        rows = rows[np.asarray(tgt).reshape(-1) == int(target)]
        if rows.size == 0:
            raise ValueError(f"no sample of this explanation explains class {target}")
    if index is not None:
        if isinstance(index, (int, np.integer)):
            if not -len(values) <= int(index) < len(values):
                raise IndexError(f"sample index {index} out of range for {len(values)} samples")
            rows = np.intersect1d(rows, [int(index) % len(values)])
            if rows.size == 0:
                raise ValueError(f"sample {index} does not explain class {target}")
        else:
            idx = np.asarray(index)
            idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(int) % len(values)
            rows = np.intersect1d(rows, idx)
    if rows.size == 0:
        raise ValueError("no sample selected")
    sel = values[rows]
    return (np.abs(sel) if absolute else sel).mean(0), int(rows.size)


def _class_label(class_names, k) -> str:
    if class_names is not None and 0 <= int(k) < len(class_names):
        return str(class_names[int(k)]).replace("_", " ")
    return f"class {int(k)}"


def _plain(text) -> str:
    """``text`` drawn literally (``$`` would start matplotlib mathtext)."""
    return str(text).replace("$", r"\$")


# -- R peaks and beats ---------------------------------------------------------------------------
def detect_r_peaks(signal, sfreq: float, *, band: tuple[float, float] = (5.0, 15.0), refractory: float = 0.25,
                   threshold: float = 0.3, integration: float = 0.1, search: float = 0.06) -> np.ndarray:
    """Sample indices of the R peaks of an ECG, ``signal`` ``(T,)`` or ``(leads, T)``.

    A simplified Pan-Tompkins detector (Pan & Tompkins 1985, IEEE TBME 32:230):

    1. each lead is band-passed to ``band`` Hz (2nd-order Butterworth, zero phase), which
       keeps the QRS complex and suppresses baseline wander, P and T waves;
    2. the squared derivative is summed over the leads and smoothed with a centred moving
       average of ``integration`` s: a QRS-energy envelope;
    3. :func:`scipy.signal.find_peaks` keeps envelope maxima above ``threshold`` times its
       99th percentile that are at least ``refractory`` s apart (250 ms: no second beat
       within the ventricles' refractory period, i.e. at most 240 bpm);
    4. each peak is moved to the sample of largest band-passed amplitude (summed over
       leads) within ``search`` s, the R (or QS) apex.

    Works on records of a few beats (the threshold is relative to the record). Not a
    validated clinical detector: check the marks on the plot.
    """
    from scipy.signal import butter, find_peaks, sosfiltfilt

    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    if x.ndim != 2:
        raise ValueError(f"signal must be (T,) or (leads, T), got shape {np.shape(signal)}")
    if not sfreq or sfreq <= 0:
        raise ValueError("detect_r_peaks needs the sampling rate sfreq (Hz)")
    n = x.shape[1]
    if n < 3:
        return np.zeros(0, dtype=int)
    lo, hi = band
    hi = min(hi, 0.45 * sfreq)
    if not 0 < lo < hi:
        raise ValueError(f"band {band} Hz does not fit a sampling rate of {sfreq} Hz")
    sos = butter(2, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
    x = x - np.median(x, axis=1, keepdims=True)
    bp = sosfiltfilt(sos, x, axis=1, padlen=min(3 * (2 * len(sos) + 1), n - 1))
    energy = (np.gradient(bp, axis=1) ** 2).sum(0)
    w = max(1, int(round(integration * sfreq)))
    env = np.convolve(energy, np.ones(w) / w, mode="same")
    top = float(np.percentile(env, 99))
    if top <= 0:
        return np.zeros(0, dtype=int)
    distance = max(1, int(round(refractory * sfreq)))
    peaks, _ = find_peaks(env, height=threshold * top, distance=distance)
    s = max(1, int(round(search * sfreq)))
    mag = np.abs(bp).sum(0)
    refined = []
    for p in peaks:
        a, b = max(0, p - s), min(n, p + s + 1)
        refined.append(a + int(np.argmax(mag[a:b])))
    refined = sorted(set(refined))
    kept: list[int] = []  # refinement can bring two marks closer than the refractory period
    for r in refined:
        if kept and r - kept[-1] < distance:
            if mag[r] > mag[kept[-1]]:
                kept[-1] = r
            continue
        kept.append(r)
    return np.asarray(kept, dtype=int)


def beat_average(signal, relevance, r_peaks, sfreq: float, window: tuple[float, float] = (-0.25, 0.45)) -> dict:
    """Cut ``signal`` and ``relevance`` (both ``(leads, T)``) around each R peak and average.

    ``window`` is (start, end) in seconds relative to R. Beats whose window does not fit in
    the record are left out. Returns ``times`` (s from R, ``(L,)``), ``beats`` and
    ``beat_relevance`` (``(B, leads, L)``), ``mean_beat`` and ``relevance`` (their means,
    ``(leads, L)``) and ``r_peaks`` (the peaks used).
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    v = np.broadcast_to(np.atleast_2d(np.asarray(relevance, dtype=np.float64)), x.shape)
    start, end = int(round(window[0] * sfreq)), int(round(window[1] * sfreq))
    if end <= start:
        raise ValueError(f"window {window} is empty")
    peaks = np.asarray([] if r_peaks is None else r_peaks, dtype=int).reshape(-1)
    used = np.asarray([r for r in peaks if r + start >= 0 and r + end <= x.shape[1]], dtype=int)
    times = np.arange(start, end) / sfreq
    if used.size == 0:
        empty = np.zeros((0, x.shape[0], end - start))
        return {"times": times, "beats": empty, "beat_relevance": empty, "mean_beat": None, "relevance": None,
                "r_peaks": used}
    beats = np.stack([x[:, r + start:r + end] for r in used])
    rel = np.stack([v[:, r + start:r + end] for r in used])
    return {"times": times, "beats": beats, "beat_relevance": rel, "mean_beat": beats.mean(0),
            "relevance": rel.mean(0), "r_peaks": used}


# -- drawing -------------------------------------------------------------------------------------
def _band(ax, t, y, v, norm, cmap, width=5.0):
    """The relevance as a wide coloured band under the trace (white where it is 0)."""
    from matplotlib.collections import LineCollection

    pts = np.stack([t, y], 1)
    band = LineCollection(np.stack([pts[:-1], pts[1:]], 1), cmap=cmap, norm=norm, linewidth=width, zorder=2,
                          capstyle="round")
    band.set_array((v[:-1] + v[1:]) / 2)
    ax.add_collection(band)
    ax.plot(t, y, color="0.1", lw=0.8, zorder=3)
    return band


def _paper(ax, xlim, ylim, minor=(0.04, 0.1), major=(0.2, 0.5)):
    """ECG-paper grid lines (drawn as lines, so that the axis ticks can stay sparse)."""
    from matplotlib.collections import LineCollection

    for (dx, dy), colour, lw in ((minor, _GRID_MINOR, 0.4), (major, _GRID_MAJOR, 0.7)):
        xs = np.arange(np.ceil(xlim[0] / dx) * dx, xlim[1] + 1e-9, dx)
        ys = np.arange(np.ceil(ylim[0] / dy) * dy, ylim[1] + 1e-9, dy)
        segs = [[(x, ylim[0]), (x, ylim[1])] for x in xs] + [[(xlim[0], y), (xlim[1], y)] for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, zorder=0))


def _lead_layout(n: int, ncols: int | None) -> tuple[int, int]:
    if ncols is None:
        ncols = 1 if n <= 4 else (2 if n <= 12 else 3)
    ncols = max(1, min(int(ncols), n))
    return int(np.ceil(n / ncols)), ncols


def plot_ecg(signal, relevance, sfreq: float | None = None, *, lead_names: Sequence[str] | None = None,
             r_peaks="detect", unit: str = "mV", title: str | None = None, relevance_label: str = "relevance",
             ncols: int | None = None, beat_window: tuple[float, float] = (-0.25, 0.45), paper: bool | None = None,
             cmap: str = "bwr", strip_width: float | None = None):
    """Draw one ECG record ``signal`` ``(leads, T)`` over its ``relevance`` (same shape, or
    broadcastable) and return the Figure. The array version of :func:`ecg`, for callers
    that hold arrays, not an Explanation (e.g. the HTML report); see :func:`ecg` for the
    arguments. ``relevance_label`` names the colour bar.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    v = np.array(np.broadcast_to(np.atleast_2d(np.asarray(relevance, dtype=np.float64)), x.shape))
    n_leads, n = x.shape
    if lead_names is None:
        lead_names = list(TWELVE_LEADS) if n_leads == 12 else (["ECG"] if n_leads == 1 else
                                                                 [f"lead {i + 1}" for i in range(n_leads)])
    lead_names = [str(s) for s in lead_names]
    if len(lead_names) != n_leads:
        raise ValueError(f"{len(lead_names)} lead names for {n_leads} leads")
    seconds = bool(sfreq)
    t = np.arange(n) / sfreq if seconds else np.arange(n, dtype=np.float64)
    if isinstance(r_peaks, str):
        if r_peaks != "detect":
            raise ValueError(f"r_peaks must be 'detect', an array of sample indices or None, got {r_peaks!r}")
        r_peaks = detect_r_peaks(x, sfreq) if seconds and n / sfreq >= 1.0 else None
    beats = None
    if r_peaks is not None:
        if not seconds:
            raise ValueError("beat averaging needs the sampling rate sfreq")
        beats = beat_average(x, v, r_peaks, sfreq, beat_window)
        if beats["mean_beat"] is None:
            beats = None
    paper = (unit == "mV" and seconds) if paper is None else bool(paper)
    lim = float(np.nanpercentile(np.abs(v), 99.5)) if v.size else 0.0
    lim = lim if lim > 0 else 1.0
    norm = Normalize(-lim, lim)

    rows, cols = _lead_layout(n_leads, ncols)
    # one amplitude scale for all leads (as on a printout): each lead centred in the same span
    lo, hi = np.nanmin(x, 1), np.nanmax(x, 1)
    if beats is not None:
        lo, hi = np.minimum(lo, beats["mean_beat"].min(1)), np.maximum(hi, beats["mean_beat"].max(1))
    span = float(np.max(hi - lo)) * 1.12 or 1.0
    if paper:
        span = max(span, 1.0)  # at least 1 mV per lead (the calibration pulse's height)
    centres = (lo + hi) / 2
    duration = t[-1] - t[0] if n > 1 else 1.0
    beat_w = 1.7 if beats is not None else 0.0
    if strip_width is None:  # about 11 in per row of strips (6.5 in without a time scale)
        strip_width = (11.0 if seconds else 6.5) / cols - beat_w
    width = float(strip_width)
    if paper:  # the paper's proportions (1 mV as tall as 0.4 s is wide), within readable limits
        row_h = float(np.clip(0.4 * width / duration * span, 0.95, 2.2))
    else:
        row_h = 1.5 if n_leads > 1 else 2.4
    ratios = []
    for _ in range(cols):
        ratios += [width] + ([beat_w] if beats is not None else [])
    fig = plt.figure(figsize=(sum(ratios) + 1.4, rows * row_h + 1.4), layout="constrained")
    gs = fig.add_gridspec(rows, len(ratios), width_ratios=ratios)
    strips, beat_axes, mappable = [], [], None
    for k in range(n_leads):
        r, c = k % rows, k // rows  # column-major, as printouts list I, II, III down a column
        per = 2 if beats is not None else 1
        ax = fig.add_subplot(gs[r, c * per], sharex=strips[0] if strips else None)
        strips.append(ax)
        ylim = (centres[k] - span / 2, centres[k] + span / 2)
        if paper:
            _paper(ax, (t[0], t[-1]), ylim)
        else:
            ax.grid(True, color="0.9", lw=0.6, zorder=0)
        mappable = _band(ax, t, x[k], v[k], norm, cmap)
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(*ylim)
        ax.set_ylabel(f"{_plain(lead_names[k])} ({_plain(unit)})", fontsize=8.5)
        ax.tick_params(labelsize=7)
        bottom = r == rows - 1 or k == n_leads - 1
        if bottom:
            ax.set_xlabel("time (s)" if seconds else "time (sample)", fontsize=8)
        else:
            ax.tick_params(labelbottom=False)
        if beats is not None:
            marks = np.asarray(r_peaks, dtype=int)
            marks = marks[(marks >= 0) & (marks < n)]
            ax.plot(t[marks], np.full(len(marks), ylim[1] - 0.04 * span), "v", color="0.25", ms=3.5, zorder=4)
            bx = fig.add_subplot(gs[r, c * per + 1], sharey=ax)
            beat_axes.append(bx)
            bt = beats["times"]
            for b in beats["beats"][:, k]:
                bx.plot(bt, b, color="0.6", lw=0.4, alpha=0.6, zorder=1)
            if paper:
                _paper(bx, beat_window, ylim)
            else:
                bx.grid(True, color="0.9", lw=0.6, zorder=0)
            _band(bx, bt, beats["mean_beat"][k], beats["relevance"][k], norm, cmap)
            bx.axvline(0, color="0.3", ls=":", lw=0.7, zorder=1)
            bx.set_xlim(*beat_window)
            bx.tick_params(labelsize=7, labelleft=False)
            bx.set_xticks([beat_window[0], 0, beat_window[1]],
                          [f"{beat_window[0] * 1000:+.0f}", "R", f"{beat_window[1] * 1000:+.0f}"])
            if r == 0:
                bx.set_title(f"mean beat (n = {len(beats['r_peaks'])})", fontsize=8)
            if bottom:
                bx.set_xlabel("ms from R", fontsize=8)
            else:
                bx.tick_params(labelbottom=False)
    cb = fig.colorbar(mappable, ax=strips + beat_axes, orientation="horizontal", fraction=0.05, shrink=0.5,
                      aspect=40, pad=0.05, extend="both")
    same = "; same scale in every panel" if len(strips) + len(beat_axes) > 1 else ""
    cb.set_label(f"{_plain(relevance_label)}\n{_EVIDENCE}{same}", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    notes = [f"colour scale ±{lim:.3g} (99.5th percentile of |relevance|; larger values drawn at the ends' colour)"]
    if paper:
        notes.append("ECG-paper grid: large boxes 0.2 s x 0.5 mV, small boxes 0.04 s x 0.1 mV")
    if beats is not None:
        notes.append(f"▼ R peaks ({len(marks)}); mean beat (time axis magnified): average of the "
                     f"{len(beats['r_peaks'])} beats that fit {beat_window[0] * 1000:+.0f} to "
                     f"{beat_window[1] * 1000:+.0f} ms around R (grey: single beats), coloured by the relevance "
                     "averaged over those beats")
    if title:
        fig.suptitle(_plain(title), fontsize=10)
    fig.text(0.5, 0.0, "\n".join(notes), ha="center", va="top", fontsize=7, color="0.3")
    fig._lumos = {"r_peaks": None if beats is None else beats["r_peaks"], "limit": lim}  # for tests and callers
    return fig


def ecg(explanation, index: int = 0, sfreq: float | None = None, lead_names: Sequence[str] | None = None,
        r_peaks="detect", *, class_names: Sequence[str] | None = None, unit: str = "mV", title: str | None = None,
        true_label: int | None = None, ncols: int | None = None, beat_window: tuple[float, float] = (-0.25, 0.45),
        paper: bool | None = None, cmap: str = "bwr", signal=None):
    """A multi-lead ECG printout of sample ``index`` of ``explanation``, each lead drawn over
    its relevance band; returns the matplotlib Figure.

    Parameters
    ----------
    explanation : Explanation
        A local explanation of ECG inputs ``(N, leads, T)`` (with ``inputs`` kept, or pass
        ``signal``).
    sfreq : float, optional
        Sampling rate in Hz: time in seconds, the ECG-paper grid and beat averaging. Without
        it, time is in samples.
    lead_names : list of str, optional
        Defaults to the explanation's ``feature_names``, else I, II, ... V6 for 12 leads.
    r_peaks : "detect", array of sample indices, or None
        ``"detect"`` runs :func:`detect_r_peaks` (records of at least 1 s with ``sfreq``);
        given or detected peaks add a mean-beat column with the beat-averaged relevance.
    class_names : list of str, optional
        Names of the model's outputs, used in the title with the predicted probability
        (from ``explanation.prediction``, see :func:`probabilities`).
    unit : str
        The amplitude unit of the data (y axis). ``"mV"`` (with ``sfreq``) draws the
        ECG-paper grid (0.2 s x 0.5 mV boxes); other units get a plain light grid.
    true_label : int, optional
        The recorded diagnosis, added to the title.
    ncols : int, optional
        Lead columns (default 1 up to 4 leads, 2 up to 12).
    paper : bool, optional
        Force the ECG-paper grid and proportions on or off.
    """
    exp = explanation
    x = exp.inputs[index] if signal is None else np.asarray(signal)
    if x is None:
        raise ValueError("the explanation holds no inputs; pass signal=")
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    v, _ = select_values(exp, index)
    names = lead_names if lead_names is not None else (
        exp.feature_names if exp.feature_names and len(exp.feature_names) == x.shape[0] else None)
    tgt = None if exp.target is None else int(np.asarray(exp.target).reshape(-1)[index])
    head = []
    if tgt is not None:
        what = f"relevance for '{_class_label(class_names, tgt)}'"
        if exp.prediction is not None:
            p = probabilities(exp.prediction[index:index + 1])[0]
            pred = int(np.argmax(p))
            what += f" (p = {p[tgt]:.2f})"
            if pred != tgt:
                what += f"; predicted '{_class_label(class_names, pred)}' (p = {p[pred]:.2f})"
            else:
                what += ", the predicted class"
        head.append(what)
    if true_label is not None:
        head.append(f"recorded: '{_class_label(class_names, true_label)}'")
    full = f"{title}\n" if title else ""
    full += f"{exp.method}: " + "; ".join(head) if head else exp.method
    label = f"{exp.method} relevance" + (f" for '{_class_label(class_names, tgt)}'" if tgt is not None else "")
    return plot_ecg(x, v, sfreq, lead_names=names, r_peaks=r_peaks, unit=unit, title=full, relevance_label=label,
                    ncols=ncols, beat_window=beat_window, paper=paper, cmap=cmap)


def eeg_heatmap(explanation, ch_names: Sequence[str] | None = None, sfreq: float | None = None, tmin: float = 0.0,
                *, index=None, target=None, absolute: bool = False, times=None, ax=None, title: str | None = None,
                label: str | None = None, window: tuple[float, float] | None = None, cmap: str | None = None,
                normalise: bool = False, class_names: Sequence[str] | None = None):
    """Relevance over channels x time as a heatmap; returns the Figure.

    ``explanation``: an Explanation (values ``(N, C, T)``) or an array ``(C, T)`` /
    ``(N, C, T)``; ``index``, ``target`` and ``absolute`` select and average samples as in
    :func:`select_values` (default: the mean over all samples). Time is in ms after the
    event: ``times`` (s, one per sample) or ``tmin + arange(T) / sfreq``; without either,
    samples. Signed maps use a symmetric red/blue scale; non-negative maps (``absolute=True``
    or |relevance| passed in) a white-to-red scale from 0. ``window`` (s) shades an interval
    (e.g. the P300's 0.25-0.6 s) between dashed lines; ``normalise`` divides by the largest
    |value| (relative units); ``class_names`` name ``target`` in the title. ``ax`` draws into
    an existing Axes.
    """
    import matplotlib.pyplot as plt

    v, n_avg = select_values(explanation, index, target, absolute)
    if ch_names is None:
        ch_names = getattr(explanation, "feature_names", None)
    n_ch, n_t = v.shape
    if ch_names is None or len(ch_names) != n_ch:
        ch_names = [f"ch{c}" for c in range(n_ch)]
    if times is not None:
        t_ms, xlabel = np.asarray(times, dtype=np.float64) * 1000.0, "time after the event (ms)"
    elif sfreq:
        t_ms, xlabel = (tmin + np.arange(n_t) / sfreq) * 1000.0, "time after the event (ms)"
    else:
        t_ms, xlabel = np.arange(n_t, dtype=np.float64), "time (sample)"
    if len(t_ms) != n_t:
        raise ValueError(f"{len(t_ms)} times for {n_t} samples")
    if normalise:
        m = float(np.max(np.abs(v)))
        v = v / m if m > 0 else v
    signed = bool(np.any(v < 0))
    lim = float(np.max(np.abs(v))) or 1.0
    step = (t_ms[1] - t_ms[0]) if n_t > 1 else 1.0
    extent = (t_ms[0] - step / 2, t_ms[-1] + step / 2, n_ch - 0.5, -0.5)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 1.5 + 0.3 * n_ch), layout="constrained")
    else:
        fig = ax.figure
    im = ax.imshow(v, aspect="auto", interpolation="nearest", extent=extent,
                   cmap=cmap or ("bwr" if signed else "Reds"), vmin=-lim if signed else 0.0, vmax=lim)
    ax.set_yticks(range(n_ch), [_plain(c) for c in ch_names], fontsize=8)
    ax.set_ylabel("channel", fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if xlabel.startswith("time after") and t_ms[0] <= 0 <= t_ms[-1]:
        ax.axvline(0, color="k", ls=":", lw=0.8)
    if window is not None:
        for edge in window:
            ax.axvline(edge * 1000, color="0.25", ls="--", lw=0.8)
        ax.annotate(f"{window[0] * 1000:.0f}–{window[1] * 1000:.0f} ms", xy=(np.mean(window) * 1000, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, 1), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7, color="0.25")
    what = label or ("mean |relevance|" if absolute else "relevance") + (" (relative)" if normalise else "")
    meaning = _EVIDENCE if signed else "white: 0, darker red: more relevant (sign ignored)"
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label(f"{_plain(what)}\n{meaning}", fontsize=7)
    cb.ax.tick_params(labelsize=7)
    method = getattr(explanation, "method", "")
    if not title:
        title = f"{method + ': ' if method else ''}{what}"
        if target is not None:
            title += f" for '{_class_label(class_names, target)}'"
        if n_avg > 1:
            title += f", mean of {n_avg} trials"
    ax.set_title(_plain(title), fontsize=9, pad=12 if window is not None else 6)
    return fig
