"""Gradient family: Saliency, Gradient x Input, SmoothGrad, Integrated Gradients, the
modified-ReLU gradients Guided Backprop and Deconvnet, DeepLIFT (Rescale), DeepLiftShap and
GradientShap (expected gradients)."""
from lumos.methods.gradient.deeplift import DeepLift
from lumos.methods.gradient.deeplift_shap import DeepLiftShap
from lumos.methods.gradient.gradient_x_input import GradientXInput
from lumos.methods.gradient.guided import Deconvnet, GuidedBackprop
from lumos.methods.gradient.integrated_gradients import IntegratedGradients, quadrature
from lumos.methods.gradient.saliency import Saliency
from lumos.methods.gradient.gradient_shap import GradientShap
from lumos.methods.gradient.smoothgrad import SmoothGrad

__all__ = ["Saliency", "GradientXInput", "SmoothGrad", "IntegratedGradients", "quadrature", "GuidedBackprop",
           "Deconvnet", "DeepLift", "DeepLiftShap", "GradientShap"]
