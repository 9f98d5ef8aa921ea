"""Model-agnostic family against shap, lime and scikit-learn (issue 4 targets), and
KernelSHAP's peak memory against its budget (issue 14, item 7).

Tabular comparisons share the model (a small MLP on the 30 breast-cancer features, called as
the same numpy function by both libraries), the data, the background and the budget.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from lumos.data import load_breast_cancer
from lumos.methods.agnostic import (ExactShapley, KernelShap, Lime, PermutationImportance, SamplingShapley,
                                    sklearn_permutations)
from lumos.models.reference import MLP
from lumos.models.train import fit

from benchmarks.harness import one_thread

FAMILY = "agnostic"


def _model(n_features: int, x, y):
    torch.manual_seed(0)
    model = MLP(n_features, 2, hidden=(32,))
    fit(model, x.astype(np.float32), y, epochs=30, lr=1e-2, seed=0)
    model.eval()

    def proba1(z):
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(np.asarray(z, dtype=np.float32))), 1)[:, 1].double().numpy()

    return model, proba1


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def bench_kernel_shap(h, ds, proba1):
    import shap

    bg = shap.kmeans(ds.X_train, 50)
    x = ds.X_test[:20]
    ours = lambda: KernelShap(proba1, n_samples=500, seed=0).explain(  # noqa: E731  default chunking
        x, background=bg.data, background_weights=bg.weights)
    explainer = shap.KernelExplainer(proba1, bg)
    peer = lambda: np.asarray(explainer.shap_values(x, nsamples=500, l1_reg=False, silent=True))  # noqa: E731
    # exact values need 2^30 coalitions: two 20,000-coalition references instead, one from each
    # library, so that neither estimator is judged only against its own kind
    np.random.seed(123)
    references = {
        "lumos-20k": KernelShap(proba1, n_samples=20000, seed=123, batch_size=200000).explain(
            x, background=bg.data, background_weights=bg.weights).values,
        "shap-20k": np.asarray(explainer.shap_values(x, nsamples=20000, l1_reg=False, silent=True)),
    }
    # both estimators are random: mean error over 10 seeds (shap draws from numpy's global
    # generator, seeded here before each call)
    ours_runs = [KernelShap(proba1, n_samples=500, seed=s, batch_size=100000).explain(
        x, background=bg.data, background_weights=bg.weights).values for s in range(10)]
    peer_runs = []
    for s in range(10):
        np.random.seed(s)
        peer_runs.append(peer())
    errors = {k: (np.mean([_rmse(v, ref) for v in ours_runs]), np.mean([_rmse(v, ref) for v in peer_runs]))
              for k, ref in references.items()}
    met = all(el <= ep for el, ep in errors.values())
    row = h.compare(FAMILY, "kernel_shap", ours, peer, "shap.KernelExplainer", repeats=9, max_ratio=0.1,
                    setting="30 features, 20 rows, 50 k-means bg, 500 coalitions",
                    note="RMSE (mean of 10 seeds) lumos / shap vs " + ", vs ".join(
                        f"{k} reference {el:.2e} / {ep:.2e}" for k, (el, ep) in errors.items())
                    + f" ({'met' if met else 'NOT met'}: error no larger)")
    if row is None:  # not asked for (benchmarks.run --only)
        return
    from benchmarks.floors import recorded_rows

    _model_floor(h, "kernel_shap", row, proba1, recorded_rows(lambda f: KernelShap(
        f, n_samples=500, seed=0, batch_size=100000).explain(x, background=bg.data, background_weights=bg.weights),
        proba1))


def _model_floor(h, name, row, proba1, rows, batch_sizes=(10000, 25000, 65536, 100000)):
    """Time the model alone on the rows lumos sends it (recorded from its run: their count,
    values and dtype), in the fastest of several call sizes: no implementation with the same
    budget can be faster, so floor / peer bounds the reachable ratio."""
    n_rows = len(rows)
    times = []
    for batch_size in batch_sizes:
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, n_rows, batch_size):
                proba1(rows[i:i + batch_size])
            times.append(time.perf_counter() - t0)
    floor = min(times)
    h.record(FAMILY, f"{name} model floor", floor, setting=f"the model alone on the same {n_rows:,} rows "
             f"(fastest call size of {', '.join(map(str, batch_sizes))})",
             note=f"floor / peer = {floor / row.peer_s:.2f}: a 10x target needs the peer's overhead "
                  f"to exceed 10x the model's own time, here it is {row.peer_s / floor:.1f}x")


def _top5(values):
    return [frozenset(np.argsort(-np.abs(v))[:5]) for v in values]


def bench_lime(h, ds, proba1):
    from lime.lime_tabular import LimeTabularExplainer

    x = ds.X_test[:20]
    kernel = lambda d, kernel_width: np.exp(-d ** 2 / kernel_width ** 2)  # noqa: E731  lumos kernel, given to lime
    d = x.shape[1]

    def ours(seed=0, share=True):
        return Lime(proba1, n_samples=5000, sampling="tabular", alpha=1.0, seed=seed, batch_size=100000,
                    share_samples=share).explain(x, target=0, training_data=ds.X_train)

    def peer(seed=0):
        lime = LimeTabularExplainer(ds.X_train, discretize_continuous=False, kernel=kernel,
                                    feature_selection="none", random_state=seed)
        out = np.zeros((len(x), d))
        two = lambda z: np.stack([1 - proba1(z), proba1(z)], 1)  # noqa: E731
        for i, row in enumerate(x):
            exp = lime.explain_instance(row, two, labels=(1,), num_features=d, num_samples=5000)
            for j, c in exp.local_exp[1]:
                out[i, j] = c
        return out

    ours_tops = [_top5(ours(s).values) for s in range(10)]
    peer_tops = [_top5(peer(s)) for s in range(10)]
    stable = lambda tops: np.mean([len({t[i] for t in tops}) == 1 for i in range(len(x))])  # noqa: E731
    s_l, s_p = stable(ours_tops), stable(peer_tops)
    h.compare(FAMILY, "lime_tabular", ours, peer, "lime.LimeTabularExplainer", repeats=9, max_ratio=0.1,
              setting="30 features, 20 rows, 5000 samples, same kernel, ridge alpha=1",
              note=f"top-5 identical across 10 seeds: lumos {s_l:.2f}, lime {s_p:.2f} of rows "
                   f"({'met' if s_l >= s_p else 'NOT met'}); diff = sampling noise; the model sees 4,999 rows "
                   f"per call (one perturbation set shared by the 20 rows, drawn from the training "
                   f"statistics as lime does) against lime's 100,000")
    h.compare(FAMILY, "lime_tabular share_samples=False", lambda: ours(share=False), peer,
              "lime.LimeTabularExplainer", repeats=2,
              setting="as above, an independent perturbation set per row (100,000 model rows, as lime)",
              note="the same work as lime; diff = sampling noise")


def bench_pfi(h, ds):
    from sklearn.inspection import permutation_importance
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier((32,), max_iter=500, random_state=0).fit(ds.X_train, ds.y_train)
    x, y = ds.X_test[:100], ds.y_test[:100]
    perms = sklearn_permutations(len(x), 10, 0)
    ours = lambda: PermutationImportance(clf.predict_proba, n_repeats=10, batch_size=40000).explain(  # noqa: E731
        x, y, permutations=perms)
    peer = lambda: permutation_importance(clf, x, y, scoring="accuracy", n_repeats=10, random_state=0)  # noqa: E731
    h.compare(FAMILY, "permutation_importance", ours, peer, "sklearn.inspection", max_ratio=0.5,
              setting="30 features, 100 rows, n_repeats=10, same permutations",
              agreement=lambda a, b: (float(np.abs(a.values - b.importances_mean).max()),
                                      float(np.abs(a.values - b.importances_mean).max() / np.abs(b.importances_mean).max())))


def bench_exact(h, ds):
    x_train = ds.X_train[:, :16].astype(np.float32)
    model, _ = _model(16, x_train, ds.y_train)
    x, bg = ds.X_test[:10, :16].astype(np.float32), x_train[:64]
    w = np.random.default_rng(0).normal(size=(16, 2))
    for name, f in (("MLP 16-32-2 (torch)", model), ("logistic (numpy)", lambda z: z @ w)):
        t0 = time.perf_counter()
        exp = ExactShapley(f, batch_size=65536).explain(x, background=bg)
        dt = time.perf_counter() - t0
        h.record(FAMILY, "exact_shapley", dt, setting=f"d=16, 10 rows, 64 bg, {name}",
                 note=f"2^16 x 64 x 10 = 42M model rows; max |delta| {np.abs(exp.delta).max():.1e}",
                 met="yes" if dt < 5 else "NO")


def bench_sampling_shapley(h, ds):
    """Permutation-sampling Shapley values against captum's ShapleyValueSampling: the same
    torch MLP (logit of class 1), one baseline row (the training mean; captum takes one
    baseline, not a background), 64 permutations each (lumos: 32 antithetic pairs)."""
    from captum.attr import ShapleyValueSampling

    model, _ = _model(30, ds.X_train, ds.y_train)
    x = ds.X_test[:20].astype(np.float32)
    base = ds.X_train.mean(0, keepdims=True).astype(np.float32)
    xt, bt = torch.as_tensor(x), torch.as_tensor(base)
    peer = ShapleyValueSampling(model)

    def ours(seed=0):
        return SamplingShapley(model, n_permutations=64, seed=seed).explain(x, target=1, background=base).values

    def theirs(seed=0):
        torch.manual_seed(seed)
        return peer.attribute(xt, baselines=bt, target=1, n_samples=64, perturbations_per_eval=31)

    reference = SamplingShapley(model, n_permutations=4096, seed=123).explain(x, target=1, background=base).values
    err_l = np.mean([_rmse(ours(s), reference) for s in range(5)])
    err_p = np.mean([_rmse(theirs(s).detach().numpy(), reference) for s in range(5)])
    h.compare(FAMILY, "sampling_shapley", ours, theirs, "captum ShapleyValueSampling", repeats=3,
              setting="MLP 30-32-2, 20 rows, baseline = training mean, 64 permutations",
              note=f"RMSE vs a 4,096-permutation reference, mean of 5 seeds: lumos {err_l:.2e}, captum {err_p:.2e} "
                   "(antithetic pairs); max abs diff = sampling noise")


def bench_lime_image(h):
    """LIME on images against lime's LimeImageExplainer: the same SLIC superpixels (50),
    the same masks distribution, kernel exp(-D²/w²) with w = 0.75·sqrt(G) on the Euclidean
    distance, black for switched-off superpixels, 1,000 samples, softmax of the true class."""
    from lime import lime_image

    from benchmarks.mnist_cnn import load_mnist, trained_cnn
    from lumos.methods.agnostic import superpixel_groups

    model = trained_cnn(verbose=False)
    _, _, x, y = load_mnist(20)
    segments = [superpixel_groups(xi, "slic", 50, seed=0)[0][0] for xi in x]

    def rgb_model(images):  # lime_image passes (n, H, W, 3)
        with torch.no_grad():
            batch = torch.as_tensor(np.ascontiguousarray(images[..., :1].transpose(0, 3, 1, 2)), dtype=torch.float32)
            return torch.softmax(model(batch), 1).numpy()

    def peer():
        out = []
        for xi, seg, t in zip(x, segments, y):
            g = int(seg.max()) + 1
            explainer = lime_image.LimeImageExplainer(kernel_width=0.75 * np.sqrt(g), feature_selection="none",
                                                      kernel=lambda d, kernel_width: np.exp(-d ** 2 / kernel_width ** 2),
                                                      random_state=0)
            e = explainer.explain_instance(np.repeat(xi[0][..., None], 3, 2).astype(np.float64), rgb_model,
                                           labels=(int(t),), top_labels=None, hide_color=0, num_features=g,
                                           num_samples=1000, batch_size=1000, segmentation_fn=lambda img, s=seg: s,
                                           distance_metric="euclidean")
            coef = np.zeros(g)
            for j, c in e.local_exp[int(t)]:
                coef[j] = c
            out.append(coef)
        return out

    ours = Lime(model, n_samples=1000, sampling="mask", output="softmax", n_segments=50, seed=0)
    lumos_fn = lambda: ours.explain(x, target=y, baseline=0.0)  # noqa: E731

    def agreement(a, b):  # different random masks: max |difference| and 1 - mean Pearson r of the coefficients
        pairs = [(ca[:len(cb)], cb) for ca, cb in zip(a.extras["coefficients"], b)]
        diff = max(float(np.abs(ca - cb).max()) for ca, cb in pairs)
        r = np.mean([np.corrcoef(ca, cb)[0, 1] for ca, cb in pairs])
        return diff, float(1 - r)

    h.compare(FAMILY, "lime_image", lumos_fn, peer, "lime.LimeImageExplainer", repeats=1, agreement=agreement,
              setting="LeNet, 20 MNIST images, 50 SLIC superpixels, 1000 samples",
              note="both send 20,000 images through the model (model-bound); rel diff = 1 - mean Pearson r "
                   "of the superpixel coefficients (different random masks)")


def bench_occlusion(h):
    """Occlusion on MNIST against captum's: 4x4 patches, stride 2 (overlaps averaged by both),
    zero baseline, true class, the LeNet of ``benchmarks/mnist_cnn.py``."""
    from captum.attr import Occlusion as CaptumOcclusion

    from benchmarks.mnist_cnn import load_mnist, trained_cnn
    from lumos.methods.agnostic import Occlusion

    model = trained_cnn(verbose=False)
    _, _, x, y = load_mnist(256)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    ours = Occlusion(model, window=(1, 4, 4), stride=(1, 2, 2))
    peer = CaptumOcclusion(model)
    h.compare(FAMILY, "occlusion", lambda: ours.explain(x, target=y),
              lambda: peer.attribute(xt, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0,
                                     target=yt, perturbations_per_eval=169),
              "captum.attr.Occlusion", repeats=1, setting="LeNet, 256 MNIST images, 4x4 windows, stride 2, 169 windows",
              note="captum evaluates all 169 windows of an image per call (perturbations_per_eval=169)")


def _kernel_shap_peak(budget: int) -> dict:
    """One KernelSHAP call on one 28x28 input (784 players) in this (fresh) process: wall
    time and peak RSS above the process's baseline during the call."""
    from benchmarks.harness import PeakRSS

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), MLP(784, 10, hidden=(64,))).eval()
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 28, 28)).astype(np.float32)
    bg = rng.random((2, 1, 28, 28)).astype(np.float32)
    KernelShap(model, n_samples=2000, seed=0).explain(x, background=bg)  # warm-up: torch, BLAS buffers
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        exp = KernelShap(model, n_samples=budget, seed=0).explain(x, background=bg)
    return {"seconds": time.perf_counter() - t0, "mb": mem.delta_mb, "coalitions": int(exp.extras["n_coalitions"]),
            "delta": float(np.abs(exp.delta).max())}


