"""CNN-specific family: CAM, Grad-CAM, Grad-CAM++, Guided Backprop, Deconvnet, Guided
Grad-CAM. Layer maps work for any number of position axes: (N, C, T) series,
(N, C, H, W) images and recurrent outputs over time."""
from lumos.methods.cam.cam import CAM, LayerMapExplainer
from lumos.methods.cam.gradcam import GradCAM, GradCAMPlusPlus
from lumos.methods.cam.guided import Deconvnet, GuidedBackprop, GuidedGradCAM

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "GuidedBackprop", "Deconvnet", "GuidedGradCAM", "LayerMapExplainer"]
