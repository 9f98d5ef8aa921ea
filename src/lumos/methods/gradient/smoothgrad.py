"""SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825) around any gradient explainer.

    SG(x)   = 1/n Σ_j  E(x + ε_j)            (variant "mean")
    SG²(x)  = 1/n Σ_j  E(x + ε_j)²           (variant "squared")
    VarG(x) = 1/n Σ_j  E(x + ε_j)² − SG(x)²  (variant "vargrad", Adebayo et al. 2018)

with ε_j ~ N(0, σ²) and σ = noise_level · (max(x) − min(x)) per input (the paper uses
10–20 %). E is the wrapped explainer (the signed gradient by default). The noisy copies
of a group of inputs go through the model as one batch. The noise of input i comes from
a generator seeded by (seed, row_offset + i) and is drawn in float32 whatever the model's
dtype (then cast), so results depend neither on the batch size, the chunking of a dataset
(``explain_dataset``), nor the model's precision.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import get, register
from lumos.core.validate import check_choice, check_positive_int
from lumos.methods.base import State
from lumos.methods.gradient.base import GradientExplainer

VARIANTS = ("mean", "squared", "vargrad")


@register("smoothgrad", "smooth_grad", "noise_tunnel")
class SmoothGrad(GradientExplainer):
    """Average a gradient explanation over noisy copies of the input.

    Parameters
    ----------
    base : str, GradientExplainer class or instance, default "saliency" (signed)
        The explanation to smooth. A name or class is built on the same model with
        ``base_options``; the default is the signed gradient.
    n_samples : int, default 50
    noise_level : float, default 0.15
        σ as a fraction of each input's value range (max − min).
    variant : {"mean", "squared", "vargrad"}
    seed : int or None, default 0
        None draws a fresh seed, recorded in the explanation's ``params``.

    ``explain(x, target, noise=None, **base call options)``: ``noise`` of shape
    ``(n_samples, *x.shape)`` replaces the random draws (e.g. to match another library).
    """

    stochastic = True

    def __init__(self, model, *, base="saliency", n_samples: int = 50, noise_level: float = 0.15,
                 variant: str = "mean", seed: int | None = 0, base_options: dict | None = None, **kwargs):
        super().__init__(model, **kwargs)
        if isinstance(base, str):
            base = get(base)
        if isinstance(base, type):
            opts = dict(base_options or {})
            if base.name == "saliency":
                opts.setdefault("absolute", False)
            base = base(self.adapter, **opts)
        if not isinstance(base, GradientExplainer) or isinstance(base, SmoothGrad):
            raise TypeError(f"SmoothGrad wraps a gradient explainer (saliency, gradient_x_input, "
                            f"integrated_gradients...), got {base!r}")
        self.base = base
        self.n_samples = check_positive_int(n_samples, "n_samples")
        if not np.isfinite(noise_level) or noise_level < 0:
            raise ValueError(f"noise_level must be a non-negative fraction of the input range, got {noise_level!r}")
        self.noise_level = float(noise_level)
        self.variant = check_choice(variant, "variant", VARIANTS)
        self.seed = seed
        self.call_options = {"noise": None, **base.call_options}

    def with_model(self, model):
        other = super().with_model(model)
        other.base = self.base.with_model(model)
        return other

    def params(self):
        return {**super().params(), "base": self.base.name, "base_params": self.base.params(),
                "n_samples": self.n_samples, "noise_level": self.noise_level, "variant": self.variant,
                "seed": self.seed}

    def prepare(self, x, call, noise=None, **base_options):
        if noise is not None:
            noise = np.asarray(noise, dtype=x.dtype)
            if noise.shape != (self.n_samples, *x.shape):
                raise ValueError(f"noise must have shape (n_samples, *inputs.shape) = {(self.n_samples, *x.shape)}, "
                                 f"got {noise.shape}")
        return State(call, noise=noise, base_state=self.base.prepare(x, call, **base_options))

    def expansion(self, state):
        return self.n_samples * self.base.expansion(state.base_state)

    def _draw(self, x: torch.Tensor, index: np.ndarray, copies: slice, state) -> torch.Tensor:
        """Noise of shape (copies, b, ...) for the inputs at batch positions ``index``."""
        if state.noise is not None:
            return state.adapter.to_tensor(state.noise[copies][:, index])
        flat = x.reshape(x.shape[0], -1)
        sigma = self.noise_level * (flat.amax(1) - flat.amin(1))
        call = state.call
        rows = [torch.randn((self.n_samples, *x.shape[1:]), generator=call.torch_generator(i),
                            dtype=torch.float32)[copies] for i in index.tolist()]
        eps = torch.stack(rows, dim=1).to(device=x.device, dtype=x.dtype)
        return eps * sigma.view(1, -1, *([1] * (x.ndim - 1)))

    def gradient_rows(self, x, target, index, state):
        n = self.n_samples
        first = torch.zeros_like(x)
        second = torch.zeros_like(x) if self.variant != "mean" else None
        positions = index.cpu().numpy()
        rows_per_call = state.call.rows(x[0].numel())
        for rows, copies in expansion_chunks(x.shape[0], n, max(1, rows_per_call // self.base.expansion(state.base_state))):
            noisy = x[rows][None] + self._draw(x[rows], positions[rows], copies, state)  # (s, b, ...)
            s, b = noisy.shape[:2]
            attr = self.base.gradient_rows(noisy.reshape(s * b, *x.shape[1:]), target[rows].repeat(s),
                                           index[rows].repeat(s), state.base_state)
            attr = attr.detach().view(s, b, *x.shape[1:])
            first[rows] += attr.sum(0)
            if second is not None:
                second[rows] += (attr * attr).sum(0)
        if self.variant == "mean":
            return first / n
        if self.variant == "squared":
            return second / n
        return second / n - (first / n) ** 2
