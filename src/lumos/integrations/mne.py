"""Relevance maps as MNE objects: channels x time relevance becomes an
:class:`mne.EvokedArray`, so that MNE's topomaps, joint plots and channel layouts read it
like an evoked response.

>>> from lumos.integrations.mne import to_evoked, plot_topomaps, plot_joint
>>> evoked = to_evoked(exp, ch_names, sfreq=64.0, tmin=-0.1, target=1, absolute=True)
>>> plot_topomaps(evoked, times=[0.1, 0.2, 0.35]); plot_joint(evoked)

Units: the data of the evoked object are the relevance values, unchanged (not volts).
The plotting functions here tell MNE so (``scalings=1``, ``units="relevance"``); when you
call MNE's own plotting methods on the object, pass the same arguments, or MNE labels
the values as µV after multiplying them by 1e6.

Needs ``mne`` (``pip install lumos-xai[eeg]``).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from lumos.plot.clinical import select_values

_INSTALL = "pip install lumos-xai[eeg]"
UNITS = "relevance"


def _mne():
    try:
        import mne
    except ModuleNotFoundError as err:
        raise ImportError(f"lumos.integrations.mne needs the 'mne' package: {_INSTALL} (or pip install mne)") from err
    return mne


def standard_montage():
    """The standard 10-20 montage (MNE's ``colin27_1020``, called ``standard_1020`` before MNE 1.13)."""
    mne = _mne()
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mne.channels.make_standard_montage(name)


def to_evoked(explanation, ch_names: Sequence[str] | None = None, sfreq: float | None = None, tmin: float = 0.0,
              index=None, *, target: int | None = None, absolute: bool = False, montage="auto",
              ch_types: str = "eeg", comment: str | None = None, nave: int | None = None):
    """Relevance of one sample, or averaged over samples, as an ``mne.EvokedArray``.

    Parameters
    ----------
    explanation : Explanation or array
        Relevance ``(N, channels, times)`` (an Explanation, or an array; ``(channels, times)``
        is one sample).
    ch_names : list of str, optional
        Defaults to the explanation's ``feature_names``.
    sfreq : float
        Sampling rate of the explained input, Hz.
    tmin : float
        Time of the first sample, s (e.g. -0.1 for epochs starting 100 ms before the event).
    index : int, sequence, mask or None
        One sample (int) or the mean over the selected ones; None: over all samples.
    target : int, optional
        Average only the samples that explain this class (the class average).
    absolute : bool
        Average ``|relevance|`` (the signs of single trials cancel in a plain mean).
    montage : "auto", str, DigMontage or None
        ``"auto"``: the standard 10-20 positions when every channel name is one of them
        (case-insensitive), else no montage (with a warning; topomaps then need one). A name
        or a ``DigMontage`` is applied as given; None sets no positions.
    ch_types : str
        MNE channel type of every channel ("eeg").

    ``evoked.nave`` is the number of samples averaged (``nave`` overrides it, e.g. for a
    map averaged before the call); ``evoked.comment`` names the method.
    """
    mne = _mne()
    values, n_avg = select_values(explanation, index, target, absolute)
    if ch_names is None:
        ch_names = getattr(explanation, "feature_names", None)
    if ch_names is None:
        raise ValueError("to_evoked needs ch_names (the explanation has no feature_names)")
    ch_names = [str(c) for c in ch_names]
    if len(ch_names) != values.shape[0]:
        raise ValueError(f"{len(ch_names)} channel names for relevance with {values.shape[0]} channels")
    if sfreq is None:
        raise ValueError("to_evoked needs the sampling rate sfreq (Hz)")
    info = mne.create_info(ch_names, float(sfreq), ch_types)
    n_avg = int(nave or n_avg)
    if comment is None:
        method = getattr(explanation, "method", "")
        comment = (f"{method}: " if method else "") + ("mean |relevance|" if absolute else "relevance")
        comment += (f" for class {target}" if target is not None else "") + (f" ({n_avg} trials)" if n_avg > 1 else "")
    evoked = mne.EvokedArray(values, info, tmin=float(tmin), comment=comment, nave=n_avg, verbose="error")
    if isinstance(montage, str) and montage == "auto":
        std = standard_montage()
        known = {c.lower() for c in std.ch_names}
        missing = [c for c in ch_names if c.lower() not in known]
        if missing:
            warnings.warn(f"no standard 10-20 position for {missing}: the evoked object has no montage "
                          "(pass montage= to set one; topomaps need positions)", stacklevel=2)
        else:
            evoked.set_montage(std, match_case=False, verbose="error")
    elif montage is not None:
        if isinstance(montage, str):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                montage = mne.channels.make_standard_montage(montage)
        evoked.set_montage(montage, match_case=False, verbose="error")
    return evoked


def from_evoked(evoked) -> dict:
    """The arrays back from an evoked object: ``values`` (channels, times), ``ch_names``,
    ``sfreq``, ``tmin`` and ``times`` (s)."""
    return {"values": np.asarray(evoked.data), "ch_names": list(evoked.ch_names), "sfreq": float(evoked.info["sfreq"]),
            "tmin": float(evoked.times[0]), "times": np.asarray(evoked.times)}


def _limits(evoked):
    data = evoked.data
    lim = float(np.max(np.abs(data))) or 1.0
    signed = bool(np.any(data < 0))
    return ((-lim, lim), "RdBu_r") if signed else ((0.0, lim), "Reds")


def _evoked(obj, kwargs):
    mne = _mne()
    if isinstance(obj, mne.Evoked):
        if kwargs:
            raise TypeError(f"{sorted(kwargs)} apply to an Explanation, not to an Evoked object")
        return obj
    return to_evoked(obj, **kwargs)


def _times(evoked, times):
    """'peaks': the latencies of the clear maxima of the channel-summed |relevance| (prominence
    at least 40 % of its range, at least 50 ms apart, up to 4); else what MNE accepts."""
    if isinstance(times, str) and times == "peaks":
        from scipy.signal import find_peaks

        g = np.abs(evoked.data).sum(0)
        distance = max(1, int(0.05 * evoked.info["sfreq"]))
        padded = np.concatenate([[g.min()], g, [g.min()]])  # a maximum at either end counts as a peak
        peaks, _ = find_peaks(padded, distance=distance, prominence=0.4 * float(np.ptp(g)) or None)
        peaks = peaks - 1
        peaks = peaks[np.argsort(-g[peaks])][:4] if peaks.size else np.array([int(np.argmax(g))])
        return np.sort(evoked.times[peaks])
    return times


def plot_topomaps(evoked_or_explanation, times="peaks", *, title: str | None = None, show_names: bool = True,
                  label: str = UNITS, **to_evoked_kwargs):
    """Scalp maps of the relevance at ``times`` (s; ``"peaks"``: up to four clear maxima of
    the total |relevance|), one colour scale for all maps (symmetric red/blue for
    signed relevance, white-to-red for |relevance|). Pass an ``mne.Evoked`` from
    :func:`to_evoked`, or an explanation plus :func:`to_evoked`'s arguments. Returns the Figure.
    """
    evoked = _evoked(evoked_or_explanation, to_evoked_kwargs)
    if evoked.get_montage() is None:
        raise ValueError("the evoked object has no channel positions; pass montage= to to_evoked "
                         "(e.g. 'standard_1020' when the names are 10-20 names)")
    vlim, cmap = _limits(evoked)
    times = _times(evoked, times)
    fig = evoked.plot_topomap(times=times, ch_type="eeg", scalings=1.0, units=label, vlim=vlim, cmap=cmap,
                              show_names=show_names, sensors=True, time_unit="ms", show=False,
                              cbar_fmt="%.2g", contours=0)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_joint(evoked_or_explanation, times="peaks", *, title: str | None = None, label: str = UNITS,
               **to_evoked_kwargs):
    """MNE's joint plot of the relevance: every channel's time course (butterfly) with
    scalp maps at ``times`` (see :func:`plot_topomaps`). Returns the Figure."""
    evoked = _evoked(evoked_or_explanation, to_evoked_kwargs)
    if evoked.get_montage() is None:
        raise ValueError("the evoked object has no channel positions; pass montage= to to_evoked")
    vlim, cmap = _limits(evoked)
    times = _times(evoked, times)
    mne = _mne()
    with mne.utils.use_log_level("error"):
        fig = evoked.plot_joint(times=times, title=title or evoked.comment, show=False,
                                ts_args=dict(scalings=dict(eeg=1.0), units=dict(eeg=label), time_unit="ms",
                                             spatial_colors=True, gfp=False),
                                topomap_args=dict(scalings=dict(eeg=1.0), units=label, vlim=vlim, cmap=cmap,
                                                  time_unit="ms", contours=0, sensors=True))
    n = len(evoked.ch_names)
    for ax in fig.axes:
        if ax.get_ylabel() == label and len(ax.lines) >= n:  # the butterfly: name the channels' lines
            ax.legend(ax.lines[:n], evoked.ch_names, fontsize=7, ncol=2 if n > 6 else 1, loc="upper right",
                      title="channel", title_fontsize=7, framealpha=0.8)
            if evoked.times[0] <= 0 <= evoked.times[-1]:
                ax.axvline(0, color="k", ls=":", lw=0.8)
        elif ax.get_label() == "<colorbar>":
            ax.set_title(label, fontsize=8)
    return fig
