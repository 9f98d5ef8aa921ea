"""DeepLIFT family against captum: DeepLift (zero reference), DeepLiftShap (10 background
rows) and GradientShap (50 samples, 10 background rows) on the breast-cancer MLP (100 rows)
and the MNIST CNN (256 images), set up as in bench_gradient.

Agreement: captum 0.9 loses the rule of a ReLU whose output feeds a MaxPool (captum issue
#1104, fixed upstream by PR #1843), and the MNIST CNN has that pattern; captum is timed on
the network as it is (what a user runs) and the agreement is measured against captum on
the same network with a copy between those modules (same outputs, every rule applied).
The note gives captum's own summation-to-delta error on the unmodified network.
GradientShap is timed with each library's own draws; agreement replays captum's draws into
lumos through ``draws=``. On MNIST, float32 agreement is limited by units whose difference
from the reference is a rounding error (identical background patches: Δy/Δx of two
rounding errors, which depends on the batch a row shares in either library, and ReLU kinks
for GradientShap's gradients); the note gives the agreement of both libraries run in float64
on the same inputs, which isolates the definitions from float32 rounding.

Floors (benchmarks/floors.py): one forward + backward pass over the 2N rows (inputs and
references) for DeepLift, over the 2·N·B rows of the (input, reference) pairs for
DeepLiftShap, and over the N x 50 interpolated rows for GradientShap, at the fastest of a
few chunk sizes (lumos's own chunk among them)."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch import nn

from benchmarks import floors
from benchmarks.bench_gradient import setups
from lumos.core.batching import RowBudget
from lumos.data import load_breast_cancer, load_mnist
from lumos.methods.gradient import DeepLift, DeepLiftShap, GradientShap

FAMILY = "deeplift"
N_BACKGROUND = 10
N_SAMPLES = 50


class Copy(nn.Module):
    def forward(self, x):
        return x.clone()


def decoupled(model: nn.Module) -> nn.Module:
    """``model`` with a copy between adjacent ReLU/MaxPool modules (same outputs): captum
    0.9 then applies the rule of both (issue #1104)."""
    hooked = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d)
    model = copy.deepcopy(model)
    for m in list(model.modules()):
        if isinstance(m, nn.Sequential):
            layers = []
            for i, layer in enumerate(m):
                layers.append(layer)
                if i + 1 < len(m) and isinstance(layer, hooked) and isinstance(m[i + 1], hooked):
                    layers.append(Copy())
            m._modules.clear()
            for i, layer in enumerate(layers):
                m.add_module(str(i), layer)
    return model


def backgrounds():
    bc = load_breast_cancer()
    out = {30: bc.X_train[:N_BACKGROUND]}
    try:
        out[784] = load_mnist().X_train[-N_BACKGROUND:]
    except FileNotFoundError:
        pass
    return out


def agreement(ref: np.ndarray):
    def compare(lumos_out, _peer_out):
        diff = float(np.abs(lumos_out.values - ref).max())
        return diff, diff / float(np.abs(ref).max())
    return compare


def float64_note(row, lumos_fn, peer_fn) -> None:
    """Append the agreement of ``lumos_fn(dtype)`` and ``peer_fn(dtype)`` in float64."""
    if row is None:  # not asked for (benchmarks.run --only)
        return
    ours, peer = lumos_fn(torch.float64), peer_fn(torch.float64)
    rel = float(np.abs(ours - peer).max() / np.abs(peer).max())
    row.note = f"{row.note}; float64 rel diff {rel:.1e}" if row.note else f"float64 rel diff {rel:.1e}"


