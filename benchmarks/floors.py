"""Floors: the model passes a method needs, as one plain PyTorch loop.

A floor is what the fastest hand-written loop would have to spend on the model alone:
the forward (and backward) passes over the rows the method evaluates, in chunks of the
fastest size, with nothing else (no validation, no target resolution, no numpy
conversion, no rule arithmetic, no noise draws). ``lumos / floor`` is then the share of
the call that is the method's own work and lumos's plumbing.

Every builder returns a :class:`Floor`: a callable running the loop, picked among a few
chunk sizes by :func:`fastest` (each candidate timed twice, the fastest kept), with a
``label`` saying what it does (``"12,800 rows fwd+bwd to the input, chunks of 1,024"``).
Inputs, targets and pre-drawn noise live on the model's device; on CUDA the harness
synchronises before it stops the clock.
"""
from __future__ import annotations

import copy
import gc
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

DEFAULT_CHUNKS = (64, 256, 1024, 4096)
MAX_WHOLE = 8192
"""The whole set of rows is a candidate chunk only up to this many rows (memory)."""


class Floor:
    """A plain loop (``fn()``) and what it does (``label``, ``chunk`` rows per pass)."""

    def __init__(self, fn: Callable[[], object], label: str, chunk: int | None = None):
        self.fn, self.label, self.chunk = fn, label, chunk

    def __call__(self):
        return self.fn()

    def __repr__(self) -> str:
        return f"Floor({self.label!r})"


def sync(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device) -> float:
    gc.collect()
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def candidates(n_rows: int, extra: Sequence[int] = (), sizes: Sequence[int] = DEFAULT_CHUNKS) -> list[int]:
    """Chunk sizes worth trying for ``n_rows`` rows: the whole set (when it fits), the
    usual sizes below it and ``extra`` (e.g. the chunk lumos itself would use)."""
    out = {min(int(s), n_rows) for s in (*sizes, *extra) if s}
    if n_rows <= MAX_WHOLE:
        out.add(n_rows)
    return sorted(out)


def fastest(make: Callable[[int], Callable[[], object]], sizes: Sequence[int], label: str,
            device=None, tries: int = 2) -> Floor:
    """The loop ``make(chunk)`` at its fastest chunk size among ``sizes`` (each timed
    ``tries`` times after one warm-up call, the best time counts)."""
    if len(sizes) == 1:  # nothing to choose: no timing
        return Floor(make(sizes[0]), f"{label}, chunks of {sizes[0]:,} rows", sizes[0])
    best = None
    for size in sizes:
        fn = make(size)
        fn()  # warm-up (allocator, kernels)
        t = min(_time(fn, device) for _ in range(tries))
        if best is None or t < best[0]:
            best = (t, size, fn)
    _, size, fn = best
    tried = "/".join(f"{s:,}" for s in sizes)
    return Floor(fn, f"{label}, chunks of {size:,} rows (fastest of {tried})", size)


def recorded_rows(run: Callable[[Callable], object], model: Callable) -> np.ndarray:
    """The rows a model-agnostic method sends the model, in order: ``run(wrapped)`` runs the
    method once with ``model`` wrapped to keep a copy of every batch. A floor timed on these
    rows is the model's own cost for exactly the method's work: the same number of rows, the
    same values and the same dtype (a float64 array costs the float32 model a conversion that
    float32 rows do not)."""
    kept = []

    def wrapped(z):
        kept.append(np.array(z, copy=True))
        return model(z)

    run(wrapped)
    return np.concatenate(kept) if kept else np.empty((0,))


def recorded_inputs(run: Callable[[], object], model: nn.Module) -> torch.Tensor:
    """The inputs a method runs ``model`` on (lumos runs a private copy of it: every module of
    ``type(model)`` whose input has the sample shape of the first call counts), in order, as one
    tensor: a floor over them is the model's cost of exactly the rows the method evaluates (a
    method that skips rows it knows, e.g. perturbations that leave an input unchanged, needs
    fewer passes than a count of its steps says)."""
    kept, shape = [], []

    def hook(module, args):
        if type(module) is type(model) and args and torch.is_tensor(args[0]):
            x = args[0]
            if not shape:
                shape.append(tuple(x.shape[1:]))
            if tuple(x.shape[1:]) == shape[0]:
                kept.append(x.detach().clone())

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return torch.cat(kept) if kept else torch.empty(0)


# -- the passes ---------------------------------------------------------------------------
def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One forward and one backward pass: ∂(Σ_i f_{t_i}(x_i))/∂x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return g


