"""CNN-specific family: CAM, Grad-CAM, Grad-CAM++, Guided Grad-CAM. Layer maps work for
any number of position axes: (N, C, T) series, (N, C, H, W) images and recurrent
outputs over time. (Guided backprop and Deconvnet are rules of the gradient family.)"""
from lumos.methods.cam.cam import CAM, LayerMapExplainer
from lumos.methods.cam.gradcam import GradCAM, GradCAMPlusPlus
from lumos.methods.cam.guided import GuidedGradCAM
from lumos.methods.cam.variants import (AblationCAM, EigenCAM, EigenGradCAM, FullGrad, HiResCAM, LayerCAM, ScoreCAM,
                                       XGradCAM)
from lumos.methods.gradient.guided import Deconvnet, GuidedBackprop

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "GuidedBackprop", "Deconvnet", "GuidedGradCAM", "LayerMapExplainer",
           "HiResCAM", "LayerCAM", "XGradCAM", "EigenCAM", "EigenGradCAM", "ScoreCAM", "AblationCAM", "FullGrad"]
