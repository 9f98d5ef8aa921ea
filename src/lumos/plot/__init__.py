"""Figures for explanations: heatmaps over images, coloured lines for time series, bars for
tables and global importances."""
from lumos.plot.explanation import plot_explanation

__all__ = ["plot_explanation"]
