"""Relevance family: LRP rules, composites, canonizers, LRP and Deep Taylor explainers."""
from lumos.methods.relevance.canonizers import batchnorm_pairs, fold_batchnorm
from lumos.methods.relevance.composites import (COMPOSITES, Composite, EpsilonAlpha2Beta1, EpsilonComposite,
                                                EpsilonGammaBox, EpsilonPlus, LRPZero, as_composite,
                                                deep_taylor_composite)
from lumos.methods.relevance.deep_taylor import DeepTaylor
from lumos.methods.relevance.layers import Add, Residual
from lumos.methods.relevance.lrp import LRP, propagate, relevance_rules
from lumos.methods.relevance.rules import (LRP0, AlphaBeta, Epsilon, Flat, Gamma, Gradient, Norm, Pass, WSquare, ZBox,
                                           ZPlus)

__all__ = [
    "LRP", "DeepTaylor", "Composite", "LRPZero", "EpsilonComposite", "EpsilonPlus", "EpsilonAlpha2Beta1",
    "EpsilonGammaBox", "deep_taylor_composite", "as_composite", "COMPOSITES", "Epsilon", "LRP0", "Gamma", "AlphaBeta",
    "ZPlus", "ZBox", "WSquare", "Flat", "Norm", "Pass", "Gradient", "Add", "Residual", "fold_batchnorm",
    "batchnorm_pairs", "propagate", "relevance_rules",
]
