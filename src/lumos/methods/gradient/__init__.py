"""Gradient family: Saliency, Gradient x Input, SmoothGrad, Integrated Gradients, and the
modified-ReLU gradients Guided Backprop and Deconvnet."""
from lumos.methods.gradient.gradient_x_input import GradientXInput
from lumos.methods.gradient.guided import Deconvnet, GuidedBackprop
from lumos.methods.gradient.integrated_gradients import IntegratedGradients, quadrature
from lumos.methods.gradient.saliency import Saliency
from lumos.methods.gradient.smoothgrad import SmoothGrad

__all__ = ["Saliency", "GradientXInput", "SmoothGrad", "IntegratedGradients", "quadrature", "GuidedBackprop",
           "Deconvnet"]
