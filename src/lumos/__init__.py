"""lumos: explain what deep neural networks decide and why.

>>> import lumos
>>> exp = lumos.explain(model, x, method="integrated_gradients", n_steps=64)
>>> exp.values.shape == x.shape, exp.delta   # completeness error per input
"""
from lumos.api import explain, list_methods
from lumos.core import Explanation, ModelAdapter, model_guard
from lumos.methods import Explainer
from lumos.methods.agnostic import ExactShapley, KernelShap, Lime, Occlusion, PermutationImportance, SamplingShapley
from lumos.methods.attention import AttentionWeights
from lumos.methods.cam import (CAM, AblationCAM, Deconvnet, EigenCAM, EigenGradCAM, FullGrad, GradCAM, GradCAMPlusPlus,
                               GuidedBackprop, GuidedGradCAM, HiResCAM, LayerCAM, ScoreCAM, XGradCAM)
from lumos.methods.gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from lumos.methods.gradient.deeplift import DeepLift
from lumos.methods.gradient.deeplift_shap import DeepLiftShap
from lumos.methods.gradient.gradient_shap import GradientShap
from lumos.methods.temporal.masks import Dynamask, ExtremalMask
from lumos.methods.temporal.rise import Rise
from lumos.methods.temporal.temporal_ig import TemporalIntegratedGradients
from lumos.methods.temporal.temporal_occlusion import AugmentedOcclusion, TemporalOcclusion
from lumos.methods.temporal.tsr import TemporalSaliencyRescaling
from lumos.methods.transformer import AttentionFlow, AttentionRollout, AttnLRP, CheferRelevance
from lumos.methods.relevance import LRP, DeepTaylor, EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus
from lumos.scale import explain_dataset, open_store
from lumos.metrics import evaluate
from lumos import analysis  # noqa: E402  (global model analysis: lumos.analysis.*)

__version__ = "0.1.0"

__all__ = [
    "explain", "list_methods", "Explanation", "ModelAdapter", "model_guard", "Explainer",
    "Saliency", "GradientXInput", "SmoothGrad", "IntegratedGradients",
    "LRP", "DeepTaylor", "EpsilonPlus", "EpsilonGammaBox", "EpsilonAlpha2Beta1",
    "CAM", "GradCAM", "GradCAMPlusPlus", "GuidedBackprop", "Deconvnet", "GuidedGradCAM",
    "HiResCAM", "LayerCAM", "XGradCAM", "EigenCAM", "EigenGradCAM", "ScoreCAM", "AblationCAM", "FullGrad",
    "DeepLift", "DeepLiftShap", "GradientShap", "ExtremalMask", "Dynamask", "Rise", "TemporalIntegratedGradients",
    "AugmentedOcclusion", "TemporalOcclusion", "TemporalSaliencyRescaling",
    "AttentionRollout", "AttentionFlow", "CheferRelevance", "AttnLRP",
    "AttentionWeights", "PermutationImportance", "Occlusion", "Lime", "ExactShapley", "KernelShap",
    "SamplingShapley", "explain_dataset", "open_store", "evaluate", "analysis", "__version__",
]