def layer_gradient(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """One forward pass keeping ``layer``'s output (a forward hook) and one backward pass
    to it: the activation and ∂(Σ_i f_{t_i})/∂A."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        with torch.enable_grad():
            out = model(x.detach().requires_grad_(True))
            (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), store["a"])
    finally:
        handle.remove()
    return store["a"].detach(), g


# -- floors per method kind -------------------------------------------------------------------
def _frozen(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose parameters do not require gradients, as a
    careful hand loop (and lumos's private view) has them; the benchmark's model, shared
    with the peer, is left as it is."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def _layer_of(original: nn.Module, frozen: nn.Module, layer) -> nn.Module:
    """``layer`` (a name, or a module of ``original``) in the frozen copy."""
    if isinstance(layer, nn.Module):
        layer = next(name for name, m in original.named_modules() if m is layer)
    return dict(frozen.named_modules())[layer]


def _prepared(model, x, target):
    device = next(model.parameters()).device
    x = torch.as_tensor(x).to(device)
    target = torch.as_tensor(target).to(device=device, dtype=torch.long)
    return device, x, target


def gradient_floor(model: nn.Module, x, target, extra_chunks: Sequence[int] = (),
        sizes: Sequence[int] | None = None) -> Floor:
    """Saliency, Gradient x Input, guided backprop, Deconvnet, LRP, Deep Taylor: one
    forward and one backward pass to the input over the N rows (LRP's and the guided
    methods' rules are their own arithmetic on top of this backward pass)."""
    model = _frozen(model)
    device, x, target = _prepared(model, x, target)
    n = x.shape[0]

    def make(chunk):
        def run():
            return [input_gradient(model, x[a:a + chunk], target[a:a + chunk]) for a in range(0, n, chunk)]
        return run

    return fastest(make, sizes or candidates(n, extra_chunks), f"{n:,} rows fwd+bwd to the input", device)


def expansion_floor(model: nn.Module, x, target, copies: int, kind: str, noise_level: float = 0.15,
                    extra_chunks: Sequence[int] = (),
        sizes: Sequence[int] | None = None) -> Floor:
    """IG (``kind="ig"``: ``copies`` points on the path from a zero baseline) and SmoothGrad
    (``kind="noise"``: ``copies`` noisy copies) over N x copies rows: each chunk's rows are
    built (one multiply or add per element; SmoothGrad's noise is drawn once, before
    timing, and reused) and go through one forward and one backward pass to the input.
    The weighted sum of the gradients is the method's own arithmetic."""
    model = _frozen(model)
    device, x, target = _prepared(model, x, target)
    n, rows = x.shape[0], x.shape[0] * copies
    shape = (-1,) + (1,) * (x.ndim - 1)
    alphas = torch.linspace(0.01, 0.99, copies, device=device, dtype=x.dtype)
    g = torch.Generator(device=device).manual_seed(0)
    sigma = noise_level * float(x.max() - x.min())

    def make(chunk):
        noise = torch.randn((chunk, *x.shape[1:]), generator=g, device=device, dtype=x.dtype) * sigma \
            if kind == "noise" else None

        def run():
            out = []
            for a in range(0, rows, chunk):
                idx = torch.arange(a, min(a + chunk, rows), device=device)
                i, k = idx // copies, idx % copies  # input-major: all copies of an input together
                xi = x[i]
                pts = xi * alphas[k].view(shape) if kind == "ig" else xi + noise[:len(idx)]
                out.append(input_gradient(model, pts, target[i]))
            return out
        return run

    what = {"ig": "interpolated", "noise": "noisy"}[kind]
    return fastest(make, sizes or candidates(rows, extra_chunks), f"{rows:,} {what} rows ({n} x {copies}) fwd+bwd to the input",
                   device)


def _layer_output(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer``'s output when ``model`` runs on ``x`` (no gradients; not timed)."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return store["a"]


def ablated_layer_floor(model: nn.Module, layer, x, sizes: Sequence[int] = DEFAULT_CHUNKS) -> Floor:
    """AblationCAM: one forward over the N rows keeping ``layer``'s output A, then the model
    over the N x C ablated activations (channel k of A zeroed in copy k) with the layer's
    forward replaced by the ablated rows, so only what follows the layer runs (the ablated
    tensor is built outside the timed loop: it is the method's own arithmetic)."""
    frozen = _frozen(model)
    model, layer = frozen, _layer_of(model, frozen, layer)
    device = next(model.parameters()).device
    x = torch.as_tensor(x).to(device)
    n = x.shape[0]
    act = _layer_output(model, layer, x)
    c = act.shape[1]
    keep = (1 - torch.eye(c, dtype=act.dtype, device=act.device)).view(c, c, *([1] * (act.ndim - 2)))
    ablated = (act[:, None] * keep[None]).reshape(n * c, *act.shape[1:])
    rows = x.repeat_interleave(c, dim=0)

    def make(chunk):
        def run():
            with torch.no_grad():
                model(x)  # the activations and the scores of the unablated rows
                out = []
                for a in range(0, n * c, chunk):
                    layer.forward = lambda *args, _v=ablated[a:a + chunk], **kw: _v
                    try:
                        out.append(model(rows[a:a + chunk]))
                    finally:
                        del layer.forward
                return out
        return run

    return fastest(make, candidates(n * c, (), sizes), f"{n:,} rows forward + {n * c:,} ablated rows after the layer",
                   device)


def layer_floor(model: nn.Module, layer, x, target, extra_chunks: Sequence[int] = (),
        sizes: Sequence[int] | None = None) -> Floor:
    """Grad-CAM, Grad-CAM++: one forward pass keeping the layer's output (``layer``: its
    name or the module) and one backward pass to it (the channel weights and the
    upsampling are the method's own arithmetic)."""
    frozen = _frozen(model)
    model, layer = frozen, _layer_of(model, frozen, layer)
    device, x, target = _prepared(model, x, target)
    n = x.shape[0]

    def make(chunk):
        def run():
            return [layer_gradient(model, layer, x[a:a + chunk], target[a:a + chunk]) for a in range(0, n, chunk)]
        return run

    return fastest(make, sizes or candidates(n, extra_chunks), f"{n:,} rows fwd + bwd to the layer", device)


def guided_grad_cam_floor(model: nn.Module, layer, x, target, extra_chunks: Sequence[int] = (),
        sizes: Sequence[int] | None = None) -> Floor:
    """Guided Grad-CAM: the Grad-CAM passes (forward, backward to the layer) and the guided
    backprop passes (forward, backward to the input): the two backward passes differ at
    every ReLU, so they need two forward passes in plain PyTorch too."""
    frozen = _frozen(model)
    model, layer = frozen, _layer_of(model, frozen, layer)
    device, x, target = _prepared(model, x, target)
    n = x.shape[0]

    def make(chunk):
        def run():
            out = []
            for a in range(0, n, chunk):
                xs, ts = x[a:a + chunk], target[a:a + chunk]
                out.append((layer_gradient(model, layer, xs, ts), input_gradient(model, xs, ts)))
            return out
        return run

    return fastest(make, sizes or candidates(n, extra_chunks), f"{n:,} rows x 2 (fwd + bwd to the layer, fwd + bwd to the input)",
                   device)


def masked_input_floor(model: nn.Module, layer, x, sizes: Sequence[int] = DEFAULT_CHUNKS) -> Floor:
    """ScoreCAM: one forward over the N rows (the layer's output, from which the masks are
    made, and the scores), then the N x C masked rows ``x * s_k`` forward at the fastest chunk
    size. The masked rows are built outside the timed loop as pytorch-grad-cam builds them
    (each channel of the layer upsampled bilinearly with aligned corners, min-max scaled with
    ``+ 1e-8``, times the input): that is the method's own arithmetic, and their values, not
    only their number, set the forward pass's time (ReLU and max pooling branch on them: the
    unmasked inputs repeated C times ran 3-6 % faster through the MNIST CNN)."""
    frozen = _frozen(model)
    model, layer = frozen, _layer_of(model, frozen, layer)
    device = next(model.parameters()).device
    x = torch.as_tensor(x).to(device)
    act = _layer_output(model, layer, x)
    n, c = act.shape[:2]
    with torch.no_grad():
        up = torch.nn.functional.interpolate(act, size=tuple(x.shape[2:]), mode="bilinear", align_corners=True)
        flat = up.view(n, c, -1)
        lo, hi = flat.min(-1)[0], flat.max(-1)[0]
        up = (up - lo[:, :, None, None]) / (hi - lo + 1e-8)[:, :, None, None]
        rows = (x[:, None] * up[:, :, None]).reshape(n * c, *x.shape[1:])

    def make(chunk):
        def run():
            with torch.no_grad():
                model(x)
                return [model(rows[a:a + chunk]) for a in range(0, n * c, chunk)]
        return run

    return fastest(make, candidates(n * c, (), sizes), f"{n:,} rows forward + {n * c:,} masked rows forward",
                   device)


def forward_floor(model: Callable, x, extra_chunks: Sequence[int] = (), sizes: Sequence[int] = (1024, 4096, 16384, 65536)) -> Floor:
    """Perturbation methods (occlusion, KernelSHAP, LIME): forward passes alone over the
    rows ``x`` (already perturbed), without gradients."""
    device = next(model.parameters()).device if isinstance(model, nn.Module) else None
    x = torch.as_tensor(x)
    if device is not None:
        x = x.to(device)
    n = x.shape[0]

    def make(chunk):
        def run():
            with torch.no_grad():
                return [model(x[a:a + chunk]) for a in range(0, n, chunk)]
        return run

    return fastest(make, candidates(n, extra_chunks, sizes), f"{n:,} rows forward", device)


# -- randomisation tests (sanity) ----------------------------------------------------------------
def gradient_passes(model: nn.Module, x: torch.Tensor, target: torch.Tensor, chunk: int) -> list:
    """Saliency, guided backprop, LRP on one model: forward + backward to the input over the
    rows, ``chunk`` at a time."""
    return [input_gradient(model, x[a:a + chunk], target[a:a + chunk]) for a in range(0, x.shape[0], chunk)]


def guided_grad_cam_passes(layer: str) -> Callable:
    """Guided Grad-CAM on one model (``layer`` by name, looked up in the model given, so that a
    randomised copy uses its own): the passes of :func:`guided_grad_cam_floor`."""
    def passes(model, x, target, chunk):
        module = dict(model.named_modules())[layer]
        return [(layer_gradient(model, module, x[a:a + chunk], target[a:a + chunk]),
                 input_gradient(model, x[a:a + chunk], target[a:a + chunk])) for a in range(0, x.shape[0], chunk)]
    return passes


def path_passes(alphas: Sequence[float], endpoints: bool = True) -> Callable:
    """Integrated Gradients from the zero baseline on one model: the N x K path rows
    ``alpha_k x`` (built per chunk, one multiply per element) forward + backward to the input,
    ``chunk`` rows at a time; with ``endpoints`` also the forward passes without gradients that
    a completeness check needs, f(x) for the N inputs and f(x') for the one (shared) baseline.
    ``chunk`` counts path rows."""
    def passes(model, x, target, chunk):
        a = torch.as_tensor(np.asarray(alphas), dtype=x.dtype, device=x.device)
        k, n = len(a), x.shape[0]
        shape = (-1,) + (1,) * (x.ndim - 1)
        out = []
        if endpoints:
            with torch.no_grad():
                out.append(model(x))
                out.append(model(torch.zeros_like(x[:1])))
        for s in range(0, n * k, chunk):
            idx = torch.arange(s, min(s + chunk, n * k), device=x.device)
            i, j = idx // k, idx % k  # input-major: all path points of an input together
            out.append(input_gradient(model, x[i] * a[j].view(shape), target[i]))
        return out
    return passes


def randomisation_floor(model: nn.Module, x, target, passes: Callable, layers: Sequence[str], seed: int,
                        rows: int, label: str, sizes: Sequence[int] | None = None) -> Floor:
    """Cascading model-parameter randomisation (Adebayo et al. 2018, top-down): the method's
    model passes ``passes(m, x, target, chunk)`` on the original model and on each of the
    ``len(layers)`` cumulative stages. The stages are made inside the timed loop, as both
    libraries must make them: one deep copy of the (frozen) model, then per stage, from the
    last of ``layers`` down, ``torch.manual_seed(seed)`` and that layer's ``reset_parameters``
    (Quantus's seeding; lumos ``layer_seeds="same"``), so the passes run on the very weights
    the tests explain (a LeNet's copy and re-initialisation take about a millisecond). The
    similarity of the maps (ranks, Spearman) is the metric's own arithmetic, not counted.
    ``rows``: the rows one model's passes cover (the chunk candidates)."""
    frozen = _frozen(model)
    device, x, target = _prepared(frozen, x, target)

    def make(chunk):
        def run():
            out = [passes(frozen, x, target, chunk)]
            work = copy.deepcopy(frozen)
            modules = dict(work.named_modules())
            for name in reversed(list(layers)):
                with torch.random.fork_rng(devices=[]), torch.no_grad():
                    torch.manual_seed(seed)
                    modules[name].reset_parameters()
                out.append(passes(work, x, target, chunk))
            return out
        return run

    stages = len(layers) + 1
    return fastest(make, sizes or candidates(rows), f"{stages} models (original + {len(layers)} cumulative "
                   f"re-initialisations, timed) x {label}", device)
