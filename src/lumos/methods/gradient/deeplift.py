"""DeepLIFT with the Rescale rule (Shrikumar, Greenside, Kundaje 2017, "Learning important
features through propagating activation differences", arXiv:1704.02685).

Differences are measured against a reference input x': Δx = x − x', Δy = y(x) − y(x')
for every unit. Contributions are multipliers times differences,

    C_i = m_i · Δx_i,        m = Δy/Δx through each nonlinearity (the Rescale rule),

and multipliers compose by the chain rule, so linear layers (Linear, Conv, average
pooling, eval-mode batch norm, flatten, dropout) pass them exactly as gradients. Because
every module then maps its input differences onto its output difference, the
contributions sum to the change of the target score (*summation-to-delta*):

    Σ_i C_i = f_c(x) − f_c(x')

lumos returns ``base_value = f_c(x')`` and ``delta = Σ C − (f_c(x) − f_c(x'))`` per input,
zero up to float rounding on networks built from the modules below.

How it runs (as captum's ``DeepLift``): each chunk of n inputs goes through the model as
one batch of 2n rows, the inputs then their references; rules attached with
:func:`lumos.core.hooks.attach_rules` to the call's private view of the model replace the
backward pass of each nonlinearity module, and each rule reads its own row pairs (row
``i`` and row ``n + i``) from the module's saved input and output, and its multipliers
from the input rows of the incoming gradient (the backward pass starts from the inputs'
target scores only; the reference rows carry zeros). One forward and one backward pass
over the 2n rows give the scores f(x), the base values f(x') and the multipliers. The rules:

- elementwise activations (ReLU, ReLU6, LeakyReLU, PReLU, RReLU, ELU, SELU, CELU, GELU,
  SiLU, Mish, Sigmoid, Tanh, Softplus, Softsign, Hardtanh, Hardsigmoid, Hardswish,
  LogSigmoid, Tanhshrink, Softshrink, Hardshrink, Threshold): ``m = Δy/Δx``; where
  ``|Δx| < eps`` the module's own gradient at x (as captum does);
- max pooling (MaxPool1d/2d/3d, AdaptiveMaxPool1d/2d/3d), captum's rule: of the
  output difference ``y − y'``, the part ``max(y, y') − y'`` goes to the input's maximum
  of the window and ``y − max(y, y')`` to the reference's maximum, then
  ``m = (what reached the unit) / Δx`` (``|Δx| < eps``: the gradient). lumos adds what
  each window routes onto its maximum (a scatter-add), so overlapping windows
  (stride < kernel) keep summation-to-delta too (captum's max_unpool writes, it does not add);
- Softmax, LogSoftmax, Softmax2d (they mix their inputs, so Δy/Δx is not defined unit by
  unit): the path-averaged Jacobian ``m = ∫₀¹ J(x' + αΔx)ᵀ dα · m_out`` by 64-node
  Gauss–Legendre quadrature, the multi-input form of ``Δy/Δx`` (for one input it *is*
  Δy/Δx). This is lumos's choice; captum subtracts the mean of the unnormalised
  multipliers over the whole batch instead.

The output transformation (``output="sigmoid"``, ``"softmax"``, ``"log_softmax"``) is
treated as one more module: the sigmoid by the Rescale rule, the softmaxes by the path
rule, so summation-to-delta holds for every explained score.

Caveat: only modules carry rules. A nonlinearity applied with a function or an operator in
``forward`` (``F.relu(h)``, ``torch.tanh(h)``, ``h.clamp(0)``, ``torch.max(h, 1)``), the
gates inside recurrent layers (LSTM, GRU) and inside attention would pass the ordinary
gradient, and summation-to-delta would fail. lumos looks for them in its first forward pass
(the first chunk of inputs and references; remembered per model, module tree and input
shape) and refuses such models with a ``ValueError`` naming the module and the function (write the activation as a module, ``nn.ReLU()``, so the rule sees it); with
``strict=False`` it computes anyway, and a warning says when ``delta`` is not small
against ``f(x) − f(x')``. Operations it cannot recognise by name (a product of two
activations) are caught by that warning only.
"""
from __future__ import annotations

