"""Learned temporal masks (issue 16, item 1) against tint (time-interpret): ExtremalMask and
Dynamask on the same model, inputs and hyper-parameters, tint run through its own
pytorch-lightning Trainer (no logger, checkpoints or progress bar, one batch per epoch).

The model is a small 1-D CNN classifier (untrained: the optimisation, not the accuracy, is
timed); tint gets it as a function of its (N, T, C) layout. ExtremalMask uses its learned
perturbation (tint: ``RNN(gru, bidirectional, hidden=C)`` + ``MLP([2C, C])``, shared by the
batch; lumos: one per input). tint's ``MaskNet`` adds Dynamask's regularisers in
``training_step_end``, a hook pytorch-lightning >= 2 no longer calls; it is timed with the
regularisers restored in ``training_step`` (the computation tint means), which also makes
the masks comparable. Agreement: ``max abs diff`` / ``rel diff`` of the masks, and their
Pearson correlation in the note (the optimisers are not identical — lumos sums the
per-input objectives, tint averages them over the batch, and Adam's ε sees the scale).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

FAMILY = "temporal_masks"
EPOCHS = 100  # tint's default Trainer(max_epochs=100)
REPEATS = 3  # a tint run takes 10-60 s here: median of 3 interleaved repeats


def _peer() -> str:
    from importlib.metadata import version

    return f"tint {version('time-interpret')}"


def _quiet():
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning")
    warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LitLogger|litlogger).*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _trainer(h, epochs: int):
    from pytorch_lightning import Trainer

    return Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                   enable_model_summary=False, accelerator="gpu" if h.device else "cpu", devices=1)


def _setting(n: int, channels: int, times: int, seed: int = 0):
    from lumos.models import CNN1d

    torch.manual_seed(seed)
    model = CNN1d(channels, 2, channels=(16, 16), kernel_size=5).eval()
    x = np.random.default_rng(seed).normal(size=(n, channels, times)).astype(np.float32)
    return model, x


def _agreement(stats: dict):
    def agree(ours, theirs):
        a = (ours.values if hasattr(ours, "values") else np.asarray(ours)).astype(np.float64)
        b = np.asarray(theirs, dtype=np.float64)
        stats["corr"] = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        diff = float(np.abs(a - b).max())
        return diff, diff / max(float(np.abs(b).max()), 1e-30)

    return agree


def _note(row, text: str) -> None:
    row.note = f"{row.note}; {text}" if row.note else text
    print(f"  {row.name} ({row.setting}): {text}", flush=True)


def bench_extremal_mask(h, n: int, channels: int, times: int, epochs: int = EPOCHS):
    from tint.attr import ExtremalMask as TintExtremalMask
    from tint.attr.models import ExtremalMaskNet
    from tint.models import MLP, RNN

    from lumos.methods.temporal.masks import ExtremalMask

    model, x = _setting(n, channels, times)
    model = h.to(model)
    xt = h.to(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))))
    fwd = lambda z: model(z.transpose(1, 2))  # noqa: E731
    target = 0

    def ours():
        return ExtremalMask(model, epochs=epochs, device=h.device).explain(x, target=target)

    def peer():
        torch.manual_seed(0)
        g = torch.nn.Sequential(RNN(channels, rnn="gru", hidden_size=channels, bidirectional=True),
                                MLP([2 * channels, channels]))
        net = ExtremalMaskNet(forward_func=fwd, model=g, lr=1e-3)
        out = TintExtremalMask(fwd).attribute(xt, target=target, trainer=_trainer(h, epochs), mask_net=net,
                                              batch_size=n)
        return out.transpose(1, 2).cpu().numpy()

    stats = {}
    row = h.compare(FAMILY, "extremal_mask", ours, peer, _peer(),
                    setting=f"N={n}, C={channels}, T={times}, {epochs} epochs, GRU g_θ, CNN1d",
                    max_ratio=0.5, repeats=min(h.repeats, REPEATS), agreement=_agreement(stats))
    _note(row, f"mask corr {stats['corr']:.3f} (tint: one g_θ for the batch, lumos: one per input)")


def bench_dynamask(h, n: int, channels: int, times: int, epochs: int = EPOCHS):
    from tint.attr import DynaMask
    from tint.attr.models import MaskNet

    from lumos.methods.temporal.masks import Dynamask

    class Regularised(MaskNet):
        def training_step(self, batch, batch_idx):
            return self.net.regularisation(self.step(batch=batch, batch_idx=batch_idx, stage="train"))

    model, x = _setting(n, channels, times)
    model = h.to(model)
    xt = h.to(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))))
    fwd = lambda z: model(z.transpose(1, 2))  # noqa: E731
    options = dict(perturbation="gaussian_blur", keep_ratio=[0.25, 0.3, 0.35], time_reg_factor=1.0)

    def ours():
        return Dynamask(model, epochs=epochs, outputs="all", device=h.device, **options).explain(x)

    def peer():
        net = Regularised(forward_func=fwd, **options)
        out, _ = DynaMask(fwd).attribute(xt, trainer=_trainer(h, epochs), mask_net=net, batch_size=n,
                                         return_best_ratio=True)
        return out.transpose(1, 2).cpu().numpy()

    stats = {}
    row = h.compare(FAMILY, "dynamask", ours, peer, _peer(),
                    setting=f"N={n}, C={channels}, T={times}, {epochs} epochs, blur, 3 areas, CNN1d",
                    max_ratio=0.5, repeats=min(h.repeats, REPEATS), agreement=_agreement(stats))
    _note(row, f"mask corr {stats['corr']:.3f}; tint picks one area for the batch, lumos one per input; "
               "tint timed with its regularisers restored")


def run(h):
    try:
        import tint.attr  # noqa: F401
    except ImportError as err:
        print(f"temporal_masks: tint is not installed ({err}); run benchmarks/install_peers.sh")
        return
    _quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores; the per-step GRU and mask updates are small ops
    try:
        bench_extremal_mask(h, 32, 3, 100)  # tint's HMM experiment's shape (3 features), 100 steps
        bench_dynamask(h, 32, 3, 100)
        bench_extremal_mask(h, 16, 12, 250)  # a 1 s 12-lead ECG at 250 Hz
        bench_dynamask(h, 16, 12, 250, epochs=10)  # tint's T x T blur kernel: ~5 s per epoch here
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import argparse

    from benchmarks.harness import Harness

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    run(Harness(quick=args.quick, device=args.device))