def bench_kernel_shap_memory(h, budgets=(100_000, 1_000_000)):
    """Issue 14 item 7: before the blocked design, one 784-feature image peaked at 2.8 GB with
    1e5 coalitions and 5.2 GB with 2e5 (1e6 would not fit in 24 GB). Target: 1e5 and 1e6
    within 10 % of each other and below 1 GB. Each budget runs in a fresh process, so that
    memory kept by the allocator from one run does not hide the next one's peak."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    runs = {}
    for budget in budgets:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs[budget] = pool.submit(_kernel_shap_peak, budget).result()
    peaks = [r["mb"] for r in runs.values()]
    met = max(peaks) < 1024 and (max(peaks) - min(peaks)) <= 0.1 * max(peaks)
    for budget, r in runs.items():
        h.record(FAMILY, "kernel_shap memory", r["seconds"], mem_mb=r["mb"], met="yes" if met else "NO",
                 setting=f"MLP 784-64-10 on one 28x28 input (784 players), 2 background rows, "
                         f"{budget:,} coalitions",
                 note=f"peak RSS above the baseline, in a fresh process; target: the budgets within 10 % of "
                      f"each other and < 1 GB (issue 14: 2.8 GB at 1e5 before the blocked design); "
                      f"{r['coalitions']:,} coalitions evaluated, max |delta| {r['delta']:.1e}")


def _run(h):
    ds = load_breast_cancer()
    _, proba1 = _model(30, ds.X_train, ds.y_train)
    bench_pfi(h, ds)
    bench_lime(h, ds, proba1)
    bench_kernel_shap(h, ds, proba1)
    bench_exact(h, ds)
    bench_sampling_shapley(h, ds)
    bench_lime_image(h)
    bench_occlusion(h)
    bench_kernel_shap_memory(h)


# one torch thread for the comparison, the caller's thread count restored afterwards
run = one_thread(_run)
