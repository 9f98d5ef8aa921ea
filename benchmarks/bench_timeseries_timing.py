"""Time ratios lumos / tint of ``lumos bench timeseries``'s gradient methods, measured robustly.

``python -m benchmarks.bench_timeseries_timing [--rounds 5] [--inputs 8]`` ->
``benchmarks/timeseries_tables/timing.md`` (``timing_<inputs>.md`` for other batch sizes).

The benchmark tables time each method once per setting (the fastest of up to 3 runs under
1 s); on the shared 2-core machine the load changes within seconds, so one table's ratio can
be off by 2x either way (the quick table had TCN occlusion at 0.27 in one run and 3.9 in the
next, same code). Here lumos and tint run *interleaved* (lumos, tint, floor, lumos, tint,
floor, ...) on exactly the benchmark's models (the cached weights of the quick scale), inputs,
targets (the prediction, computed outside the timing), baselines, backgrounds and budgets
(:data:`lumos.benchmarks.timeseries.METHOD_OPTIONS`, peers from
:mod:`lumos.benchmarks.timeseries_tint`), one torch thread, and each keeps its fastest round.
The floor is one forward and backward pass of the rows the method differentiates (DeepLIFT:
the 2n inputs and references; IG: n x steps; GradientShap: n x samples) with no hook, no
rule and no bookkeeping, at the fastest of :data:`FLOOR_CHUNKS` rows per call: what neither
library can go below at equal work.

lumos always returns the completeness check (``delta``: Σ attributions − (f(x) − f(x'))),
which needs f(x) and f at the references; captum computes the same check when asked
(``return_convergence_delta=True``). So each row is also timed at equal output: tint with
the check, against the floor plus one forward pass without gradients of the rows the check
needs beyond the differentiated ones (IG: the n inputs and the one baseline; GradientShap:
the n inputs and the background; DeepLIFT: none, its 2n rows are the check's). ``--inputs
64`` times a dataset-sized batch, where lumos's fixed cost per call (~1 ms: the private
model view, input checks, the Explanation) weighs less.
"""
from __future__ import annotations

import argparse
import datetime
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import lumos
from lumos.benchmarks import timeseries as T
from lumos.core.batching import balanced_slices
from lumos.benchmarks.timeseries_tint import PEERS
from lumos.data.synthetic_ts import make_ismail, make_switching_hmm
from lumos.models.temporal import GRUClassifier

OUT = Path(__file__).resolve().parent / "timeseries_tables" / "timing.md"
METHODS = ("deeplift", "integrated_gradients", "gradient_shap")
PERTURBATION = ("occlusion", "augmented_occlusion", "temporal_occlusion", "lime")
"""Timed on the HMM only, with the benchmark's groups (the past, then each channel at the last step)."""


def _ismail(dataset: str, kind: str):
    s = T.SCALES["quick"].ismail
    data = make_ismail(dataset, "gaussian", s["n_train"] + s["n_test"], s["times"], s["features"], seed=0)
    tr, te = data.split(s["n_train"])
    model = T._classifier(kind, tr.X.shape[1], 2)
    T.train(model, tr.X, tr.y, epochs=s["epochs"], lr=1e-3 if kind == "transformer" else 3e-3, seed=0,
            name=f"ismail-{dataset}-{kind}-s0")
    return model, te.X, tr.X, "ismail"


def _hmm(t: int = 150):
    h = T.SCALES["quick"].hmm
    data = make_switching_hmm(h["n_train"] + h["n_test"], h["length"], seed=0)
    tr, te = data.split(h["n_train"])
    model = GRUClassifier(3, 2, hidden=h["hidden"])
    T.train(model, tr.X, tr.y, epochs=h["epochs"], lr=5e-3, seed=0, per_step=True, target_acc=1.01, name="hmm-gru-s0")
    return model, te.X[:, :, : t + 1], tr.X[:, :, : t + 1], "hmm"


SETTINGS = {"HMM GRU(16), prefix of 151 steps": _hmm,
            "Ismail RareFeature TCN": lambda: _ismail("RareFeature", "tcn"),
            "Ismail RareTime LSTM": lambda: _ismail("RareTime", "lstm"),
            "Ismail PositionalTime Transformer": lambda: _ismail("PositionalTime", "transformer")}


