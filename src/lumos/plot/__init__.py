"""Figures for explanations: heatmaps over images, coloured lines for time series, bars for
tables and global importances, shap-style waterfall / beeswarm / bar plots
(:mod:`lumos.plot.tabular`); clinical views (:mod:`lumos.plot.clinical`): a multi-lead
ECG printout with beat-averaged relevance and an EEG channel x time map."""
from lumos.plot.clinical import beat_average, detect_r_peaks, ecg, eeg_heatmap, plot_ecg
from lumos.plot.explanation import plot_explanation
from lumos.plot.tabular import bar, beeswarm, waterfall

__all__ = ["plot_explanation", "waterfall", "beeswarm", "bar", "ecg", "plot_ecg", "eeg_heatmap", "detect_r_peaks",
           "beat_average"]
