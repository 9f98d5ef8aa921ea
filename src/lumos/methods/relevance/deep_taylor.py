"""Deep Taylor decomposition (Montavon, Lapuschkin, Binder, Samek, Müller 2017, Pattern
Recognition 65; arXiv:1512.02479).

Each ReLU neuron's relevance is redistributed by a first-order Taylor expansion at a root
point chosen in its input domain, which gives the z⁺ rule in hidden layers

    R_i = Σ_j x_i w_ij⁺ / Σ_i x_i w_ij⁺ · R_j

and, at the input, the z^B rule for inputs bounded by [low, high] or the w² rule for
unbounded inputs. Biases are excluded, so relevance is non-negative (for a positive
logit) and conserved layer by layer (exactly so when the network's biases are ≤ 0).
"""
from __future__ import annotations

from lumos.core.registry import register
from lumos.methods.relevance.composites import deep_taylor_composite
from lumos.methods.relevance.lrp import LRP


@register("deep_taylor", "dtd", "deep_taylor_decomposition")
class DeepTaylor(LRP):
    """Deep Taylor decomposition of a ReLU network.

    Parameters
    ----------
    model : torch.nn.Module
    input_bounds : (low, high) or None
        Bounds of the input domain (scalars or arrays broadcastable to one input), e.g.
        ``(0, 1)`` for images in [0, 1]: z^B at the first layer. None: w² at the first layer.
    stabilizer : float
        Added to denominators (with their sign).
    """

    def __init__(self, model, input_bounds=None, *, stabilizer: float = 1e-6, canonize: bool = True, **kwargs):
        super().__init__(model, deep_taylor_composite(input_bounds, stabilizer), canonize=canonize, **kwargs)
        self.input_bounds = input_bounds
        self.stabilizer = stabilizer

    def params(self):
        return {**super().params(), "input_bounds": self.input_bounds, "stabilizer": self.stabilizer}