def _context(kind, x, train_x):
    b = T.SCALES["quick"].budget
    c, t = x.shape[1:]
    bg = train_x[np.random.default_rng(0).permutation(len(train_x))[:16]]
    return T.Context(kind=kind, length=t, seed=0, budget=b, baseline=train_x.mean(0).astype(np.float32),
                     background=bg, x_train=train_x, groups=None, window=max(1, t // b["time_windows"]),
                     cheap_model=False, perturb_groups=None)


FLOOR_CHUNKS = (None, 128, 256, 512)
"""Rows per call the floor is timed at (None: all rows in one call); the fastest counts (an LSTM
runs fastest at 128 rows per call, a GRU at 512, the convolutional and attention models in one)."""


def _copies(name, opts) -> int:
    """Rows the method differentiates per input (DeepLIFT: the input and its reference)."""
    return {"deeplift": 2, "integrated_gradients": opts.get("n_steps", 1), "gradient_shap": opts.get("n_samples", 1)}[name]


def _floor(model, x, target, name, opts, check=False, chunk=None):
    """The floor (see the module docstring) in calls of ``chunk`` rows (None: one call);
    ``check``: plus the completeness check's rows."""
    copies = _copies(name, opts)
    rows = torch.as_tensor(np.repeat(x, copies, axis=0))
    tgt = target.repeat_interleave(copies).view(-1, 1)
    extra = {"deeplift": None, "integrated_gradients": np.zeros_like(x[:1]),
             "gradient_shap": np.asarray(opts.get("background", x[:0]), dtype=x.dtype)}[name]
    ends = None if not check or extra is None else torch.as_tensor(np.concatenate([x, extra]))

    parts = [slice(0, len(rows))] if chunk is None else list(balanced_slices(len(rows), chunk))

    def run():
        for sl in parts:
            b = rows[sl].clone().requires_grad_(True)
            torch.autograd.grad(model(b).gather(1, tgt[sl]).sum(), b)
        if ends is not None:
            with torch.no_grad():
                model(ends)
    return run


def _hmm_groups(ctx):
    """The HMM benchmark's context of one step (``lumos.benchmarks.timeseries``: the perturbation methods
    see the prefix as the past plus each channel at step t; LIME every cell, as tint's experiment)."""
    import dataclasses

    groups, cells = T.hmm_step_groups(*ctx.x_train.shape[1:])
    return dataclasses.replace(ctx, groups=groups, perturb_groups=groups, window=1, lime_groups=cells)


def _calls(model, fn) -> list[tuple[int, ...]]:
    """The shape of each model call of one call of ``fn`` (a forward pre-hook on the model;
    lumos's private view copies the model's hooks, so it sees lumos's calls too)."""
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    try:
        fn()
    finally:
        handle.remove()
    return seen


def _forward_floor(model, x, calls):
    """The model alone on calls of the shapes ``calls`` (rows of ``x`` tiled, cut to each call's
    length: temporal occlusion calls the model on prefixes), forward without gradients: what a
    perturbation method cannot go below at those calls."""
    batches = [torch.as_tensor(np.resize(x[..., :shape[-1]], shape)) for shape in calls]

    def run():
        with torch.no_grad():
            for batch in batches:
                model(batch)
    return run


def _rechunked(calls, size: int | None) -> list[tuple[int, ...]]:
    """The same rows as ``calls`` (per sample shape, in order of first appearance) in balanced
    calls of at most ``size`` rows (None: one call per shape)."""
    totals: dict[tuple[int, ...], int] = {}
    for shape in calls:
        totals[shape[1:]] = totals.get(shape[1:], 0) + shape[0]
    parts = []
    for sample, rows in totals.items():
        slices = [slice(0, rows)] if size is None else balanced_slices(rows, size)
        parts += [(sl.stop - sl.start, *sample) for sl in slices]
    return parts


def race(fns, rounds: int) -> list[float]:
    for f in fns:
        f()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            start = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inputs", type=int, default=8, help="test inputs per call (tiled when fewer exist)")
    parser.add_argument("--out", default=None, help="default: timeseries_tables/timing.md (8 inputs) or "
                        "timing_<inputs>.md")
    parser.add_argument("--perturbation-only", action="store_true", help="re-run the perturbation section alone; "
                        "the gradient section of the existing table is kept")
    args = parser.parse_args(argv)
    out = Path(args.out or (OUT if args.inputs == 8 else OUT.with_name(f"timing_{args.inputs}.md")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    registry = lumos.list_methods()
    lines = ["# Time per call, lumos / tint, interleaved (benchmarks/bench_timeseries_timing.py)", "",
             f"{args.rounds} interleaved rounds, fastest kept, one torch thread, shared 2-core machine (absolute times "
             "inflated by the load; the ratios are measured side by side). Models: the quick scale's cached "
             f"weights, {args.inputs} test inputs per call; options: the benchmark's. Floor: one forward + backward "
             "of the rows the method differentiates, nothing else, at the fastest of 128 / 256 / 512 / all rows per "
             "call. Equal output (lumos always returns the "
             "completeness check): tint with `return_convergence_delta=True`, and the floor plus one forward "
             "without gradients of the rows the check needs beyond those (see the module docstring).", "",
             "| setting | method | lumos ms | tint ms | floor ms | lumos / tint | floor / tint "
             "| tint + check ms | floor + check ms | lumos / (tint + check) | lumos / (floor + check) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    try:
        for title, make in ({} if args.perturbation_only else SETTINGS).items():
            model, x, train_x, kind = make()
            model.eval()
            x = np.resize(x, (args.inputs, *x.shape[1:])) if args.inputs != len(x) else x
            ctx = _context(kind, x, train_x)
            target = T._predicted(model, x)
            for name in METHODS:
                cls, opts = registry[name], T.METHOD_OPTIONS(name, ctx)

                prepared = T.explainer_options(name, cls, ctx)  # outside the timing, as the peer's opts

                def lum(name=name, cls=cls, prepared=prepared):
                    explainer, call = T.make_explainer(name, cls, model, ctx, prepared)
                    return T._explain(explainer, call, x, target.numpy())

                def peer(name=name, opts=opts):
                    return PEERS[name][1](model, x, target, ctx, opts)

                def peer_check(name=name, opts=opts):
                    return PEERS[name][1](model, x, target, ctx, {**opts, "delta": True})

                n_rows = len(x) * _copies(name, opts)
                chunks = [c for c in FLOOR_CHUNKS if c is None or c < n_rows]
                floors = [_floor(model, x, target, name, opts, check=k, chunk=c) for k in (False, True) for c in chunks]
                lt, pt, pc, *fl = race([lum, peer, peer_check, *floors], args.rounds)
                ft, fc = min(fl[:len(chunks)]), min(fl[len(chunks):])
                lines.append(f"| {title} | {name} | {lt * 1e3:.1f} | {pt * 1e3:.1f} | {ft * 1e3:.1f} | "
                             f"{lt / pt:.2f} | {ft / pt:.2f} | {pc * 1e3:.1f} | {fc * 1e3:.1f} | {lt / pc:.2f} | "
                             f"{lt / fc:.2f} |")
                print(lines[-1], flush=True)
        lines += ["", "## Perturbation methods on the HMM (the benchmark's groups: the past as one group, each channel "
                  "at the last step; LIME: every cell, 25 samples, as tint's experiment)", "",
                  "lumos scores the past as a group of its own (its value enters the whole-prefix faithfulness "
                  "scores), tint's TemporalOcclusion only the last step's cells: the rows columns give each "
                  "library's model rows per call, and *per row* compares the time per model row. Floor: the model "
                  "alone, forward without gradients, on lumos's rows in lumos's call sizes; *best floor*: the same "
                  "rows at the fastest of 128 / 256 / 512 / all rows per call (tint's calls are sized by its own "
                  "loops, e.g. one call per occluded channel over all inputs and samples; "
                  "lumos keeps a recurrent model's forward calls at 256 rows, see `lumos.core.batching`: which size "
                  f"is fastest differs from GRU to GRU). {args.rounds} interleaved rounds, fastest kept"
                  + (f", re-run alone on {datetime.date.today()} (`--perturbation-only`)." if args.perturbation_only
                     else "."), "",
                  "| method | lumos ms | tint ms | lumos / tint | model rows lumos | model rows tint | lumos / tint "
                  "per row | floor ms | lumos / floor | best floor / floor |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        model, x, train_x, kind = _hmm()
        model.eval()
        x = np.resize(x, (args.inputs, *x.shape[1:])) if args.inputs != len(x) else x
        ctx = _hmm_groups(_context(kind, x, train_x))
        target = T._predicted(model, x)
        for name in PERTURBATION:
            cls, opts = registry[name], T.METHOD_OPTIONS(name, ctx)
            prepared = T.explainer_options(name, cls, ctx)

            def lum(name=name, cls=cls, prepared=prepared):
                explainer, call = T.make_explainer(name, cls, model, ctx, prepared)
                return T._explain(explainer, call, x, target.numpy())

            def peer(name=name, opts=opts):
                return PEERS[name][1](model, x, target, ctx, opts)

            calls, peer_rows = _calls(model, lum), sum(c[0] for c in _calls(model, peer))
            rows = sum(c[0] for c in calls)
            best = [_forward_floor(model, x, _rechunked(calls, size)) for size in FLOOR_CHUNKS]
            lt, pt, ft, *bt = race([lum, peer, _forward_floor(model, x, calls), *best], args.rounds)
            lines.append(f"| {name} | {lt * 1e3:.1f} | {pt * 1e3:.1f} | {lt / pt:.2f} | {rows:,} | {peer_rows:,} | "
                         f"{lt / rows / (pt / peer_rows):.2f} | {ft * 1e3:.1f} | {lt / ft:.2f} | {min(bt) / ft:.2f} |")
            print(lines[-1], flush=True)
    finally:
        torch.set_num_threads(threads)
    if args.perturbation_only:  # the kept gradient section, then the new perturbation section
        kept = out.read_text().split("\n## Perturbation methods")[0].rstrip("\n").split("\n")
        start = next(i for i, line in enumerate(lines) if line.startswith("## Perturbation methods")) - 1
        lines = kept + lines[start:]
    out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