def run(h):
    from captum.attr import DeepLift as CDL, DeepLiftShap as CDLS, GradientShap as CGS

    warnings.filterwarnings("ignore", message=r"(?s).*Setting forward, backward hooks")
    warnings.filterwarnings("ignore", message=r".*required_grads has been set automatically")
    dev = h.device
    bgs = backgrounds()
    for setting, model, x in setups():
        model = h.to(model.eval())
        xt = h.to(torch.as_tensor(x))
        bg = bgs[x[0].size]
        bgt = h.to(torch.as_tensor(bg))
        target = model(xt).argmax(1).detach()
        tn = target.cpu().numpy()
        fixed = decoupled(model)
        lumos_rows = RowBudget().rows(x[0].size, "backward")
        fast = x[0].size < 100
        rows = np.arange(len(x))

        # -- DeepLift, zero reference ----------------------------------------------------
        pair = torch.cat([xt, torch.zeros_like(xt)])
        dl_floor = floors.gradient_floor(model, pair, torch.cat([target, target]), [lumos_rows])
        ref = CDL(fixed).attribute(xt, baselines=0.0, target=target).detach().cpu().numpy()
        _, own = CDL(copy.deepcopy(model)).attribute(xt, baselines=0.0, target=target, return_convergence_delta=True)
        lumos_dl = DeepLift(model, device=dev).explain(x, target=tn)
        change = np.abs(lumos_dl.prediction[rows, tn] - lumos_dl.base_value).max()
        h.compare(FAMILY, "DeepLift (zero reference)", lambda: DeepLift(model, device=dev).explain(x, target=tn),
                  lambda: CDL(model).attribute(xt, baselines=0.0, target=target), "captum", setting, max_ratio=1.0,
                  agreement=agreement(ref), repeats=31 if fast else None, floor_fn=dl_floor,
                  note=f"lumos max |delta| / max |f(x) - f(x')| {np.abs(lumos_dl.delta).max() / change:.1e}; "
                       f"captum on the unmodified network {float(own.abs().max()) / change:.1e}")

        # -- DeepLiftShap, 10 background rows -------------------------------------------
        n_pairs = len(x) * len(bg)
        xx = xt.repeat_interleave(len(bg), 0)
        bb = bgt.repeat(len(x), *([1] * (x.ndim - 1)))
        tt = target.repeat_interleave(len(bg))
        dls_floor = floors.gradient_floor(model, torch.cat([xx, bb]), torch.cat([tt, tt]), [lumos_rows])
        ref = CDLS(fixed).attribute(xt, baselines=bgt, target=target).detach().cpu().numpy()
        row = h.compare(FAMILY, f"DeepLiftShap ({len(bg)} background rows)",
                        lambda: DeepLiftShap(model, background=bg, device=dev).explain(x, target=tn),
                        lambda: CDLS(model).attribute(xt, baselines=bgt, target=target), "captum", setting,
                        max_ratio=1.0, agreement=agreement(ref), repeats=15 if fast else None, floor_fn=dls_floor,
                        note=f"{2 * n_pairs:,} rows (inputs and references of {n_pairs:,} pairs)")
        if not fast:
            float64_note(row, lambda d: DeepLiftShap(copy.deepcopy(model).to(d), background=bg.astype(np.float64),
                                                     device=dev).explain(x.astype(np.float64), target=tn).values,
                         lambda d: CDLS(copy.deepcopy(fixed).to(d)).attribute(xt.to(d), baselines=bgt.to(d),
                                                                             target=target).detach().cpu().numpy())

        # -- GradientShap, 50 samples ---------------------------------------------------
        gs_floor = floors.expansion_floor(model, xt, target, N_SAMPLES, "ig", extra_chunks=[lumos_rows])

        def captum_gs():
            np.random.seed(0)
            torch.manual_seed(0)
            return CGS(model).attribute(xt, baselines=bgt, target=target, n_samples=N_SAMPLES)

        def replayed(dtype=torch.float32):
            """lumos given the draws captum makes after the same seeding (numpy: baseline
            rows, then alphas; captum's zero noise comes from torch and changes nothing)."""
            np.random.seed(0)
            index = np.random.choice(len(bg), len(x) * N_SAMPLES)
            alpha = np.random.uniform(0.0, 1.0, len(x) * N_SAMPLES)
            draws = (index.reshape(len(x), N_SAMPLES), alpha.reshape(len(x), N_SAMPLES), None)
            npd = np.float64 if dtype == torch.float64 else np.float32
            return GradientShap(copy.deepcopy(model).to(dtype), background=bg.astype(npd), n_samples=N_SAMPLES,
                                device=dev).explain(x.astype(npd), target=tn, draws=draws).values

        def same_draws(lumos_out, captum_out):
            ours, peer = replayed(), captum_out.detach().cpu().numpy()
            diff = float(np.abs(ours - peer).max())
            return diff, diff / float(np.abs(peer).max())

        def captum_gs_in(dtype):
            np.random.seed(0)
            torch.manual_seed(0)
            return CGS(copy.deepcopy(model).to(dtype)).attribute(xt.to(dtype), baselines=bgt.to(dtype), target=target,
                                                                n_samples=N_SAMPLES).detach().cpu().numpy()

        def lumos_gs():
            return GradientShap(model, background=bg, n_samples=N_SAMPLES, device=dev).explain(x, target=tn)

        row = h.compare(FAMILY, f"GradientShap ({N_SAMPLES} samples, {len(bg)} background rows)", lumos_gs,
                        captum_gs, "captum", setting, max_ratio=1.0, agreement=same_draws,
                        repeats=15 if fast else None, floor_fn=gs_floor, note="agreement with captum's draws replayed")
        if not fast:
            float64_note(row, replayed, captum_gs_in)
