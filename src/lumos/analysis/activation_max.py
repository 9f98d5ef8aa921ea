"""Activation maximisation: the input a network responds to most.

    x* = argmax_x  S(x) − λ₂‖x − c‖² − λ₁‖x − c‖₁ − λ_TV TV(x)

by gradient ascent, where S is a class logit, one neuron of a named layer, or the mean
activation of one channel of a named layer. Image priors of Yosinski et al. (2015) are
available and off by default: Gaussian blur every few steps, random jitter (a circular
shift of the input before each forward pass), and clipping to the data range after every
step. With a generator ``G`` the search runs over its latent code, ``x = G(z)``
(Nguyen et al. 2016).

Unregularised, the result is typically classified as the target with near certainty while
looking like structured noise, i.e. an adversarial pattern rather than a prototype.

References: Erhan, Bengio, Courville & Vincent, "Visualizing higher-layer features of a
deep network" (2009); Simonyan, Vedaldi & Zisserman, arXiv 1312.6034; Yosinski et al.,
"Understanding neural networks through deep visualization", arXiv 1506.06579; Nguyen et
al., "Synthesizing the preferred inputs for neurons ...", arXiv 1605.09304.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from lumos.core.view import model_view
from lumos.core.hooks import capture_activations, find_layer
from lumos.core.validate import check_choice, check_finite, check_positive_int


@dataclass(frozen=True)
class Objective:
    """What to maximise: ``kind`` is ``"logit"`` (model output ``index``), ``"log_softmax"``
    (its log-probability ``y_c − log Σ_k exp y_k``, the "fooling" objective of Nguyen et al.
    2015, which also pushes the other classes down), ``"neuron"``
    (element ``index`` of ``layer``'s output per sample; an int is a flat index) or
    ``"channel"`` (mean over positions of channel ``index`` of ``layer``'s output).
    ``index`` may be one value per optimised input."""

    kind: str
    index: int | tuple | Sequence
    layer: str | None = None

    def __post_init__(self):
        check_choice(self.kind, "objective kind", ("logit", "log_softmax", "neuron", "channel"))
        if self.kind not in ("logit", "log_softmax") and not isinstance(self.layer, str):
            raise ValueError(f"a {self.kind} objective needs the name of a layer, got {self.layer!r}")

    def per_sample(self, n: int | None) -> list:
        """The index for each of ``n`` inputs (``n=None``: as many as given)."""
        idx = self.index
        class_kind = self.kind in ("logit", "log_softmax")
        many = isinstance(idx, (list, np.ndarray, torch.Tensor)) or (isinstance(idx, tuple) and class_kind)
        if not many:
            return [idx] * (n or 1)
        items = idx.tolist() if hasattr(idx, "tolist") else idx
        idx = [int(i) if np.ndim(i) == 0 else tuple(int(j) for j in i) for i in items]
        if n is not None and len(idx) != n:
            raise ValueError(f"the objective has {len(idx)} indices but {n} inputs are optimised")
        return idx


def class_logit(target: int | Sequence[int]) -> Objective:
    """The model output (logit) ``target``, or one target per optimised input."""
    return Objective("logit", target)


def class_log_probability(target: int | Sequence[int]) -> Objective:
    """The log-softmax of output ``target``: high only when the other classes are low
    (Nguyen, Yosinski & Clune, "Deep neural networks are easily fooled", arXiv 1412.1897)."""
    return Objective("log_softmax", target)


def neuron(layer: str, index: int | tuple | Sequence) -> Objective:
    """One element of ``layer``'s output: a flat index or a tuple (e.g. ``(channel, y, x)``)."""
    return Objective("neuron", index, layer)


def channel(layer: str, index: int | Sequence[int]) -> Objective:
    """The mean activation of channel ``index`` of ``layer`` over its positions."""
    return Objective("channel", index, layer)


@dataclass
class ActivationMaximization:
    """Result of :func:`activation_maximization`.

    Attributes
    ----------
    inputs : array shaped like the model's input batch
        The optimised inputs.
    trajectory : array (steps + 1, N)
        The objective S of each input at every step (on the jittered input when jitter is
        on) and, last, on the final inputs.
    scores : array (N, K)
        The model's outputs on the final inputs.
    latent : array or None
        The final latent codes when a generator was used.
    """

    inputs: np.ndarray
    trajectory: np.ndarray
    scores: np.ndarray
    objective: Objective
    latent: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def final_objective(self) -> np.ndarray:
        return self.trajectory[-1]

    def probabilities(self) -> np.ndarray:
        """Softmax of the final scores."""
        z = self.scores - self.scores.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def plot(self, titles: Sequence[str] | None = None, cmap: str = "gray", ncols: int = 10):
        """Images in a grid (first channel, or RGB when 3 channels), or series as lines."""
        import matplotlib.pyplot as plt

        n = len(self.inputs)
        ncols = min(ncols, n)
        nrows = math.ceil(n / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows), squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if i >= n:
                continue
            x = self.inputs[i]
            if x.ndim == 3:
                img = np.moveaxis(x, 0, -1) if x.shape[0] == 3 else x[0]
                ax.imshow(img, cmap=None if x.shape[0] == 3 else cmap)
            else:
                ax.axis("on")
                for c in range(x.shape[0]):
                    ax.plot(x[c], lw=0.8)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
        fig.tight_layout()
        return fig


def _resolve_objective(objective) -> Objective:
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, (int, np.integer)) and not isinstance(objective, bool):
        return class_logit(int(objective))
    if isinstance(objective, (list, tuple, np.ndarray)) and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in objective):
        return class_logit([int(i) for i in objective])
    raise TypeError(
        "objective must be a class index, a list of class indices, or an Objective from "
        f"class_logit/neuron/channel; got {objective!r}"
    )


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over every axis after (N, C), reflect padding."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n_c = x.shape[1]
    out = x
    for axis in range(2, x.ndim):
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, shape[-1])
        pad = min(radius, shape[-1] - 1)
        k = kernel[radius - pad: radius + pad + 1] if pad < radius else kernel
        k = k / k.sum()
        flat = torch.nn.functional.pad(flat, (pad, pad), mode="reflect") if pad > 0 else flat
        flat = torch.nn.functional.conv1d(flat, k.view(1, 1, -1))
        out = flat.reshape(shape).movedim(-1, axis)
    assert out.shape[1] == n_c
    return out


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per-sample TV(x) = Σ over axes after (N, C) of Σ (x[..., i+1] − x[..., i])²."""
    tv = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for axis in range(2, x.ndim):
        d = torch.diff(x, dim=axis)
        tv = tv + d.pow(2).flatten(1).sum(1)
    return tv


def _objective_values(obj: Objective, output: torch.Tensor, acts: dict, indices: list) -> torch.Tensor:
    try:
        return _select(obj, output, acts, indices)
    except IndexError as err:
        where = "the model output" if obj.layer is None else f"layer {obj.layer!r}"
        shape = tuple((output[0] if isinstance(output, (tuple, list)) else output).shape) if obj.layer is None \
            else tuple(acts[obj.layer].shape)
        raise ValueError(f"{obj.kind} index out of range for {where} of shape {shape}: {err}") from None


def _select(obj: Objective, output: torch.Tensor, acts: dict, indices: list) -> torch.Tensor:
    output = output[0] if isinstance(output, (tuple, list)) else output
    n = len(indices)
    rows = torch.arange(n, device=output.device)
    if obj.kind == "logit":
        return output[rows, torch.as_tensor(indices, device=output.device)]
    if obj.kind == "log_softmax":
        return torch.log_softmax(output, dim=1)[rows, torch.as_tensor(indices, device=output.device)]
    act = acts[obj.layer]
    if obj.kind == "channel":
        return torch.stack([act[i, indices[i]].mean() for i in range(n)])
    values = []
    for i in range(n):
        idx = indices[i]
        values.append(act[i].flatten()[idx] if isinstance(idx, int) else act[i][idx])
    return torch.stack(values)


def activation_maximization(model: torch.nn.Module, objective, shape: Sequence[int] | None = None,
                            start=None, n: int | None = None, steps: int = 200, lr: float = 0.05,
                            optimizer: str = "adam", l2: float = 0.0, l1: float = 0.0, tv: float = 0.0,
                            center: float = 0.0, blur_every: int = 0, blur_sigma: float = 0.5, jitter: int = 0,
                            clip: tuple[float, float] | None = None, init_scale: float = 0.1,
                            generator: torch.nn.Module | None = None, latent_shape: Sequence[int] | None = None,
                            seed: int = 0) -> ActivationMaximization:
    """Optimise inputs so that ``objective`` is maximal.

    Parameters
    ----------
    model : torch.nn.Module
        Left exactly as found (mode, ``requires_grad``, hooks).
    objective : int, list of int, or Objective
        A class index (its logit; one per input when a list) or :func:`class_logit`,
        :func:`class_log_probability`, :func:`neuron`, :func:`channel`.
    shape : sequence of int, optional
        Shape of one input without the batch axis, e.g. ``(1, 28, 28)`` or ``(C, T)``;
        the search starts from ``center + init_scale·N(0, 1)`` (clipped). Give ``start``
        (a batch) instead to start from given inputs.
    n : int, optional
        Number of inputs to optimise (default: the number of objective indices, or 1).
    steps, lr, optimizer : int, float, {"adam", "sgd"}
        Gradient ascent (``"sgd"`` is the plain ascent ``x ← x + lr·∇``).
    l2, l1, tv : float
        Weights of ``‖x − center‖²``, ``‖x − center‖₁`` and total variation.
    blur_every, blur_sigma : int, float
        Gaussian blur of the input every ``blur_every`` steps (0: never).
    jitter : int
        Maximal random circular shift (positions, per spatial/temporal axis) before each pass.
    clip : (low, high), optional
        The data range; inputs are clipped to it after every step.
    generator, latent_shape : optional
        A generator ``G`` mapping latent codes of shape ``latent_shape`` to inputs; the
        search runs over ``z`` and returns ``G(z)``.
    seed : int
        Seeds the start and the jitter; the global random state is not touched.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"activation maximisation needs a torch model, got {type(model).__name__}")
    obj = _resolve_objective(objective)
    steps = check_positive_int(steps, "steps")
    check_choice(optimizer, "optimizer", ("adam", "sgd"))
    blur_every = check_positive_int(blur_every, "blur_every", 0)
    jitter = check_positive_int(jitter, "jitter", 0)
    for name, value in (("l2", l2), ("l1", l1), ("tv", tv), ("init_scale", init_scale)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if lr <= 0 or blur_sigma <= 0:
        raise ValueError(f"lr and blur_sigma must be > 0, got lr={lr!r}, blur_sigma={blur_sigma!r}")
    if clip is not None:
        low, high = (float(c) for c in clip)
        if not low < high:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")
    if generator is not None and blur_every:
        raise ValueError("blur acts on inputs, not on a generator's latent code; set blur_every=0 with a generator")
    if obj.layer is not None:
        find_layer(model, obj.layer)
    gen = torch.Generator().manual_seed(seed)
    device = next(iter(model.parameters()), torch.empty(0)).device
    dtype = next(iter(model.parameters()), torch.empty(0, dtype=torch.float32)).dtype

    if generator is not None:
        if latent_shape is None:
            raise ValueError("latent_shape (one latent code, without batch axis) is needed with a generator")
        n = n or len(obj.per_sample(None))
        variable = (torch.randn((n, *latent_shape), generator=gen, dtype=dtype)).to(device)
    elif start is not None:
        variable = torch.as_tensor(np.asarray(start), dtype=dtype).clone().to(device)
        if variable.ndim < 2:
            raise ValueError(f"start must be a batch (N, ...), got shape {tuple(variable.shape)}")
        check_finite(variable, "start")
        n = variable.shape[0]
    else:
        if shape is None:
            raise ValueError("give the input shape (without batch axis), e.g. shape=(1, 28, 28), or a start batch")
        n = n or len(obj.per_sample(None))
        variable = (center + init_scale * torch.randn((n, *shape), generator=gen, dtype=dtype)).to(device)
    if clip is not None and generator is None:
        variable = variable.clamp(low, high)
    indices = obj.per_sample(n)
    variable.requires_grad_(True)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([variable], lr=lr)
    trajectory = []
    layers = [obj.layer] if obj.layer is not None else []

    def make_input() -> torch.Tensor:
        x = generator(variable) if generator is not None else variable
        return x.clamp(low, high) if clip is not None and generator is not None else x

    with model_view(model) as model, capture_activations(model, layers) as acts:
        with model_view(generator) if generator is not None else contextlib.nullcontext(None) as view:
            generator = view if generator is not None else None
            for step in range(steps):
                x = make_input()
                shifted = x
                if jitter:
                    shifts = [int(s) for s in torch.randint(-jitter, jitter + 1, (x.ndim - 2,), generator=gen)]
                    shifted = torch.roll(x, shifts=shifts, dims=tuple(range(2, x.ndim)))
                values = _objective_values(obj, model(shifted), acts, indices)
                loss = -values.sum()
                if l2:
                    loss = loss + l2 * (x - center).pow(2).sum()
                if l1:
                    loss = loss + l1 * (x - center).abs().sum()
                if tv:
                    loss = loss + tv * total_variation(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                trajectory.append(values.detach().cpu().numpy())
                with torch.no_grad():
                    if blur_every and (step + 1) % blur_every == 0:
                        variable.copy_(_gaussian_blur(variable, blur_sigma))
                    if clip is not None and generator is None:
                        variable.clamp_(low, high)
            with torch.no_grad():
                x = make_input()
                output = model(x)
                trajectory.append(_objective_values(obj, output, acts, indices).cpu().numpy())
    latent = variable.detach().cpu().numpy() if generator is not None else None
    params = dict(steps=steps, lr=lr, optimizer=optimizer, l2=l2, l1=l1, tv=tv, center=center, blur_every=blur_every,
                  blur_sigma=blur_sigma, jitter=jitter, clip=clip, init_scale=init_scale, seed=seed,
                  generator=generator is not None)
    output = output[0] if isinstance(output, (tuple, list)) else output
    return ActivationMaximization(x.detach().cpu().numpy(), np.stack(trajectory), output.detach().cpu().numpy(), obj,
                                  latent, params)
