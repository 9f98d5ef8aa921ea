"""Learned perturbation masks over channel × time: ExtremalMask and Dynamask.

Both learn, for each input x ∈ R^{C×T}, a mask m ∈ [0, 1]^{C×T} by gradient descent (Adam)
on the call's private view of the model (its parameters are frozen there; only the masks,
and ExtremalMask's perturbation network, are optimised). ``values`` is the mask itself,
shaped like the input, as tint returns it; ``extras`` holds the final loss terms of every
input. The inputs of a chunk are optimised together as one batch of masks (one forward and
one backward pass of the model per step for the whole chunk), and every loss is a sum of
per-input terms, so an input's mask does not depend on which other inputs share its chunk,
on ``batch_size`` or on the chunking of ``explain_dataset`` (up to float round-off).

ExtremalMask (Enguehard 2023, "Learning Perturbations to Explain Time Series Predictions", ICML, arXiv:2306.02109; tint ``ExtremalMask`` / ``ExtremalMaskNet``)
    A learned perturbation g_θ replaces what the mask removes:

        preservation:  x̃ = m ⊙ x + (1 − m) ⊙ g_θ(x − b)
        min_{m, θ}  λ₁ mean|m| + λ₂ mean|g_θ(x − b)| + (f(x̃) − f(x))²

        deletion:      x̃ = (1 − m) ⊙ x + m ⊙ g_θ(x − b)
        min_{m, θ}  λ₁ mean|1 − m| + λ₂ mean|g_θ(x − b)| + (f(x̃) − f(b))²

    with b the baseline (zeros by default), the means over the C × T cells and f the
    explained score (the target's, or every output with ``outputs="all"``). g_θ is the
    network of the paper's and tint's experiments: a bidirectional GRU with C hidden units
    per direction over time, its outputs L2-normalised per step, then a linear map 2C → C
    (tint: ``nn.Sequential(RNN(C, rnn="gru", hidden_size=C, bidirectional=True),
    MLP([2C, C]))``). As in tint the mask is clamped to [0, 1] where it is used, the
    penalty acts on the raw mask, and the mask starts at 0.5. One difference: tint trains
    one g_θ shared by the inputs of a batch; lumos gives every input its own g_θ (seeded
    per input: ``(seed, row)``), which is what makes the result independent of the
    batching. ``perturbation="baseline"`` drops g_θ (x̃ = m ⊙ x + (1 − m) ⊙ b: tint's
    ``ExtremalMaskNet`` default, ``model=None``); the method is then deterministic.

Dynamask (Crabbé & van der Schaar 2021, "Explaining Time Series Predictions with Dynamic Masks", ICML, arXiv:2106.05303; tint ``DynaMask`` / ``MaskNet``)
    A fixed perturbation operator π_m and, for each area a in ``keep_ratio``, one mask:

        min_m  ± (f(π_m(x)) − f(x))² + λ_a(e) ‖sort(m) − r_a‖² / (CT) + λ_c Σ_{t<T−2} |m_{c,t+1} − m_{c,t}| / (C(T−2))

    (+ in preservation; in deletion mode π uses 1 − m and the error is maximised, −). r_a
    holds ⌊(1 − a)·CT⌋ zeros then ones: the area regulariser pulls the sorted mask towards
    keeping a fraction a of the cells. λ_a grows geometrically from ``size_reg_factor_init``
    by ``size_reg_factor_dilation`` over the epochs (×dilation^{1/epochs} after each); λ_c
    is ``time_reg_factor``. The mask is clamped to [0, 1] after every step. Operators
    (tint's), with σ_{c,t} = σ_max·(1 + 10⁻⁷ − m_{c,t}):

    * ``gaussian_blur``: π(x)_{c,t} = Σ_s w_{s,t} x_{c,s} / (Σ_s w_{s,t} + 10⁻⁷),
      w_{s,t} = exp(−(s − t)² / (2σ_{c,t}²)) — a kept cell (m = 1) stays, a removed one is
      blurred over ~σ_max steps. Computed on a window of ±⌈6σ_max⌉ steps (the weights
      beyond are below e^{-18} of the centre's) instead of tint's T × T kernel.
    * ``fade_moving_average``: π(x) = m ⊙ x + (1 − m) ⊙ mean_t(x) (tint's default).
    * ``fade_moving_average_window``: π(x) = x̄ + m ⊙ (x − x̄), x̄ the sum over ±w steps / (2w + 1).
    * ``fade_reference``: π(x) = b + m ⊙ (x − b), b the baseline.

    The returned mask is that of the area with the smallest error for this input (the
    largest in deletion mode), and in deletion mode it is 1 − m, the mask of what is kept,
    as tint returns it: there the cells whose removal matters most are near 0. The time
    term leaves out the last step pair, as the authors' code and tint do. The sort of the
    area term orders the (C, T) cells as tint's (T, C) layout does, so that ties (every cell
    starts at 0.5) are broken alike. Differences from tint: tint picks one area for the
    whole batch (the smallest error summed over its inputs, also in deletion mode); tint's
    ``MaskNet`` adds the two regularisers in ``training_step_end``, a hook that
    pytorch-lightning >= 2.0 no longer calls, so with a current Lightning tint optimises
    the error alone. Dynamask draws no random numbers.

Both methods minimise the sum of the per-input objectives; tint minimises their mean over
its batch. Adam is invariant to that scale except through its ε, so lumos equals tint run
on one input at a time (to ~1e-6 after 30 steps), and on a batch the two drift apart
where a cell's gradient is near zero (a cell the model ignores: Adam's normalised step
there is decided by ε and round-off) while ranking the cells alike. ExtremalMask's
deletion game is kept as tint writes it; both of its terms favour m = 1, and the mask it
learns ranks the cells poorly (Fan et al. 2024, TMLR, reproducing Enguehard 2023, found
the deletion game to perform poorly).

Defaults are tint's (Adam with its default betas/eps, 100 epochs, lr 1e-3, λ₁ = λ₂ = 1,
mask initialised at 0.5, ``keep_ratio=0.5``, ``size_reg_factor_init=0.5``, dilation 100,
``time_reg_factor=0``), with the Gaussian blur (σ_max = 2, tint's) as Dynamask's operator
and the GRU perturbation of the paper for ExtremalMask. The papers' experiments train
longer with larger steps (tint's HMM experiment: ExtremalMask 500 epochs, lr 0.01;
Dynamask 1000 epochs, ``sigma_max=1``, ``keep_ratio=[0.25, ..., 0.34]``,
``size_reg_factor_init=0.1``, ``time_reg_factor=1``).

The budget decides the accuracy, Dynamask's most (measured on the switching-state HMM of
``lumos bench timeseries --quick``, GRU(16), 8 test series x 200 steps, tint's HMM options,
Adam's rate raised as 1e-3 x 1000 / epochs, at most 0.05; ExtremalMask 1e-2 x 500 / epochs):
Dynamask AUP 0.41 / 0.64 / 0.66 / 0.69 and AUROC 0.57 / 0.63 / 0.64 / 0.65 after 30 / 100 /
300 / 500 epochs; ExtremalMask AUP 0.82 / 0.85 / 0.85 / 0.85, AUROC 0.79 / 0.80 / 0.78 / 0.83.
Time grows linearly with the epochs. Below 100 epochs Dynamask loses a third of its precision:
keep ``epochs >= 100`` (the default) and, to match the papers, give tint's budgets (Dynamask
1000, ExtremalMask 500); the benchmark's ``full`` scale gives both 500.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lumos.core.registry import register
from lumos.core.validate import broadcast_reference, check_choice, check_positive_int
from lumos.methods.base import Chunk, Explainer, State

EPS = 1e-7
"""tint's constant in the blur's width and normalisation."""

PERTURBATIONS = ("gaussian_blur", "fade_moving_average", "fade_moving_average_window", "fade_reference")
OUTPUTS = ("target", "all")


def _positive_float(value, name: str, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


# -- Dynamask's perturbation operators (x, m: (B, C, T)) ------------------------------------
def gaussian_blur(x: torch.Tensor, m: torch.Tensor, sigma_max: float = 2.0) -> torch.Tensor:
    """Each cell replaced by a Gaussian average over time of width σ_max·(1 + 1e-7 − m)."""
    T = x.shape[-1]
    radius = min(T - 1, int(math.ceil(6 * sigma_max)))
    d = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)  # (W,)
    t = torch.arange(T, device=x.device)
    valid = ((t[:, None] + d.long()[None]) >= 0) & ((t[:, None] + d.long()[None]) < T)  # (T, W)
    sigma = sigma_max * ((1 + EPS) - m)  # (B, C, T)
    w = torch.exp(-(d * d) / (2.0 * sigma.unsqueeze(-1) ** 2)) * valid  # (B, C, T, W)
    windows = F.pad(x, (radius, radius)).unfold(-1, 2 * radius + 1, 1)  # (B, C, T, W)
    return (w * windows).sum(-1) / (w.sum(-1) + EPS)


def fade_moving_average(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return m * x + (1 - m) * x.mean(-1, keepdim=True)


def fade_moving_average_window(x: torch.Tensor, m: torch.Tensor, window_size: int = 2) -> torch.Tensor:
    avg = F.avg_pool1d(x.reshape(-1, 1, x.shape[-1]), 2 * window_size + 1, stride=1, padding=window_size,
                       count_include_pad=True).reshape(x.shape)
    return avg + m * (x - avg)


def fade_reference(x: torch.Tensor, m: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return reference + m * (x - reference)


# -- ExtremalMask's perturbation network, one per input -------------------------------------
class _GRUScan(torch.autograd.Function):
    """The GRU recurrence of a batch of B independent cells over T steps, with its
    backward written out (backpropagation through time): a few fused tensor operations per
    step instead of autograd's graph of the step's ~15 operations.

    ``gi`` (T, B, 3H): the input projections W_i x_t + b_i of the gates (r, z, n);
    ``w_hh`` (B, 3H, H), ``b_hh`` (B, 3H, 1). Returns h_1..h_T (T, B, H), h_0 = 0:

        r, z = σ(gi_r + gh_r), σ(gi_z + gh_z),  gh = W_hh h_{t−1} + b_hh
        n = tanh(gi_n + r ⊙ gh_n),  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    """

    @staticmethod
    def forward(ctx, gi, w_hh, b_hh):
        T, B, G = gi.shape
        H = G // 3
        gi_rz, gi_n = gi[..., :2 * H].unbind(0), gi[..., 2 * H:].unbind(0)
        h = gi.new_zeros(B, H)
        hs, rzs, cands, ghns = [h], [], [], []
        for s in range(T):
            gh = torch.baddbmm(b_hh, w_hh, h.unsqueeze(2)).squeeze(2)  # (B, 3H)
            rz = torch.sigmoid(gi_rz[s] + gh[:, :2 * H])
            ghn = gh[:, 2 * H:]
            cand = torch.tanh(torch.addcmul(gi_n[s], rz[:, :H], ghn))
            h = torch.lerp(cand, h, rz[:, H:])  # (1 − z) ⊙ n + z ⊙ h
            hs.append(h)
            rzs.append(rz)
            cands.append(cand)
            ghns.append(ghn)
        hs = torch.stack(hs)  # (T + 1, B, H): h_0..h_T
        ctx.save_for_backward(w_hh, hs, torch.stack(rzs), torch.stack(cands), torch.stack(ghns))
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_out):
        w_hh, hs, rz, cand, ghn = ctx.saved_tensors
        H = cand.shape[-1]
        r, z, prev = rz[..., :H], rz[..., H:], hs[:-1]
        # ∂L/∂(gate pre-activations) = a ⊙ factor, a = ∂L/∂h_t: the factors of all steps at once
        a_n = (1 - z) * (1 - cand * cand)  # n's pre-activation (and gi_n)
        a_r = a_n * ghn * r * (1 - r)
        a_z = (prev - cand) * z * (1 - z)
        f_gh = torch.stack([a_r, a_z, a_n * r], 2)  # (T, B, 3, H): for gh = W_hh h + b_hh
        f_gi = torch.stack([a_r, a_z, a_n], 2)
        w_t = w_hh.transpose(1, 2)  # (B, H, 3H)
        T, B = cand.shape[:2]
        grads = grad_out.unbind(0) if grad_out is not None else [cand.new_zeros(B, H)] * T
        fs, zs = f_gh.unbind(0), z.unbind(0)
        carry = cand.new_zeros(B, H)
        a_all = [None] * T
        for s in range(T - 1, -1, -1):
            a = grads[s] + carry
            a_all[s] = a
            dgh = (a.unsqueeze(1) * fs[s]).reshape(B, 3 * H, 1)
            carry = torch.baddbmm((a * zs[s]).unsqueeze(2), w_t, dgh).squeeze(2)
        a_all = torch.stack(a_all).unsqueeze(2)  # (T, B, 1, H)
        dgh = (a_all * f_gh).reshape(T, B, 3 * H)
        d_gi = (a_all * f_gi).reshape(T, B, 3 * H)
        d_w = torch.einsum("tbg,tbh->bgh", dgh, prev)
        return d_gi, d_w, dgh.sum(0).unsqueeze(2)


class RowGRU:
    """g_θ(u) for a batch of n inputs u (n, C, T), each with its own weights: a
    bidirectional GRU (hidden ``H`` per direction, PyTorch's gate equations and
    initialisation U(−1/√H, 1/√H)), the 2H outputs of each step L2-normalised, then a
    linear map 2H → C (initialised as ``nn.Linear``). The n GRUs and both directions run
    as one batched recurrence (:class:`_GRUScan`: a batched matrix product per step)."""

    def __init__(self, n: int, channels: int, hidden: int, generators, dtype, device):
        C, H = channels, hidden
        self.C, self.H = C, H
        sizes = (2 * 3 * H * C, 2 * 3 * H * H, 2 * 3 * H, 2 * 3 * H, C * 2 * H, C)
        draws = torch.stack([torch.rand(sum(sizes), generator=g, dtype=torch.float64) for g in generators])
        parts = list(torch.split(2 * draws - 1, sizes, dim=1))
        k, kl = 1 / math.sqrt(H), 1 / math.sqrt(2 * H)
        to = dict(dtype=dtype, device=device)
        self.w_ih = (parts[0] * k).reshape(n, 2, 3 * H, C).transpose(0, 1).contiguous().to(**to)  # (2, n, 3H, C)
        self.w_hh = (parts[1] * k).reshape(n, 2, 3 * H, H).transpose(0, 1).reshape(2 * n, 3 * H, H).to(**to)
        self.b_ih = (parts[2] * k).reshape(n, 2, 3 * H).transpose(0, 1).contiguous().to(**to)  # (2, n, 3H)
        self.b_hh = (parts[3] * k).reshape(n, 2, 3 * H).transpose(0, 1).reshape(2 * n, 3 * H, 1).to(**to)
        self.w_out = (parts[4] * kl).reshape(n, C, 2 * H).to(**to)
        self.b_out = (parts[5] * kl).reshape(n, C, 1).to(**to)
        for p in self.parameters():
            p.requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        return [self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.w_out, self.b_out]

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        n, C, T = u.shape
        H = self.H
        seq = u.permute(2, 0, 1)  # (T, n, C)
        both = torch.stack([seq, seq.flip(0)], 1)  # (T, 2, n, C): the backward direction reads time reversed
        gi = torch.einsum("tdnc,dngc->tdng", both, self.w_ih) + self.b_ih  # (T, 2, n, 3H)
        out = _GRUScan.apply(gi.reshape(T, 2 * n, 3 * H), self.w_hh, self.b_hh)  # (T, 2n, H)
        out = out.reshape(T, 2, n, H)
        feats = torch.cat([out[:, 0], out[:, 1].flip(0)], -1)  # (T, n, 2H)
        feats = F.normalize(feats, p=2, dim=-1)
        return torch.einsum("tnk,nck->nct", feats, self.w_out) + self.b_out


# -- the shared template ------------------------------------------------------------------
class _LearnedMask(Explainer):
    layouts = ("timeseries",)
    needs_gradients = True
    call_options = {"baseline": None}

    def __init__(self, model, *, epochs: int = 100, lr: float = 1e-3, outputs: str = "target", **kwargs):
        super().__init__(model, **kwargs)
        self.epochs = check_positive_int(epochs, "epochs")
        self.lr = _positive_float(lr, "lr")
        self.outputs = check_choice(outputs, "outputs", OUTPUTS)

    def params(self):
        return {**super().params(), "epochs": self.epochs, "lr": self.lr, "outputs": self.outputs}

    def prepare(self, x, call, baseline=None):
        ref = broadcast_reference(baseline, x)
        return State(call, baseline=call.adapter.to_tensor(ref))

    def expected_rows(self, x, state):
        return x.shape[0] * (self.epochs * self.expansion(state) + self.expansion(state) + 2)

    def _select(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scores the masks must preserve: the target's (n, 1) or all (n, K)."""
        return scores if self.outputs == "all" else scores.gather(1, target.view(-1, 1))

    def attribute_chunk(self, x, targets, state):
        adapter = state.adapter
        xt = adapter.to_tensor(x)
        with torch.no_grad():
            scores = adapter.forward(xt)
        if not scores.is_floating_point():
            raise ValueError(_NO_GRADIENT)
        target = targets(scores)
        base = state.baseline[torch.as_tensor(targets.index, device=state.baseline.device)]
        try:
            with torch.enable_grad():
                values, extras = self._fit(xt, base, scores, target, targets.index, state)
        except RuntimeError as err:
            if "cudnn RNN backward can only be called in training mode" not in str(err):
                raise
            with torch.backends.cudnn.flags(enabled=False), torch.enable_grad():  # as tint's experiments
                values, extras = self._fit(xt, base, scores, target, targets.index, state)
        return Chunk(values, scores, target, extras)

    def _fit(self, x, base, scores, target, index, state):
        raise NotImplementedError


