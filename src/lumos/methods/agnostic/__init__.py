"""Model-agnostic explainers: any torch module or ``numpy -> scores`` callable, for
tables, time series and images, with feature groups (:mod:`.masking`)."""
from lumos.methods.agnostic.leverage_shap import LeverageShap
from lumos.methods.agnostic.lime import Lime
from lumos.methods.agnostic.masking import channel_groups, group_names, superpixel_groups, window_groups
from lumos.methods.agnostic.occlusion import Occlusion
from lumos.methods.agnostic.owen import OwenValues, segment_hierarchy
from lumos.methods.agnostic.permutation import PermutationImportance, sklearn_permutations
from lumos.methods.agnostic.shapley import ExactShapley, KernelShap, SamplingShapley, kmeans_background
from lumos.methods.agnostic.shapley_regression_mc import RegressionMSR

__all__ = ["PermutationImportance", "Occlusion", "Lime", "ExactShapley", "KernelShap", "SamplingShapley",
           "kmeans_background", "sklearn_permutations", "window_groups", "channel_groups", "superpixel_groups",
           "group_names", "LeverageShap", "RegressionMSR", "OwenValues", "segment_hierarchy"]
