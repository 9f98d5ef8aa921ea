"""SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825) around any gradient explainer.

    SG(x)   = 1/n Σ_j  E(x + ε_j)            (variant "mean")
    SG²(x)  = 1/n Σ_j  E(x + ε_j)²           (variant "squared")
    VarG(x) = 1/n Σ_j  E(x + ε_j)² − SG(x)²  (variant "vargrad", Adebayo et al. 2018)

with ε_j ~ N(0, σ²) and σ = noise_level · (max(x) − min(x)) per input (the paper uses
10–20 %). E is the wrapped explainer (the signed gradient by default). The noisy copies
of a group of inputs go through the model as one batch. Noise for input i comes from a
torch generator seeded from (seed, i), so results do not depend on the batch size.
"""
from __future__ import annotations

import numpy as np
import torch

from lumos.core.batching import expansion_chunks
from lumos.core.registry import get, register
from lumos.core.validate import check_choice, check_positive_int
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
    seed : int, default 0
    """

    def __init__(self, model, *, base="saliency", n_samples: int = 50, noise_level: float = 0.15,
                 variant: str = "mean", seed: int = 0, base_options: dict | None = None, **kwargs):
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

    def params(self):
        return {**super().params(), "base": self.base.name, "base_params": self.base.params(),
                "n_samples": self.n_samples, "noise_level": self.noise_level, "variant": self.variant,
                "seed": self.seed}

    def _setup(self, x, target, options):
        noise = options.pop("noise", None)
        if noise is not None:
            noise = np.asarray(noise, dtype=x.dtype)
            if noise.shape != (self.n_samples, *x.shape):
                raise ValueError(f"noise must have shape (n_samples, *inputs.shape) = {(self.n_samples, *x.shape)}, got {noise.shape}")
        self._noise = noise
        self.base._setup(x, target, options)

    def _draw(self, x: torch.Tensor, index: torch.Tensor, copies: slice) -> torch.Tensor:
        """Noise of shape (copies, b, ...) for the inputs ``index``."""
        if self._noise is not None:
            return self.adapter.to_tensor(self._noise[copies][:, index.cpu().numpy()])
        flat = x.reshape(x.shape[0], -1)
        sigma = self.noise_level * (flat.amax(1) - flat.amin(1))
        rows = []
        for i in index.tolist():
            seed = np.random.SeedSequence([0 if self.seed is None else self.seed, i]).generate_state(1)[0]
            gen = torch.Generator().manual_seed(int(seed))
            rows.append(torch.randn((self.n_samples, *x.shape[1:]), generator=gen, dtype=x.dtype)[copies])
        eps = torch.stack(rows, dim=1).to(x.device)
        return eps * sigma.view(1, -1, *([1] * (x.ndim - 1)))

    def _attribute(self, x, target, index):
        n = self.n_samples
        first = torch.zeros_like(x)
        second = torch.zeros_like(x) if self.variant != "mean" else None
        for rows, copies in expansion_chunks(x.shape[0], n, self.adapter.batch_size):
            noisy = x[rows][None] + self._draw(x[rows], index[rows], copies)  # (s, b, ...)
            s, b = noisy.shape[:2]
            attr = self.base._attribute(noisy.reshape(s * b, *x.shape[1:]), target[rows].repeat(s), index[rows].repeat(s))
            attr = attr.detach().view(s, b, *x.shape[1:])
            first[rows] += attr.sum(0)
            if second is not None:
                second[rows] += (attr * attr).sum(0)
        if self.variant == "mean":
            return first / n
        if self.variant == "squared":
            return second / n
        return second / n - (first / n) ** 2
