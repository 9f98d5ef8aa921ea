"""The self-contained HTML report: per input a row of heatmaps by method, the model's
prediction and confidence, an evaluation table, method parameters and the lumos version.

>>> from lumos.report import build_report
>>> build_report(model, x_test[:6], y=y_test[:6], class_names=names).save("report.html")
"""
from lumos.report.builder import Report, build_report, pick_samples, report_for_dataset
from lumos.report.evaluation import aopc, deletion_curves, gini, mass_in_mask
from lumos.report.methods import MethodRun, applicability, run_methods

__all__ = ["Report", "build_report", "report_for_dataset", "pick_samples", "run_methods", "applicability",
           "MethodRun", "deletion_curves", "aopc", "gini", "mass_in_mask"]
