"""Evaluation of explanations: faithfulness, sanity checks, axioms, robustness and
complexity, localisation, and lumos's explainability-performance coefficient.

Every metric is a plain function with an ``info`` attribute (:class:`MetricInfo`: data it
applies to, ``higher_is_better``, what it needs). Metrics never modify the model (they
run inside :func:`lumos.core.guard.model_guard`; randomisation works on deep copies) nor
the attributions they are given. :func:`evaluate` runs explainers x metrics into a table.
"""
from lumos.metrics._base import MetricInfo, region_map
from lumos.metrics.axioms import completeness_error, conservation_error, sensitivity_n
from lumos.metrics.epc import EPCResult, explainability_performance
from lumos.metrics.evaluate import METRICS, evaluate
from lumos.metrics.faithfulness import (PerturbationCurve, abpc, deletion, insertion, pixel_flipping,
                                        region_perturbation)
from lumos.metrics.localisation import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from lumos.metrics.plotting import plot_curves
from lumos.metrics.robustness import entropy, infidelity, max_sensitivity, sparseness
from lumos.metrics.sanity import (SanityResult, label_randomisation, model_randomisation, randomisation_spearman,
                                  spearman, ssim, topk_intersection)

__all__ = [
    "MetricInfo", "region_map", "completeness_error", "conservation_error", "sensitivity_n", "EPCResult",
    "explainability_performance", "METRICS", "evaluate", "PerturbationCurve", "abpc", "deletion", "insertion",
    "pixel_flipping", "region_perturbation", "pointing_game", "relevance_mass_accuracy",
    "relevance_rank_accuracy", "plot_curves", "entropy", "infidelity", "max_sensitivity", "sparseness",
    "SanityResult", "label_randomisation", "model_randomisation", "randomisation_spearman", "spearman", "ssim",
    "topk_intersection",
]