import contextlib
import warnings
import weakref
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from lumos.core.hooks import BackwardRule, attach_rules
from lumos.core.model import ModelAdapter
from lumos.core.registry import register
from lumos.core.validate import broadcast_reference
from lumos.methods.base import Chunk, State, record_completeness
from lumos.methods.gradient.base import GradientExplainer, step_functions
from lumos.methods.gradient.integrated_gradients import quadrature

RESCALE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                   nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardsigmoid,
                   nn.Hardswish, nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold)
MAXPOOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                   nn.AdaptiveMaxPool3d)
PATH_MODULES = (nn.Softmax, nn.LogSoftmax, nn.Softmax2d)

# functions (and tensor methods) that are nonlinear: met outside a module with a rule, they
# would pass the ordinary gradient (names as torch's function mode reports them)
NONLINEAR_FUNCTIONS = frozenset("""
relu relu6 leaky_relu prelu rrelu elu selu celu gelu silu mish sigmoid tanh softplus softsign hardtanh
hardsigmoid hardswish logsigmoid tanhshrink softshrink hardshrink threshold glu softmax log_softmax softmin
max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices max_pool3d_with_indices
adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d fractional_max_pool2d fractional_max_pool3d lp_pool1d
lp_pool2d clamp clip clamp_min clamp_max max min amax amin maximum minimum fmax fmin abs exp exp2 expm1 log log2
log10 log1p sqrt rsqrt pow square reciprocal erf erfc sin cos sign logsumexp layer_norm group_norm instance_norm
local_response_norm normalize rms_norm gru lstm rnn_tanh rnn_relu gru_cell lstm_cell rnn_tanh_cell rnn_relu_cell
multi_head_attention_forward scaled_dot_product_attention
""".split())
RECURRENT_MODULES = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention)


def _halves(x: torch.Tensor, module: nn.Module) -> int:
    if x.shape[0] % 2:
        raise ValueError(
            f"DeepLIFT's rule on {type(module).__name__} saw {x.shape[0]} rows; it pairs each input row with its "
            "reference row (the batch is the inputs, then their references), so the module must see the batch "
            "rows in order (no reshaping of the batch axis into others)"
        )
    return x.shape[0] // 2


