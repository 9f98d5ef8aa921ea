"""LRP rules as :class:`~lumos.core.hooks.BackwardRule` objects.

Relevance flows backwards as the "gradient" of the model (the idea of zennit): a rule
receives the relevance ``R`` of a layer's output and returns the relevance of its
input. For a layer z = W a + b every rule here has the form (Montavon et al. 2019,
"Layer-wise relevance propagation: an overview")

    R_j = Σ_k a_j ρ(w_jk) / stab(Σ_j a_j ρ(w_jk) [+ ρ(b_k)]) · R_k
        = a ⊙ ρ(W)ᵀ (R ⊘ stab(z_ρ))

i.e. the input times the vector-Jacobian product of the ρ-modified layer with the
stabilised ratio. ``stab(z) = z + ε·sign(z)`` with sign(0) = +1 (ε = 0: a zero
denominator gives zero relevance). The formulas, parameter names and defaults follow
zennit (Anders et al., arXiv:2106.13200) so that both agree to float precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.hooks import BackwardRule, PassRule

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_INPUT_GRAD = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}


def stabilise(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``z + ε·sign(z)`` with sign(0) = +1; for ε = 0, zeros become +inf (ratio 0)."""
    if epsilon == 0:
        return torch.where(z == 0, torch.full_like(z, float("inf")), z)
    return torch.where(z >= 0, z + epsilon, z - epsilon)


