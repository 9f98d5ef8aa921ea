"""Figures for explanations: heatmaps over images, coloured lines for time series, bars for
tables and global importances; clinical views (:mod:`lumos.plot.clinical`): a multi-lead
ECG printout with beat-averaged relevance and an EEG channel x time map."""
from lumos.plot.clinical import beat_average, detect_r_peaks, ecg, eeg_heatmap, plot_ecg
from lumos.plot.explanation import plot_explanation

__all__ = ["plot_explanation", "ecg", "plot_ecg", "eeg_heatmap", "detect_r_peaks", "beat_average"]