def _vjp(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``grad``ᵀ J(x) of the module at ``x`` (its ordinary backward; hooks not run)."""
    with torch.enable_grad():
        xi = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(module.forward(xi), xi, grad)
    return g


def _batch_gradient(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient a rule returns for the whole batch of 2n rows, and its first half: the
    multipliers of the input rows go there; the reference rows get zeros (no rule reads
    them: every rule takes its multipliers from the input rows, ``grad_output[:n]``)."""
    out = torch.empty_like(x)
    out[n:].zero_()
    return out, out[:n]


class RescaleRule(BackwardRule):
    """``m_in = m_out · Δy/Δx`` elementwise (the module's gradient where ``|Δx| < eps``)."""

    def __init__(self, eps: float = 1e-10):
        self.eps = eps

    def backward(self, module, inputs, output, grad_output):
        x = inputs[0]
        n = _halves(x, module)
        g, x1 = grad_output[:n], x[:n]
        dx = x1 - x[n:]
        ratio = (output[:n] - output[n:]).div_(dx).mul_(g)  # inf or nan where Δx = 0: replaced below
        tiny = dx.abs_() < self.eps
        out, first = _batch_gradient(x, n)
        if type(module) is nn.ReLU:  # its gradient in closed form, without a sync or a second pass
            torch.where(tiny, torch.ops.aten.threshold_backward(g, x1, 0), ratio, out=first)
        elif bool(tiny.any()):
            torch.where(tiny, _vjp(module, x1, g), ratio, out=first)
        else:
            first.copy_(ratio)
        return (out,) + (None,) * (len(inputs) - 1)


_MAX_POOL = {nn.MaxPool1d: (1, F.max_pool1d), nn.MaxPool2d: (2, F.max_pool2d), nn.MaxPool3d: (3, F.max_pool3d),
             nn.AdaptiveMaxPool1d: (1, F.adaptive_max_pool1d), nn.AdaptiveMaxPool2d: (2, F.adaptive_max_pool2d),
             nn.AdaptiveMaxPool3d: (3, F.adaptive_max_pool3d)}


def _pool_indices(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The pooled dimensions and the index of each window's maximum (flat over them)."""
    kind = next(k for k in _MAX_POOL if isinstance(module, k))
    d, fn = _MAX_POOL[kind]
    if kind.__name__.startswith("Adaptive"):
        return d, fn(x, module.output_size, return_indices=True)[1]
    return d, fn(x, module.kernel_size, module.stride, module.padding, module.dilation, ceil_mode=module.ceil_mode,
                 return_indices=True)[1]


def _route(values: torch.Tensor, index: torch.Tensor, d: int, shape, *more: torch.Tensor) -> torch.Tensor:
    """Add each window's value onto its maximum (the pooling's backward): windows that
    share a maximum (stride < kernel) add up; ``more`` are further (values, index) pairs
    added into the same buffer."""
    flat = values.new_zeros((*shape[:-d], int(np.prod(shape[-d:]))))
    pairs = (values, index, *more)
    for v, i in zip(pairs[::2], pairs[1::2]):
        flat.scatter_add_(-1, i.flatten(-d), v.flatten(-d))
    return flat.view(shape)


class MaxPoolRule(BackwardRule):
    """captum's max-pooling rule: ``max(y, y') − y'`` is routed to the input's maximum of
    each window, ``y − max(y, y')`` to the reference's maximum (scatter-added, so
    overlapping windows add up), then divided by Δx."""

    def __init__(self, eps: float = 1e-10):
        self.eps = eps

    def backward(self, module, inputs, output, grad_output):
        x = inputs[0]
        n = _halves(x, module)
        g = grad_output[:n]
        y, y_ref = output[:n], output[n:]
        top = torch.maximum(y, y_ref)
        d, index = _pool_indices(module, x)
        shape = (n, *x.shape[1:])
        # both parts land in the input rows' buffer: the input's maxima and the reference's
        ratio = _route(g * (top - y_ref), index[:n], d, shape, g * (y - top), index[n:])
        dx = x[:n] - x[n:]
        ratio.div_(dx)  # inf or nan where Δx = 0: replaced below
        tiny = dx.abs_() < self.eps
        out, first = _batch_gradient(x, n)
        if bool(tiny.any()):
            torch.where(tiny, _route(g, index[:n], d, shape), ratio, out=first)
        else:
            first.copy_(ratio)
        return (out,) + (None,) * (len(inputs) - 1)


class PathRule(BackwardRule):
    """``m_in = ∫₀¹ J(x' + αΔx)ᵀ m_out dα`` (Gauss–Legendre): for modules that mix their
    inputs (softmax); Σ m_in Δx = Σ m_out Δy up to the quadrature error."""

    def __init__(self, n_nodes: int = 64, max_elements: int = 2**23):
        self.n_nodes, self.max_elements = n_nodes, max_elements
        self._alphas, self._weights = quadrature(n_nodes)

    def backward(self, module, inputs, output, grad_output):
        x = inputs[0]
        n = _halves(x, module)
        g = grad_output[:n]
        ref, dx = x[n:], x[:n] - x[n:]
        alphas = torch.as_tensor(self._alphas, dtype=x.dtype, device=x.device)
        weights = torch.as_tensor(self._weights, dtype=x.dtype, device=x.device)
        shape = (-1,) + (1,) * x.ndim
        mult = torch.zeros_like(g)
        per = max(1, self.max_elements // max(1, g.numel()))
        for a in range(0, self.n_nodes, per):
            k = slice(a, min(a + per, self.n_nodes))
            points = ref[None] + alphas[k].view(shape) * dx[None]  # (q, n, ...)
            q = points.shape[0]
            grads = _vjp(module, points.reshape(q * n, *x.shape[1:]), g.repeat(q, *([1] * (g.ndim - 1))))
            mult += (weights[k].view(shape) * grads.view(q, n, *x.shape[1:])).sum(0)
        out, first = _batch_gradient(x, n)
        first.copy_(mult)
        return (out,) + (None,) * (len(inputs) - 1)


class OutputTransform(nn.Module):
    """The adapter's output transformation as a module, so that a rule can carry it."""

    def __init__(self, output: str):
        super().__init__()
        self.output = output

    def forward(self, z):
        if self.output == "softmax":
            return torch.softmax(z, dim=1)
        if self.output == "log_softmax":
            return torch.log_softmax(z, dim=1)
        return torch.sigmoid(z)


def deeplift_rules(model: nn.Module, eps: float) -> dict:
    """``{module: rule}`` for every module of ``model`` that DeepLIFT treats."""
    rules = {}
    for m in model.modules():
        if isinstance(m, RESCALE_MODULES):
            rules[m] = RescaleRule(eps)
        elif isinstance(m, MAXPOOL_MODULES) and not getattr(m, "return_indices", False):
            rules[m] = MaxPoolRule(eps)
        elif isinstance(m, PATH_MODULES):
            rules[m] = PathRule()
    return rules


class _Spy(TorchFunctionMode):
    def __init__(self, stack, ruled, found):
        super().__init__()
        self.stack, self.ruled, self.found = stack, ruled, found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "").strip("_")
        if name in NONLINEAR_FUNCTIONS:
            where, module = self.stack[-1] if self.stack else ("", None)
            if module is None or module not in self.ruled:
                kind = type(module).__name__ if module is not None else "model"
                self.found.setdefault((where, kind), set()).add(name)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def spy_nonlinearities(model: nn.Module, ruled) -> Iterator[list[str]]:
    """Watch the forward passes run inside the block: yields a list that, on exit, holds the
    nonlinear operations no rule sees (functions called in a module's ``forward`` outside
    the modules in ``ruled``, named by module; recurrent layers; attention modules; max
    pooling with ``return_indices``). Empty when every nonlinearity has a rule."""
    stack: list = []
    found: dict = {}
    handles = []
    out: list[str] = []

    def enter(name):
        def hook(module, inputs):
            stack.append((name, module))
        return hook

    def leave(module, inputs, output):
        if stack:
            stack.pop()

    try:
        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(enter(name)))
            handles.append(m.register_forward_hook(leave))
        with _Spy(stack, set(ruled), found):
            yield out
    finally:
        for h in handles:
            h.remove()
    for (where, kind), names in found.items():
        label = f"'{where}' ({kind})" if where else f"the model's own forward ({kind})"
        out.append(f"{', '.join(sorted(names))} in {label}")
    for name, m in model.named_modules():
        if isinstance(m, MAXPOOL_MODULES) and getattr(m, "return_indices", False):
            out.append(f"max pooling with return_indices=True in '{name}' ({type(m).__name__})")


def unseen_nonlinearities(adapter: ModelAdapter, probe: torch.Tensor, ruled) -> list[str]:
    """Nonlinear operations in one forward pass of ``probe`` that no rule sees (see
    :func:`spy_nonlinearities`). Empty when every nonlinearity has a rule."""
    with torch.no_grad(), spy_nonlinearities(adapter.model, ruled) as unseen:
        adapter.forward(probe)
    return unseen


_UNSEEN: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
"""What :func:`spy_nonlinearities` found, per user model, keyed by the module tree (names and
types) and the input's sample shape and dtype: the spied forward pass (a Python callback per
torch operation) is paid once per model, not once per call."""


class DeepLiftSetup:
    """What one call of a DeepLIFT method needs: the raw-score adapter, the output
    transformation as a module (None for raw scores), the rules (attached for the call)
    and the nonlinearities no rule sees."""

    def __init__(self, call, probe: torch.Tensor | None, eps: float, strict: bool, method: str, owner=None):
        model = call.model
        if any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
            raise ValueError(f"{method} attaches rules to the model's layers, which TorchScript modules do not "
                             "support; explain the nn.Module instead")
        adapter = call.adapter
        self.raw = ModelAdapter(model, output="raw", batch_size=adapter.batch_size, on_rows=adapter.on_rows)
        self.strict, self.method = strict, method
        rules = deeplift_rules(model, eps)
        self._ruled = set(rules)  # the output transformation gets its own rule, outside the spied forward
        # the nonlinearities no rule sees are found in the first forward pass of multipliers() (no probe
        # pass of its own: one model call fewer per explanation), or here on ``probe`` when one is given
        self.unseen = None if probe is None else unseen_nonlinearities(self.raw, probe, rules)
        self._memo = None
        if self.unseen is None and isinstance(owner, nn.Module):  # found once per model structure and input shape
            self._memo = (_UNSEEN.setdefault(owner, {}),
                          tuple((name, type(m)) for name, m in model.named_modules()))
        if self.unseen:
            self._check_unseen()
        self.transform = None
        if adapter.output != "raw":
            self.transform = OutputTransform(adapter.output)
            rules[self.transform] = RescaleRule(eps) if adapter.output == "sigmoid" else PathRule()
        call.stack.enter_context(attach_rules(rules))
        self.call = call

    def _check_unseen(self) -> None:
        if self.unseen and self.strict:
            raise ValueError(
                f"{self.method} cannot see every nonlinearity of this model: {'; '.join(self.unseen)}. Its rules "
                "attach to modules (nn.ReLU, nn.Tanh, nn.MaxPool2d...); functions called in forward, recurrent "
                "layers and attention would pass the ordinary gradient and the contributions would not sum to "
                "f(x) - f(x'). Write the activations as modules, or pass strict=False to compute anyway (delta "
                "then reports the shortfall)"
            )

    def _raw_scores(self, batch: torch.Tensor) -> torch.Tensor:
        key = None
        if self.unseen is None and self._memo is not None:
            key = (self._memo[1], tuple(batch.shape[1:]), batch.dtype)
            if key in self._memo[0]:
                self.unseen = list(self._memo[0][key])
                self._check_unseen()
        if self.unseen is not None:
            return self.raw.forward(batch)
        with spy_nonlinearities(self.raw.model, self._ruled) as unseen:
            scores = self.raw.forward(batch)
        self.unseen = unseen
        if key is not None:
            self._memo[0][key] = tuple(unseen)
        self._check_unseen()
        return scores

    def multipliers(self, batch: torch.Tensor, choose):
        """One forward and one backward pass over ``batch``, n input rows then their n
        references: the scores of the inputs and of the references, the targets
        ``choose(scores of the inputs)`` and the multipliers of the target score with
        respect to the inputs (shaped like them)."""
        n = batch.shape[0] // 2
        call = self.call
        batch = batch.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = self._raw_scores(batch)
            if self.transform is not None:
                scores = self.transform(scores)
            target = choose(scores[:n].detach())
            if not scores.requires_grad:
                raise ValueError("the model's output has no gradient path to its input (it detaches, rounds or "
                                 "takes an argmax); DeepLIFT cannot explain it, use a model-agnostic method")
            seed = torch.zeros_like(scores)
            seed[:n].scatter_(1, target.view(-1, 1), 1.0)
            (grad,) = torch.autograd.grad(scores, batch, seed, allow_unused=True)
            if grad is None:
                raise ValueError("the model's output does not depend differentiably on its input; use a "
                                 "model-agnostic method")
            mult = grad[:n]
            call.note_gradient(mult)
            if not call.gradient_seen and call.step_functions is None:
                call.step_functions = step_functions(scores.grad_fn)
        scores = scores.detach()
        return scores[:n], scores[n:], target, mult


def check_summation(delta: np.ndarray, f_x: np.ndarray, f_ref: np.ndarray, method: str, setup: DeepLiftSetup,
                    stacklevel: int = 4) -> None:
    """Warn when the contributions do not sum to f(x) − f(x') (a nonlinearity no rule saw)."""
    scale = np.abs(f_x - f_ref) + 1e-2 * (np.abs(f_x) + np.abs(f_ref)) + 1e-6
    bad = np.abs(delta) > 1e-3 * scale
    if bad.any():
        worst = int(np.argmax(np.abs(delta) / scale))
        why = (f"; operations without a rule: {'; '.join(setup.unseen)}" if setup.unseen else
               "; some nonlinearity of the model is not a module DeepLIFT treats (a product of activations, "
               "a custom operation), so it passed the ordinary gradient")
        warnings.warn(
            f"{method}: the contributions do not sum to f(x) - f(reference) for {int(bad.sum())} of {len(delta)} "
            f"input(s) (input {worst}: delta {delta[worst]:.4g} against a change of {f_x[worst] - f_ref[worst]:.4g})"
            f"{why}", stacklevel=stacklevel)


@register("deeplift", "deep_lift")
class DeepLift(GradientExplainer):
    """DeepLIFT (Rescale rule) against a reference input: ``C = m ⊙ (x − x')`` with
    multipliers ``m = Δy/Δx`` through every nonlinearity, ``Σ C = f(x) − f(x')``.

    Parameters
    ----------
    baseline : None, float or array
        The reference x': None for zeros, a value, one sample, or one per input. Can be
        overridden per call: ``explain(x, baseline=...)``.
    eps : float, default 1e-10
        Where ``|Δx| < eps`` a rule uses the module's gradient instead of ``Δy/Δx``
        (captum's default).
    strict : bool, default True
        Refuse models with nonlinearities no rule can see (functional activations,
        recurrent layers, attention); False computes anyway and warns when the
        contributions do not sum to ``f(x) − f(x')``.

    Results: ``values`` the contributions, ``base_value = f(x')``, ``delta = Σ C − (f(x) − f(x'))``
    (float rounding on networks of supported modules). Equal to captum's
    ``DeepLift(model).attribute(x, baselines=x')`` (``multiply_by_inputs=True``).
    """

    call_options = {"baseline": None}
    torchscript = False

    def __init__(self, model, *, baseline=None, eps: float = 1e-10, strict: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.baseline = baseline
        self.eps = _check_eps(eps)
        self.strict = bool(strict)

    def params(self):
        return {**super().params(), "baseline": self.baseline if np.ndim(self.baseline) == 0 else "array",
                "eps": self.eps, "strict": self.strict}

    def prepare(self, x, call, baseline=None):
        ref = broadcast_reference(baseline if baseline is not None else self.baseline, x)
        refs = call.adapter.to_tensor(ref)
        setup = DeepLiftSetup(call, None, self.eps, self.strict, type(self).__name__, owner=self.adapter.model)
        return State(call, refs=refs, setup=setup, base=[])

    def expansion(self, state):
        return 2

    def expected_rows(self, x, state):
        return 2 * x.shape[0]

    def gradient_rows(self, x, target, index, state):
        """DeepLIFT of rows ``x`` with known targets against the references of the batch
        positions ``index`` (SmoothGrad can wrap it)."""
        ref = state.refs[index]
        mult = state.setup.multipliers(torch.cat([x, ref]), lambda scores: target)[3]
        return (x - ref).mul_(mult)

    def attribute_chunk(self, x, targets, state):
        xt = state.adapter.to_tensor(x)
        ref = state.refs[torch.as_tensor(targets.index, device=xt.device)]
        s, s_ref, t, mult = state.setup.multipliers(torch.cat([xt, ref]), targets)
        state.base.append(s_ref.gather(1, t.view(-1, 1))[:, 0].cpu().numpy())
        return Chunk((xt - ref).mul_(mult).detach(), s, t)

    def finish(self, x, result, state):
        super().finish(x, result, state)
        f_x = record_completeness(result, np.concatenate(state.base).astype(np.float64), np.float64)
        check_summation(result.delta, f_x, result.base_value, type(self).__name__, state.setup)


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a non-negative number (the |Δx| below which the gradient is used), got {eps!r}")
    return float(eps)