def layer_forward(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The affine map of a Linear/ConvNd module with replaced parameters."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    return module._conv_forward(x, weight, bias)


def layer_vjp(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``(∂ layer_forward(x, weight) / ∂x)ᵀ grad`` without building a graph when possible."""
    if isinstance(module, nn.Linear):
        return grad @ weight
    nd = x.ndim - 2
    if module.padding_mode == "zeros" and not isinstance(module.padding, str):
        return _CONV_INPUT_GRAD[nd](x.shape, weight, grad, module.stride, module.padding, module.dilation,
                                    module.groups)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(layer_forward(module, xg, weight, None), xg, grad)
    return g


def _check_stabiliser(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class LRPRule(BackwardRule):
    """Base of the rules for weighted layers (Linear, Conv1d/2d/3d)."""

    supports: tuple[type, ...] = WEIGHTED

    def backward(self, module, inputs, output, grad_output):
        return (self.relevance(module, inputs[0], output, grad_output),) + (None,) * (len(inputs) - 1)

    def relevance(self, module, x, output, R):
        raise NotImplementedError


class Epsilon(LRPRule):
    """LRP-ε (Bach et al. 2015): ``R_j = Σ_k a_j w_jk / (z_k + ε sign z_k) R_k`` with
    z_k = Σ_j a_j w_jk + b_k (``bias=False`` leaves b_k out of the denominator).
    ``Epsilon(0)`` is LRP-0, which equals Gradient x Input on ReLU networks."""

    def __init__(self, epsilon: float = 1e-6, bias: bool = True):
        self.epsilon = _check_stabiliser(epsilon, "epsilon")
        self.bias = bool(bias)

    def relevance(self, module, x, output, R):
        z = output if self.bias or module.bias is None else layer_forward(module, x, module.weight, None)
        return x * layer_vjp(module, x, module.weight, R / stabilise(z, self.epsilon))


def LRP0(bias: bool = True) -> Epsilon:  # noqa: N802 (a rule "class" name)
    """LRP-0 (ε = 0): ``R_j = Σ_k a_j w_jk / z_k R_k``."""
    return Epsilon(0.0, bias=bias)


class AlphaBeta(LRPRule):
    """LRP-αβ (Bach et al. 2015), α − β = 1:
    ``R_j = Σ_k (α (a_j w_jk)⁺ / z_k⁺ − β (a_j w_jk)⁻ / z_k⁻) R_k`` where the positive part
    counts a⁺w⁺ + a⁻w⁻ (+ b⁺) and the negative part a⁺w⁻ + a⁻w⁺ (+ b⁻). α=1, β=0 is z⁺."""

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6, bias: bool = True):
        if alpha < 0 or beta < 0 or abs(alpha - beta - 1.0) > 1e-12:
            raise ValueError(f"AlphaBeta needs alpha, beta >= 0 with alpha - beta = 1, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.stabilizer = _check_stabiliser(stabilizer, "stabilizer")
        self.bias = bool(bias)

    def _part(self, module, xp, xn, wa, wb, ba, R):
        """Relevance through the part whose contributions are x⁺·wa (+ba) and x⁻·wb."""
        z = layer_forward(module, xp, wa, ba)
        if xn is not None:
            z = z + layer_forward(module, xn, wb, None)
        s = R / stabilise(z, self.stabilizer)
        out = xp * layer_vjp(module, xp, wa, s)
        if xn is not None:
            out = out + xn * layer_vjp(module, xn, wb, s)
        return out

    def relevance(self, module, x, output, R):
        w, b = module.weight, module.bias if self.bias else None
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        bp = bn = None
        if b is not None:
            bp, bn = b.clamp(min=0), b.clamp(max=0)
        xp, xn = x.clamp(min=0), (x.clamp(max=0) if bool((x < 0).any()) else None)
        out = self._part(module, xp, xn, wp, wn, bp, R)
        if self.alpha != 1.0:
            out = self.alpha * out
        if self.beta != 0.0:
            out = out - self.beta * self._part(module, xp, xn, wn, wp, bn, R)
        return out


class ZPlus(AlphaBeta):
    """z⁺ rule (Montavon et al. 2017): ``R_j = Σ_k (a_j w_jk)⁺ / Σ_j (a_j w_jk)⁺ R_k``;
    non-negative for non-negative R. AlphaBeta with α=1, β=0. ``bias=False`` (the
    Deep Taylor form) keeps b⁺ out of the denominator, so that relevance is conserved."""

    def __init__(self, stabilizer: float = 1e-6, bias: bool = True):
        super().__init__(1.0, 0.0, stabilizer, bias)

    def __repr__(self):
        return f"ZPlus(stabilizer={self.stabilizer!r}, bias={self.bias!r})"


class Gamma(LRPRule):
    """LRP-γ (Montavon et al. 2019), generalised to inputs of both signs as in zennit:
    ρ(w) = w + γw⁺ for outputs z_k > 0 (contributions a⁺ρ⁺(w) + a⁻ρ⁻(w)), and
    w + γw⁻ for z_k < 0; ``R_j = Σ_k a_j ρ(w_jk) / Σ_j a_j ρ(w_jk) R_k``."""

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6, bias: bool = True):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"gamma must be a non-negative number, got {gamma!r}")
        self.gamma = float(gamma)
        self.stabilizer = _check_stabiliser(stabilizer, "stabilizer")
        self.bias = bool(bias)

    def relevance(self, module, x, output, R):
        g, w, b = self.gamma, module.weight, module.bias if self.bias else None
        w_up, w_down = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_up = b_down = None
        if b is not None:
            b_up, b_down = b + g * b.clamp(min=0), b + g * b.clamp(max=0)
        xp = x.clamp(min=0)
        xn = x.clamp(max=0) if bool((x < 0).any()) else None
        out = torch.zeros_like(x)
        for mask, wa, wb, ba in ((output > 0, w_up, w_down, b_up), (output < 0, w_down, w_up, b_down)):
            z = layer_forward(module, xp, wa, ba)
            if xn is not None:
                z = z + layer_forward(module, xn, wb, None)
            s = R * mask / stabilise(z, self.stabilizer)
            out = out + xp * layer_vjp(module, xp, wa, s)
            if xn is not None:
                out = out + xn * layer_vjp(module, xn, wb, s)
        return out


class ZBox(LRPRule):
    """z^B rule for inputs bounded by ``low <= x <= high`` (Montavon et al. 2017):
    ``R_i = Σ_j (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) / Σ_i (·) R_j``; biases are excluded.
    ``low``/``high``: scalars or arrays broadcastable to one input (e.g. (C, 1, 1))."""

    def __init__(self, low, high, stabilizer: float = 1e-6):
        self.low = torch.as_tensor(low, dtype=torch.float64)
        self.high = torch.as_tensor(high, dtype=torch.float64)
        if bool((self.low > self.high).any()):
            raise ValueError("ZBox needs low <= high everywhere")
        self.stabilizer = _check_stabiliser(stabilizer, "stabilizer")

    def relevance(self, module, x, output, R):
        low = self.low.to(x).expand_as(x) if self.low.ndim == 0 else torch.broadcast_to(self.low.to(x), x.shape)
        high = self.high.to(x).expand_as(x) if self.high.ndim == 0 else torch.broadcast_to(self.high.to(x), x.shape)
        w = module.weight
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        z = layer_forward(module, x, w, None) - layer_forward(module, low, wp, None) - layer_forward(module, high, wn, None)
        s = R / stabilise(z, self.stabilizer)
        return x * layer_vjp(module, x, w, s) - low * layer_vjp(module, x, wp, s) - high * layer_vjp(module, x, wn, s)

    def __repr__(self):
        return f"ZBox(low={self.low.tolist() if self.low.numel() <= 4 else '...'}, high=..., stabilizer={self.stabilizer})"


class WSquare(LRPRule):
    """w² rule for unbounded inputs (Montavon et al. 2017): ``R_i = Σ_j w_ij² / Σ_i w_ij² R_j``
    (biases excluded); independent of the input values."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = _check_stabiliser(stabilizer, "stabilizer")

    def _weight(self, w):
        return w * w

    def relevance(self, module, x, output, R):
        ones = torch.ones_like(x)
        w = self._weight(module.weight)
        s = R / stabilise(layer_forward(module, ones, w, None), self.stabilizer)
        return layer_vjp(module, ones, w, s)


class Flat(WSquare):
    """Flat rule (Lapuschkin et al. 2019): w² with all weights 1, i.e. each output's
    relevance is spread uniformly over the inputs it is connected to."""

    def _weight(self, w):
        return torch.ones_like(w)


class Norm(BackwardRule):
    """Relevance in proportion to each input's share of the output, for parameter-free
    linear layers: average pooling and residual sums ``Add``.
    ``R_in = x ⊙ (∂f/∂x)ᵀ (R ⊘ stab(f(x)))``; for a sum a + b: R_a = a/(a+b) R."""

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = _check_stabiliser(stabilizer, "stabilizer")

    def backward(self, module, inputs, output, grad_output):
        s = grad_output / stabilise(output, self.stabilizer)
        with torch.enable_grad():
            xs = [t.detach().requires_grad_(True) for t in inputs]
            grads = torch.autograd.grad(module.forward(*xs), xs, s)  # no hooks
        return tuple(x * g for x, g in zip(inputs, grads))


class Pass(PassRule):
    """Relevance passes unchanged (activations, dropout in eval, identity, a folded batch
    norm); a layer that only reshapes (flatten) gets it reshaped to its input's shape."""

    def backward(self, module, inputs, output, grad_output):
        if inputs[0].shape != grad_output.shape and inputs[0].numel() == grad_output.numel():
            return (grad_output.reshape(inputs[0].shape),) + (None,) * (len(inputs) - 1)
        return super().backward(module, inputs, output, grad_output)


class Gradient(BackwardRule):
    """The module's own gradient carries the relevance (max pooling: the winner of each
    window takes all). Implemented by attaching nothing: autograd's backward is used."""

    def backward(self, module, inputs, output, grad_output):  # pragma: no cover - never attached
        raise RuntimeError("the Gradient rule is applied by autograd itself, not as a hook")
