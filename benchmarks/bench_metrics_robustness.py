"""Robustness, complexity, localisation and axiom metrics (#18 items 2 and 4) against
Quantus 0.6.0 on the same work: the MNIST LeNet (benchmarks.mnist_cnn), the first N test
images, lumos's signed Saliency as the explainer of both (handed to Quantus as its
``explain_func``), the same attributions and the same noise (replayed into Quantus, see
benchmarks/quantus_robustness_reference.py), normalisation per input in both, one Quantus
batch of N and ``batch_size=N`` rows per model call in lumos (as Quantus's batch; the
default RowBudget, core/batching.py, sizes LeNet forward calls at 167 rows). Agreement: max relative difference over the inputs both score (Quantus's NaN
inputs left out: it drops an input when any copy changes its class, lumos only the copy).
Target lumos/Quantus <= 0.5, agreement <= 1e-5.

Floor (benchmarks/floors.py): the model passes each definition needs, as one plain PyTorch
loop at its fastest chunk size: forward + backward to the input over the inputs and their
copies for continuity, which explains x again; the Lipschitz estimate and RIS/ROS/RRS are
given Phi(x) as Quantus is (``attributions=a``, Quantus's ``a_batch``), so forward + backward
over the copies alone (the explainer's forward pass also gives their scores, and the layer
outputs through hooks, so ROS/RRS need no other pass) and, for RIS/ROS/RRS, a forward pass
over x (its prediction, logits and layer outputs); forward passes over the inputs
(consistency), the inputs and the pixel copies that differ from them (non-sensitivity: a pixel
already at the baseline leaves the input as it is) or x and the zero baseline (completeness);
no floor for the metrics computed from the attributions alone.

A last row (no peer) is the relevance budget of LRP-eps and Deep Taylor on the same images:
the share of f(x) the rules absorb beside the completeness error left once it is counted."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_metrics_faithfulness import floor_chunks
from benchmarks.floors import Floor, forward_floor, gradient_floor
from benchmarks.harness import one_thread
from benchmarks.mnist_cnn import load_mnist, trained_cnn
from benchmarks.quantus_robustness_reference import PER_INPUT, Replay, import_quantus
from lumos import LRP, IntegratedGradients, Saliency
from lumos.methods.relevance.deep_taylor import DeepTaylor
from lumos.metrics import (attribution_localisation, completeness_error, consistency, continuity,
                           effective_complexity, focus, local_lipschitz_estimate, non_sensitivity,
                           relative_input_stability, relative_output_stability, relative_representation_stability,
                           relevance_budget, top_k_intersection)

FAMILY = "metrics_robustness"
TARGET = 0.5


def agreement(ours, theirs):
    o = np.asarray(ours, dtype=np.float64).reshape(-1)
    t = np.asarray([np.nan if v is None else v for v in np.asarray(theirs, dtype=object).reshape(-1)], dtype=np.float64)
    kept = np.isfinite(t) & np.isfinite(o)
    if not kept.any():
        return float("nan"), float("nan")
    diff = np.abs(o[kept] - t[kept])
    return float(diff.max()), float((diff / np.maximum(np.abs(t[kept]), 1e-12)).max())


def _run(h):
    quantus = import_quantus()
    model = trained_cnn()
    n = 64 if h.quick else 256
    _, _, x, y = load_mnist(n)
    sal = Saliency(model, absolute=False, batch_size=n)  # n rows per model call, as Quantus's batch of n

    def qexp(model, inputs, targets, **kw):
        return sal.explain(np.asarray(inputs, dtype=np.float32), target=np.asarray(targets)).values

    a = sal.explain(x, target=y).values
    common = dict(model=model, x_batch=x, y_batch=y, batch_size=n)
    setting = f"LeNet, {n} MNIST, saliency"
    samples = 10

    def noise(kind, lo, hi, seed=0):
        rng = np.random.default_rng(seed)
        size = (n, samples) + x.shape[1:]
        return rng.uniform(lo, hi, size) if kind == "uniform" else rng.normal(lo, hi, size)

    gauss, unif = noise("gaussian", 0.0, 0.1), noise("uniform", 0.02, 0.2)
    mask = np.zeros_like(x)
    mask[:, :, 9:19, 9:19] = 1
    tiles = np.random.default_rng(0).random((n, 4)) < 0.5
    tiles[:, 0] = True
    rows = [
        ("effective_complexity", lambda: effective_complexity(a, eps=1e-2),
         lambda: quantus.EffectiveComplexity(eps=1e-2, normalise_func_kwargs=PER_INPUT, disable_warnings=True)(
             a_batch=a, **common), "eps 1e-2"),
        ("local_lipschitz_estimate",
         lambda: local_lipschitz_estimate(sal, model, x, y, n_samples=samples, seed=0, batch_size=n, attributions=a),
         lambda: quantus.LocalLipschitzEstimate(nr_samples=samples, perturb_func=Replay(gauss),
                                                normalise_func_kwargs=PER_INPUT, disable_warnings=True)(
             a_batch=a, explain_func=qexp, **common), f"{samples} Gaussian copies, std 0.1"),
        ("continuity", lambda: continuity(sal, model, x, y, n_steps=28, batch_size=n),
         lambda: quantus.Continuity(nr_steps=28, normalise_func_kwargs=PER_INPUT, disable_warnings=True)(
             a_batch=a, explain_func=qexp, **common), "28 translations"),
    ]
    for name, fn, cls in (("relative_input_stability", relative_input_stability, quantus.RelativeInputStability),
                          ("relative_output_stability", relative_output_stability, quantus.RelativeOutputStability),
                          ("relative_representation_stability", relative_representation_stability,
                           quantus.RelativeRepresentationStability)):
        rows.append((name, lambda fn=fn: fn(sal, model, x, y, n_samples=samples, seed=0, batch_size=n, attributions=a),
                     lambda cls=cls: cls(nr_samples=samples, perturb_func=Replay(unif), disable_warnings=True)(
                         a_batch=a, explain_func=qexp, **common), f"{samples} copies U[0.02, 0.2)"))
    rows += [
        ("consistency", lambda: consistency(model, x, a, discretise_by="first_n_sign"),
         lambda: quantus.Consistency(normalise_func_kwargs=PER_INPUT, disable_warnings=True)(a_batch=a, **common),
         "Quantus's top_n_sign (first 5 signs)"),
        ("non_sensitivity", lambda: non_sensitivity(model, x, a, y, eps=1e-5, batch_size=n),
         lambda: quantus.NonSensitivity(eps=1e-5, perturb_baseline=0.0, normalise_func_kwargs=PER_INPUT,
                                        disable_warnings=True)(a_batch=a, **common), "784 pixels to 0, softmax"),
        ("focus", lambda: focus(a, tiles),
         lambda: quantus.Focus(disable_warnings=True)(a_batch=a, custom_batch=[tuple(t) for t in tiles.astype(int)],
                                                      **common), "random 2x2 tiles"),
        ("top_k_intersection", lambda: top_k_intersection(a, mask, k=100),
         lambda: quantus.TopKIntersection(k=100, disable_warnings=True)(a_batch=a, s_batch=mask, **common),
         "k 100, central 10x10 mask"),
        ("attribution_localisation", lambda: attribution_localisation(a, mask),
         lambda: quantus.AttributionLocalisation(disable_warnings=True)(a_batch=a, s_batch=mask, **common),
         "abs(a), central 10x10 mask"),
    ]
    ig = IntegratedGradients(model, n_steps=32).explain(x, target=y)
    captured = []

    def quantus_completeness():
        captured.clear()
        quantus.Completeness(normalise=False, perturb_baseline=0.0, disable_warnings=True,
                             output_func=lambda d: (captured.append(np.asarray(d)), d)[1])(a_batch=ig.values, **common)
        return captured[0]

    rows.append(("completeness (f(x) - f(0) of IG)",
                 lambda: ig.values.reshape(n, -1).sum(1) - completeness_error(model, x, ig, y, absolute=False),
                 quantus_completeness, "Quantus returns only sum == f(x) - f(0); compared: f(x) - f(0)"))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def repeated(n_rows):
        idx = torch.arange(n_rows) % n
        return xt[idx], yt[idx]

    def explainer_floor(copies):
        return gradient_floor(model, *repeated(n * (copies + 1)), sizes=floor_chunks(n * (copies + 1)))

    def copies_floor(copies, with_x):
        """Phi(x) given (a_batch): the copies fwd+bwd, and (``with_x``) the forward over x
        that the prediction-change check and RRS's L(x) need."""
        grad = gradient_floor(model, *repeated(n * copies), sizes=floor_chunks(n * copies))
        if not with_x:
            return grad
        fwd = forward_floor(model, xt, sizes=floor_chunks(n))
        return Floor(lambda: (fwd(), grad()), f"{grad.label} + {fwd.label}")

    def model_floor(n_rows):
        return forward_floor(model, repeated(n_rows)[0], sizes=floor_chunks(n_rows))

    floors = {"local_lipschitz_estimate": lambda: copies_floor(samples, False),
              "continuity": lambda: explainer_floor(28),
              "relative_input_stability": lambda: copies_floor(samples, True),
              "relative_output_stability": lambda: copies_floor(samples, True),
              "relative_representation_stability": lambda: copies_floor(samples, True),
              "consistency": lambda: model_floor(n),
              "non_sensitivity": lambda: model_floor(n + int((x != 0).sum())),
              "completeness (f(x) - f(0) of IG)": lambda: model_floor(2 * n)}
    for name, ours, theirs, what in rows:
        floor = floors[name]() if name in floors else None
        h.compare(FAMILY, name, ours, theirs, "quantus", setting=f"{setting}; {what}", max_ratio=TARGET,
                  repeats=1 if h.quick else 3, agreement=agreement, floor_fn=floor)

    import time

    t0 = time.perf_counter()
    parts = []
    for label, e in (("LRP-eps", LRP(model, "epsilon")), ("Deep Taylor", DeepTaylor(model, input_bounds=(0, 1)))):
        b = relevance_budget(e, model, x, y)
        gap = np.abs(b.f_x - b.total) / np.abs(b.f_x)
        parts.append(f"{label}: mean abs(f - sum R)/abs(f) {gap.mean():.3f}, absorbed (signed mean) "
                     f"{np.mean(b.absorbed / np.abs(b.f_x)):.3f}, error {b.scores.mean():.1e}")
    h.record(FAMILY, "relevance budget (LRP-eps, Deep Taylor)", time.perf_counter() - t0, setting=setting,
             note="; ".join(parts))


# one torch thread for the comparison, the caller's thread count restored afterwards
run = one_thread(_run)