_NO_GRADIENT = ("the model's output has no gradient path to its input (it detaches, rounds or takes an argmax); "
                "a learned mask cannot be fitted to it, use a model-agnostic method (occlusion, rise)")


def _backward(loss: torch.Tensor) -> None:
    if not loss.requires_grad:
        raise ValueError(_NO_GRADIENT)
    loss.backward()


def _cpu(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@register("extremal_mask", "extremalmask")
class ExtremalMask(_LearnedMask):
    """Extremal masks with a learned perturbation (Enguehard 2023, arXiv:2306.02109).

    See the module docstring for the objective. Returns the mask m (N, C, T) in [0, 1];
    ``extras``: ``loss`` (the objective per input at the final parameters), ``fit`` (the
    squared score difference), ``mask_l1`` (λ₁ mean|m| or λ₁ mean|1 − m|) and
    ``perturbation_l1`` (λ₂ mean|g_θ|).

    Parameters
    ----------
    mode : {"preservation", "deletion"}, default "preservation"
        Which game (tint's ``preservation_mode=True`` / ``False``).
    perturbation : {"gru", "baseline"}, default "gru"
        The learned g_θ (a per-input bidirectional GRU), or the baseline itself.
    hidden_size : int, optional
        Units per direction of the GRU (default: the number of channels, as tint's experiments).
    lambda_1, lambda_2 : float, default 1.0
        Weights of the mask and perturbation L1 penalties.
    epochs : int, default 100
        Adam steps per input (tint: ``Trainer(max_epochs=100)``, one batch per epoch).
    lr : float, default 1e-3
        Adam's learning rate (tint's default; the paper's experiments use 0.01 and 500 epochs).
    outputs : {"target", "all"}, default "target"
        Preserve the target's score, or every output of the model.
    seed : int or None, default 0
        Seeds g_θ's initialisation, per input (``(seed, row)``).
    baseline : None, float or array (call option)
        b: the input to g_θ is x − b; with ``perturbation="baseline"`` the replacement;
        in deletion mode the scores to reach are f(b). Zeros by default.
    """

    stochastic = True

    def __init__(self, model, *, mode: str = "preservation", perturbation: str = "gru", hidden_size: int | None = None,
                 lambda_1: float = 1.0, lambda_2: float = 1.0, epochs: int = 100, lr: float = 1e-3,
                 outputs: str = "target", seed: int | None = 0, **kwargs):
        super().__init__(model, epochs=epochs, lr=lr, outputs=outputs, **kwargs)
        self.mode = check_choice(mode, "mode", ("preservation", "deletion"))
        self.perturbation = check_choice(perturbation, "perturbation", ("gru", "baseline"))
        self.hidden_size = None if hidden_size is None else check_positive_int(hidden_size, "hidden_size")
        self.lambda_1 = _positive_float(lambda_1, "lambda_1", allow_zero=True)
        self.lambda_2 = _positive_float(lambda_2, "lambda_2", allow_zero=True)
        self.seed = seed

    def params(self):
        return {**super().params(), "mode": self.mode, "perturbation": self.perturbation,
                "hidden_size": self.hidden_size, "lambda_1": self.lambda_1, "lambda_2": self.lambda_2,
                "seed": self.seed}

    def _terms(self, adapter, x, base, mask, net, ref, target):
        """Per-input (fit, mask_l1, perturbation_l1) at the current parameters."""
        m = mask.clamp(0, 1)
        g = net(x - base) if net is not None else base
        if self.mode == "preservation":
            xt = x * m + g * (1 - m)
            mask_l1 = self.lambda_1 * mask.abs().mean((1, 2))
        else:
            xt = x * (1 - m) + g * m
            mask_l1 = self.lambda_1 * (1 - mask).abs().mean((1, 2))
        pert_l1 = self.lambda_2 * g.abs().mean((1, 2)) if net is not None else torch.zeros_like(mask_l1)
        fit = ((self._select(adapter.forward(xt), target) - ref) ** 2).mean(1)
        return fit, mask_l1, pert_l1

    def _fit(self, x, base, scores, target, index, state):
        adapter, call = state.adapter, state.call
        if self.mode == "preservation":
            ref = self._select(scores, target)
        else:
            with torch.no_grad():
                ref = self._select(adapter.forward(base), target)
        mask = torch.full_like(x, 0.5).requires_grad_(True)
        net = None
        params = [mask]
        if self.perturbation == "gru":
            gens = [call.torch_generator(int(i)) for i in index]
            net = RowGRU(len(x), x.shape[1], self.hidden_size or x.shape[1], gens, x.dtype, x.device)
            params += net.parameters()
        opt = torch.optim.Adam(params, lr=self.lr)
        for _ in range(self.epochs):
            opt.zero_grad(set_to_none=True)
            fit, mask_l1, pert_l1 = self._terms(adapter, x, base, mask, net, ref, target)
            _backward((fit + mask_l1 + pert_l1).sum())
            opt.step()
        with torch.no_grad():
            fit, mask_l1, pert_l1 = self._terms(adapter, x, base, mask, net, ref, target)
        extras = {"loss": _cpu(fit + mask_l1 + pert_l1), "fit": _cpu(fit), "mask_l1": _cpu(mask_l1),
                  "perturbation_l1": _cpu(pert_l1)}
        return mask.detach().clamp(0, 1), extras


@register("dynamask", "dyna_mask")
class Dynamask(_LearnedMask):
    """Dynamic masks with a fixed perturbation operator (Crabbé & van der Schaar 2021,
    arXiv:2106.05303).

    See the module docstring for the objective and the operators. Returns the mask (N, C,
    T) in [0, 1] of the best area for each input; ``extras``: ``keep_ratio`` (that area),
    ``error`` (the squared score difference), ``area_loss`` (‖sort(m) − r_a‖² / CT),
    ``time_loss`` (mean |m_{t+1} − m_t|) and ``loss`` (the objective with the final λ_a).

    Parameters
    ----------
    perturbation : str, default "gaussian_blur"
        ``gaussian_blur``, ``fade_moving_average`` (tint's default), ``fade_moving_average_window``
        or ``fade_reference`` (towards the ``baseline``).
    keep_ratio : float or sequence of floats, default 0.5
        The areas a (fractions of the cells kept); one mask is fitted for each.
    sigma_max : float, default 2.0
        Widest blur (gaussian_blur).
    window_size : int, default 2
        Half-width of the moving average (fade_moving_average_window).
    size_reg_factor_init : float, default 0.5
        λ_a at the first epoch.
    size_reg_factor_dilation : float, default 100
        λ_a at the last epoch over λ_a at the first.
    time_reg_factor : float, default 0.0
        λ_c, the weight of the time-smoothness term.
    deletion : bool, default False
        Deletion mode: the mask marks the cells whose removal changes the score most.
    epochs : int, default 100
    lr : float, default 1e-3
        Adam's steps and learning rate (tint's defaults).
    outputs : {"target", "all"}, default "target"
        Preserve the target's score, or every output (tint's ``MaskNet`` fits all outputs).
    baseline : None, float or array (call option)
        The reference of ``fade_reference`` (zeros by default).
    """

    stochastic = False

    def __init__(self, model, *, perturbation: str = "gaussian_blur", keep_ratio=0.5, sigma_max: float = 2.0,
                 window_size: int = 2, size_reg_factor_init: float = 0.5, size_reg_factor_dilation: float = 100.0,
                 time_reg_factor: float = 0.0, deletion: bool = False, epochs: int = 100, lr: float = 1e-3,
                 outputs: str = "target", **kwargs):
        super().__init__(model, epochs=epochs, lr=lr, outputs=outputs, **kwargs)
        self.perturbation = check_choice(perturbation, "perturbation", PERTURBATIONS)
        ratios = [keep_ratio] if np.ndim(keep_ratio) == 0 else list(keep_ratio)
        if not ratios:
            raise ValueError("keep_ratio must hold at least one area")
        self.keep_ratio = []
        for r in ratios:
            r = _positive_float(r, "keep_ratio", allow_zero=True)
            if r > 1:
                raise ValueError(f"keep_ratio values must lie in [0, 1], got {r!r}")
            self.keep_ratio.append(r)
        self.sigma_max = _positive_float(sigma_max, "sigma_max")
        self.window_size = check_positive_int(window_size, "window_size", minimum=0)
        self.size_reg_factor_init = _positive_float(size_reg_factor_init, "size_reg_factor_init", allow_zero=True)
        self.size_reg_factor_dilation = _positive_float(size_reg_factor_dilation, "size_reg_factor_dilation")
        self.time_reg_factor = _positive_float(time_reg_factor, "time_reg_factor", allow_zero=True)
        self.deletion = bool(deletion)

    def params(self):
        return {**super().params(), "perturbation": self.perturbation, "keep_ratio": list(self.keep_ratio),
                "sigma_max": self.sigma_max, "window_size": self.window_size,
                "size_reg_factor_init": self.size_reg_factor_init,
                "size_reg_factor_dilation": self.size_reg_factor_dilation,
                "time_reg_factor": self.time_reg_factor, "deletion": self.deletion}

    def expansion(self, state):
        return len(self.keep_ratio)

    def _perturb(self, x, m, reference):
        if self.perturbation == "gaussian_blur":
            return gaussian_blur(x, m, self.sigma_max)
        if self.perturbation == "fade_moving_average":
            return fade_moving_average(x, m)
        if self.perturbation == "fade_moving_average_window":
            return fade_moving_average_window(x, m, self.window_size)
        return fade_reference(x, m, reference)

    def _fit(self, x, base, scores, target, index, state):
        adapter = state.adapter
        n, C, T = x.shape
        R = len(self.keep_ratio)
        ref = self._select(scores, target)[:, None]  # (n, 1, K')
        ref_sorted = torch.zeros(R, C * T, dtype=x.dtype, device=x.device)  # r_a: zeros, then ones
        for k, a in enumerate(self.keep_ratio):
            ref_sorted[k, int((1.0 - a) * C * T):] = 1.0
        xr = x[:, None].expand(n, R, C, T).reshape(n * R, C, T)
        br = base[:, None].expand(n, R, C, T).reshape(n * R, C, T)
        tr = target.repeat_interleave(R)
        sign = -1.0 if self.deletion else 1.0

        def terms(mask):
            m = 1 - mask if self.deletion else mask
            y = self._select(adapter.forward(self._perturb(xr, m.reshape(n * R, C, T), br)), tr).reshape(n, R, -1)
            error = ((y - ref) ** 2).mean(-1)  # (n, R)
            # sorted as tint sorts, rows of (T, C) cells: every cell starts tied at 0.5 and the order the
            # sort leaves ties in decides which cells the regulariser pulls down first
            flat = mask.transpose(-1, -2).contiguous().reshape(n * R, T * C)
            area = ((ref_sorted - flat.sort(-1).values.reshape(n, R, -1)) ** 2).mean(-1)
            # the step pairs (t, t+1) for t < T − 2, as the authors' code and tint (the last pair is left out)
            smooth = ((mask[..., 1:T - 1] - mask[..., :T - 2]).abs().mean((-2, -1)) if T > 2
                      else torch.zeros_like(area))
            return error, area, smooth

        mask = torch.full((n, R, C, T), 0.5, dtype=x.dtype, device=x.device, requires_grad=True)
        opt = torch.optim.Adam([mask], lr=self.lr)
        factor = self.size_reg_factor_init
        growth = math.exp(math.log(self.size_reg_factor_dilation) / self.epochs)
        for _ in range(self.epochs):
            opt.zero_grad(set_to_none=True)
            error, area, smooth = terms(mask)
            loss = sign * error + factor * area
            if self.time_reg_factor > 0:
                loss = loss + self.time_reg_factor * smooth
            _backward(loss.sum())
            opt.step()
            with torch.no_grad():
                mask.clamp_(0, 1)
            factor *= growth
        with torch.no_grad():
            error, area, smooth = terms(mask)
            loss = sign * error + factor * area + self.time_reg_factor * smooth
            best = (sign * error).argmin(1)  # per input: the area whose mask fits best
            rows = torch.arange(n, device=x.device)
            chosen = mask[rows, best]
            values = 1 - chosen if self.deletion else chosen
        ratios = np.asarray(self.keep_ratio)[_cpu(best)]
        extras = {"keep_ratio": ratios, "error": _cpu(error[rows, best]), "area_loss": _cpu(area[rows, best]),
                  "time_loss": _cpu(smooth[rows, best]), "loss": _cpu(loss[rows, best])}
        return values, extras
