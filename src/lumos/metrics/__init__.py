"""Evaluation of explanations: faithfulness, sanity checks, axioms, robustness and
complexity, localisation, and lumos's explainability-performance coefficient.

Every metric is a plain function with an ``info`` attribute (:class:`MetricInfo`: data it
applies to, ``higher_is_better``, what it needs). Metrics never modify the model nor the
attributions they are given: they evaluate a private view of the model
(:func:`lumos.core.view.model_view`: eval mode, frozen parameters sharing the model's
storage), so the model's training mode and ``requires_grad`` flags are never written and
a training loop in another thread is not affected; randomisation works on deep copies,
explained with the explainer's ``with_model(copy)``. :func:`evaluate` runs explainers x
metrics into a table.

One memory knob
---------------
Every metric that evaluates the model takes ``batch_size: int | None = None``: the most
rows one model call sees (perturbed copies, noisy copies, masked copies), as for the
explainers. ``None`` sizes calls from one input's element count
(``RowBudget(None).rows(sample_numel, "forward")``, see :mod:`lumos.core.batching`);
copies are built for as many inputs at a time as fill one call. Results do not depend on
it: random draws are taken input after input from the metric's ``seed``, and stochastic
explainers run by a metric keep each row's position (``row_offset``). Metrics that run an
explainer (:func:`max_sensitivity`) hand it about ``batch_size`` rows at a time; the
explainer's own ``batch_size`` bounds its model calls.
"""
from lumos.metrics._base import MetricInfo, region_map
from lumos.metrics.axioms import completeness_error, conservation_error, sensitivity_n
from lumos.metrics.complexity import effective_complexity
from lumos.metrics.conservation import (RelevanceBudget, absorbed_relevance, completeness_residual, non_sensitivity,
                                        relevance_budget)
from lumos.metrics.epc import EPCResult, explainability_performance
from lumos.metrics.evaluate import METRICS, evaluate
from lumos.metrics.faithfulness import (PerturbationCurve, abpc, deletion, insertion, pixel_flipping,
                                        region_perturbation)
from lumos.metrics.faithfulness_quantus import (faithfulness_correlation, faithfulness_estimate, irof, monotonicity,
                                                monotonicity_correlation, road, selectivity, sufficiency)
from lumos.metrics.localisation import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from lumos.metrics.localisation_masks import attribution_localisation, focus, mosaics, top_k_intersection
from lumos.metrics.plotting import plot_curves
from lumos.metrics.robustness import entropy, infidelity, max_sensitivity, sparseness
from lumos.metrics.stability import (consistency, continuity, local_lipschitz_estimate, relative_input_stability,
                                     relative_output_stability, relative_representation_stability)
from lumos.metrics.sanity import (SanityResult, efficient_mprt, label_randomisation, model_randomisation,
                                  random_logit, randomisation_spearman, smooth_mprt, spearman, ssim, topk_intersection)
from lumos.metrics.white_box import (WHITE_BOX_METRICS, aup, auprc, auroc, aur, information, normalise_attributions,
                                     white_box_entropy, white_box_metrics)

__all__ = [
    "MetricInfo", "region_map", "completeness_error", "conservation_error", "sensitivity_n", "EPCResult",
    "explainability_performance", "METRICS", "evaluate", "PerturbationCurve", "abpc", "deletion", "insertion",
    "pixel_flipping", "region_perturbation", "pointing_game", "relevance_mass_accuracy",
    "relevance_rank_accuracy", "plot_curves", "entropy", "infidelity", "max_sensitivity", "sparseness",
    "SanityResult", "label_randomisation", "model_randomisation", "randomisation_spearman", "spearman", "ssim",
    "topk_intersection", "smooth_mprt", "efficient_mprt", "random_logit", "aup", "aur", "auroc", "auprc", "information",
    "white_box_entropy", "white_box_metrics",
    "normalise_attributions", "WHITE_BOX_METRICS",
    "road", "irof", "monotonicity", "monotonicity_correlation", "faithfulness_correlation", "faithfulness_estimate",
    "selectivity", "sufficiency",
    "effective_complexity", "continuity", "local_lipschitz_estimate", "relative_input_stability",
    "relative_output_stability", "relative_representation_stability", "consistency", "non_sensitivity",
    "RelevanceBudget", "relevance_budget", "completeness_residual", "absorbed_relevance", "focus", "mosaics",
    "top_k_intersection", "attribution_localisation",
]
