"""Shapley values: error against wall time (issue 19 item 2).

Budgets 2^6 … 2^14 coalitions on three models — the breast-cancer MLP (30 features,
20 k-means background rows), a 16-feature torch MLP (exact values by enumeration) and a
1-D CNN on ECG200 with 12 time windows of 8 samples (exact values) — for lumos's
estimators against shap's KernelExplainer and PermutationExplainer and shapiq's
approximators (KernelSHAP, KernelSHAPIQ for SV, PermutationSamplingSV, SVARM; shapiq 1.4
has no Leverage SHAP). Errors: RMSE over rows × players against the exact values
(d ≤ 16) or, for 30 features, a 20,000-coalition reference (mean of lumos's KernelShap and
LeverageShap at 20,000 coalitions, other seeds); mean over seeds.

Every estimator explains the same game: v(S) = Σ_b w_b f(x_S, b_{N∖S}). lumos gets the
model (a numpy function) and the background, as a user calls it, and explains the rows
in one call; the peers get the game itself as a function of coalitions (shap: the game
on indicator rows with x = 1 and one all-zero background row; shapiq: the coalitions),
composed by lumos's own fast ``compose`` in model calls of the size lumos uses
(``CACHE_ELEMENTS`` input elements), one row at a time as they work — so the peers'
times leave out their own composition of masked inputs (generous to them).

Outputs: ``benchmarks/shapley_curve/curve.json``, ``curve.md`` (table) and ``curve.png``,
and summary rows in RESULTS.md (family ``shapley_curve``): time to reach the error of
shap's KernelExplainer at 500 coalitions and of shapiq's best approximator at 500, as a
fraction of their time, and lumos / model floor at a fixed budget.

``python -m benchmarks.bench_shapley_curve [--seeds 3] [--max-power 14]`` runs it alone;
``--floor-only`` runs only the fixed-budget check (lumos / model floor), ``--record`` writes the
stored curve.json's rows into RESULTS.md.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

FAMILY = "shapley_curve"
OUT = Path(__file__).resolve().parent / "shapley_curve"
SEEDS = int(os.environ.get("LUMOS_CURVE_SEEDS", "3"))
MAX_POWER = int(os.environ.get("LUMOS_CURVE_MAX_POWER", "14"))
N_ROWS = 5
PEER_MAX = int(os.environ.get("LUMOS_CURVE_PEER_MAX", str(2 ** 12)))
"""The peers run up to this budget (their cost at 2^13-2^14 on the shared machine; lumos runs all)."""


# -- models -----------------------------------------------------------------------------
def breast_cancer_mlp():
    from benchmarks.bench_agnostic import _model
    from lumos.data import load_breast_cancer
    from lumos.methods.agnostic import kmeans_background

    ds = load_breast_cancer()
    _, proba1 = _model(30, ds.X_train, ds.y_train)
    bg, w = kmeans_background(ds.X_train, 20, seed=0)
    return {"name": "breast-cancer MLP (30 features)", "f": proba1, "x": ds.X_test[:N_ROWS].astype(np.float64),
            "bg": bg, "w": w, "groups": None, "d": 30}


def mlp16():
    from benchmarks.bench_agnostic import _model
    from lumos.data import load_breast_cancer

    ds = load_breast_cancer()
    x_train = ds.X_train[:, :16].astype(np.float32)
    _, proba1 = _model(16, x_train, ds.y_train)
    return {"name": "torch MLP 16-32-2 (exact)", "f": proba1, "x": ds.X_test[:N_ROWS, :16].astype(np.float64),
            "bg": x_train[:10].astype(np.float64), "w": None, "groups": None, "d": 16}


def ecg_cnn():
    from lumos.models.train import fit

    path = Path(os.environ.get("LUMOS_DATA", "/work/shared/data")) / "ecg200.npz"
    if path.exists():
        data = np.load(path)
        xtr, ytr, xte = data["X_train"].astype(np.float32), data["y_train"].astype(int), data["X_test"]
        source = "ECG200"
    else:  # synthetic fallback: a bump early or late
        rng = np.random.default_rng(0)
        ytr = rng.integers(0, 2, 200)
        t = np.arange(96)
        xtr = (rng.normal(0, .3, (200, 1, 96)) + np.exp(-(t - np.where(ytr, 70, 25)[:, None]) ** 2 / 30)[:, None]
               ).astype(np.float32)
        xte = xtr[100:]
        source = "synthetic ECG-like"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 7, padding=3), torch.nn.ReLU(), torch.nn.MaxPool1d(4),
                                torch.nn.Conv1d(8, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(4),
                                torch.nn.Flatten(), torch.nn.Linear(32, 2))
    fit(model, xtr, ytr, epochs=30, lr=3e-3, seed=0)
    model.eval()

    def proba1(z):
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(np.asarray(z, dtype=np.float32))), 1)[:, 1].double().numpy()

    groups = (np.arange(96) // 8)[None]
    return {"name": f"1-D CNN on {source} (12 windows, exact)", "f": proba1, "x": xte[:N_ROWS].astype(np.float64),
            "bg": xtr[:10].astype(np.float64), "w": None, "groups": groups, "d": 12}


# -- the game the peers see ---------------------------------------------------------------
def game_for(m, row):
    from lumos.methods.agnostic.base import CACHE_ELEMENTS
    from lumos.methods.agnostic.masking import compose

    x, bg = m["x"][row], m["bg"]
    w = np.full(len(bg), 1 / len(bg)) if m["w"] is None else m["w"]
    groups = np.arange(m["d"]) if m["groups"] is None else m["groups"]

    def game(coalitions):
        masks = np.atleast_2d(np.asarray(coalitions) > 0.5)
        out = np.empty(len(masks))
        # lumos's starting call size (lumos's own calls may grow on a cheap model: 4,369 -> 17,476 rows on the
        # breast-cancer MLP, which runs within 4 % as fast at either size, benchmarks/RESULTS.md floor rows)
        step = max(1, min(65536, max(len(bg), CACHE_ELEMENTS // x.size)) // len(bg))
        for i in range(0, len(masks), step):
            rows = compose(x, bg, masks[i:i + step], groups)
            f = m["f"](rows.reshape(-1, *x.shape)).reshape(rows.shape[0], len(bg))
            out[i:i + step] = f @ w
        return out

    return game


# -- estimators -------------------------------------------------------------------------
def lumos_estimators():
    from lumos.methods.agnostic import KernelShap, LeverageShap, RegressionMSR, SamplingShapley

    def make(cls, **opts):
        def run(m, budget, seed):
            kw = dict(opts)
            if cls is SamplingShapley:
                kw["n_permutations"] = max(2, budget // m["d"])
            else:
                kw["n_samples"] = budget
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls(m["f"], seed=seed, batch_size=65536, **kw).explain(
                    m["x"], target=0, background=m["bg"], background_weights=m["w"], groups=m["groups"]
                ).extras["group_values"]
        return run

    return {"lumos KernelShap": make(KernelShap), "lumos LeverageShap": make(LeverageShap),
            "lumos LeverageShap(kernel)": make(LeverageShap, distribution="kernel"),
            "lumos RegressionMSR": make(RegressionMSR),
            "lumos SamplingShapley": make(SamplingShapley),
            "lumos SamplingShapley(iid)": make(SamplingShapley, antithetic=False),
            "lumos RegressionMSR(one sample)": make(RegressionMSR, cross_fit=False),
            "lumos SamplingShapley(stratified)": make(SamplingShapley, antithetic=False, stratified=True)}


def peer_estimators():
    out = {}
    try:
        import shap

        def shap_kernel(m, budget, seed):
            np.random.seed(seed)
            res = []
            for r in range(len(m["x"])):
                e = shap.KernelExplainer(game_for(m, r), np.zeros((1, m["d"])))
                res.append(np.asarray(e.shap_values(np.ones((1, m["d"])), nsamples=budget, l1_reg=False,
                                                    silent=True)).reshape(-1))
            return np.array(res)

        def shap_perm(m, budget, seed):
            if budget < 2 * m["d"] + 1:
                return None
            res = []
            for r in range(len(m["x"])):
                e = shap.PermutationExplainer(game_for(m, r), shap.maskers.Independent(np.zeros((1, m["d"]))),
                                              seed=seed)
                res.append(e(np.ones((1, m["d"])), max_evals=budget, silent=True).values.reshape(-1))
            return np.array(res)

        out["shap KernelExplainer"] = shap_kernel
        out["shap PermutationExplainer"] = shap_perm
    except ImportError:
        pass
    try:
        from shapiq import approximator as ap

        def make(cls, **opts):
            def run(m, budget, seed):
                res = []
                for r in range(len(m["x"])):
                    a = cls(m["d"], random_state=seed, **opts)
                    iv = a.approximate(budget, game_for(m, r))
                    res.append(np.array([iv[(i,)] for i in range(m["d"])]))
                return np.array(res)
            return run

        out["shapiq KernelSHAP"] = make(ap.KernelSHAP)
        out["shapiq KernelSHAPIQ"] = make(ap.KernelSHAPIQ, max_order=1, index="SV")
        out["shapiq PermutationSamplingSV"] = make(ap.PermutationSamplingSV)
        out["shapiq SVARM"] = make(ap.SVARM)
    except ImportError:
        pass
    return out


def reference(m):
    from lumos.methods.agnostic import ExactShapley, KernelShap, LeverageShap

    opts = dict(target=0, background=m["bg"], background_weights=m["w"], groups=m["groups"])
    if m["d"] <= 16:
        return ExactShapley(m["f"], batch_size=65536).explain(m["x"], **opts).extras["group_values"], "exact"
    a = KernelShap(m["f"], n_samples=20000, seed=1001, batch_size=65536).explain(m["x"], **opts).extras["group_values"]
    b = LeverageShap(m["f"], n_samples=20000, seed=1002, batch_size=65536).explain(m["x"], **opts).extras["group_values"]
    return (a + b) / 2, f"20,000-coalition reference (KernelShap/LeverageShap differ by RMSE {_rmse(a, b):.1e})"


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def curve(m, seeds, budgets, estimators):
    ref, ref_kind = reference(m)
    rows = []
    for name, fn in estimators.items():
        for budget in budgets:
            if not name.startswith("lumos") and budget > PEER_MAX:
                continue
            if budget > 2 ** m["d"]:  # every regression estimator is exact from 2^d - 2 coalitions on
                continue
            if name == "shapiq SVARM" and budget > 2 ** 11:
                continue
            errs, times, walls = [], [], []
            for seed in range(seeds):
                t0, c0 = time.perf_counter(), time.process_time()
                phi = fn(m, budget, seed)
                dt, wall = time.process_time() - c0, time.perf_counter() - t0
                walls.append(wall)
                if phi is None:
                    break
                errs.append(_rmse(phi, ref))
                times.append(dt)
            if errs:
                rows.append({"estimator": name, "budget": budget, "rmse": float(np.mean(errs)),
                             "rmse_sd": float(np.std(errs)), "seconds": float(np.mean(times)),
                             "wall_s": float(np.mean(walls)), "seeds": len(errs)})
        print(f"  {m['name']}: {name} done", flush=True)
    return {"model": m["name"], "d": m["d"], "reference": ref_kind, "rows": rows,
            "scale": float(np.sqrt(np.mean(ref ** 2)))}


def time_to(rows, target):
    """Wall time at which an estimator's (budget-ordered) curve first reaches ``target``
    RMSE, interpolated log-log between the budgets around it; None if never."""
    rows = sorted(rows, key=lambda r: r["budget"])
    prev = None
    for r in rows:
        if r["rmse"] <= target:
            if prev is None or prev["rmse"] <= 0 or r["rmse"] <= 0:
                return r["seconds"]
            a = (np.log(prev["rmse"]) - np.log(target)) / (np.log(prev["rmse"]) - np.log(r["rmse"]))
            return float(np.exp(np.log(prev["seconds"]) + a * (np.log(r["seconds"]) - np.log(prev["seconds"]))))
        prev = r
    return None


def summarise(result):
    rows = result["rows"]
    by = {}
    for r in rows:
        by.setdefault(r["estimator"], []).append(r)
    at = lambda name, b: next((r for r in by.get(name, []) if r["budget"] == b), None)  # noqa: E731
    out = {}
    targets = {}
    k = at("shap KernelExplainer", 500)
    if k:
        targets["shap KernelExplainer @500"] = k
    shapiq = [at(n, 500) for n in by if n.startswith("shapiq")]
    shapiq = [r for r in shapiq if r]
    if shapiq:
        best = min(shapiq, key=lambda r: r["rmse"])
        targets[f"{best['estimator']} @500 (shapiq's best)"] = best
    for label, t in targets.items():
        lumos = {n: time_to(v, t["rmse"]) for n, v in by.items() if n.startswith("lumos")}
        reached = {n: s for n, s in lumos.items() if s is not None}
        best = min(reached, key=reached.get) if reached else None
        out[label] = {"target_rmse": t["rmse"], "peer_s": t["seconds"], "best": best,
                      "best_s": reached.get(best), "ratio": (reached[best] / t["seconds"]) if best else None,
                      "all": {n: (None if s is None else s / t["seconds"]) for n, s in lumos.items()}}
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (the minor tick formatter)

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5.2))
    styles = {"lumos": "-", "shap": "--", "shapiq": ":"}
    names = sorted({r["estimator"] for res in results for r in res["rows"]})
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, res in zip(np.atleast_1d(axes), results):
        by = {}
        for r in res["rows"]:
            by.setdefault(r["estimator"], []).append(r)
        for n, rs in by.items():
            rs = sorted(rs, key=lambda r: r["budget"])
            rs = [r for r in rs if 1e-12 < r["rmse"] <= 10 * res["scale"]]  # off-scale means (a failed seed) left out
            if not rs:
                continue
            ax.plot([r["seconds"] for r in rs], [r["rmse"] for r in rs], styles[n.split()[0]], marker="o",
                    ms=3, color=colors[n], label=n, lw=2 if n.startswith("lumos") else 1.2)
        k = next((r for r in by.get("shap KernelExplainer", []) if r["budget"] == 500), None)
        if k:
            ax.axhline(k["rmse"], color="grey", lw=0.8)
            ax.plot([k["seconds"]], [k["rmse"]], "k*", ms=12, label="shap Kernel @500 (target)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("CPU time for the rows (s, 1 thread)")
        ax.set_ylabel(f"RMSE vs {'exact' if res['reference'] == 'exact' else '20k reference'}")
        ax.set_title(f"{res['model']}\nbudgets 2^6-2^{MAX_POWER} (+500)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results, summaries, seeds):
    lines = [f"# Shapley values: error against time (issue 19)", "",
             f"{N_ROWS} rows per model, mean over {seeds} seeds; RMSE over rows x players; seconds = CPU time (process_time, one torch thread: the least disturbed measure on a shared machine; wall time in curve.json) for "
             "all rows (lumos: one call; peers: one row at a time on the same game). The 2-core machine is shared with "
             "other engineers' runs: absolute times are inflated, ratios measured in the same process hold.", ""]
    for res, summ in zip(results, summaries):
        lines += [f"## {res['model']}", "", f"reference: {res['reference']}; RMS of the values {res['scale']:.2e}", ""]
        for label, s in summ.items():
            ratio = "not reached" if s["ratio"] is None else f"{s['ratio']:.3f} ({s['best']}, {s['best_s']:.3f} s)"
            lines.append(f"- time to the error of {label} (RMSE {s['target_rmse']:.2e}, {s['peer_s']:.3f} s): "
                         f"lumos / peer = {ratio}; all: " + ", ".join(
                             f"{n.replace('lumos ', '')} {'-' if v is None else f'{v:.3f}'}" for n, v in s["all"].items()))
        lines += ["", "| estimator | " + " | ".join(str(b) for b in sorted({r['budget'] for r in res['rows']})) + " |"]
        budgets = sorted({r["budget"] for r in res["rows"]})
        lines.append("|---|" + "---|" * len(budgets))
        by = {}
        for r in res["rows"]:
            by.setdefault(r["estimator"], {})[r["budget"]] = r
        for n, rs in by.items():
            cells = [f"{rs[b]['rmse']:.1e} / {rs[b]['seconds']:.3f}s" if b in rs else "-" for b in budgets]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def floor_check(h=None, repeats=15):
    """lumos / model floor (CPU time, one thread) at a fixed budget, the setting of bench_agnostic's kernel_shap row
    (30 features, 20 rows, 50 k-means background rows, 500 coalitions). Each estimator's floor runs exactly the
    model rows that estimator evaluates, recorded from its own run (KernelShap draws 490 distinct coalitions of
    the 500), as a plain loop at the best of five call sizes."""
    from benchmarks.bench_agnostic import _model
    from benchmarks.floors import recorded_rows
    from lumos.data import load_breast_cancer
    from lumos.methods.agnostic import KernelShap, LeverageShap, kmeans_background

    ds = load_breast_cancer()
    _, proba1 = _model(30, ds.X_train, ds.y_train)
    bg, w = kmeans_background(ds.X_train, 50, seed=0)
    x = ds.X_test[:20]
    estimators = {"KernelShap": KernelShap, "LeverageShap": LeverageShap}
    runs = {k: (lambda cls=cls: cls(proba1, n_samples=500, seed=0).explain(x, background=bg, background_weights=w))
            for k, cls in estimators.items()}
    # each floor runs the model over exactly the rows that estimator composes (recorded: count, values, dtype)
    rows = {k: recorded_rows(lambda f, cls=cls: cls(f, n_samples=500, seed=0).explain(
                x, background=bg, background_weights=w), proba1) for k, cls in estimators.items()}
    model_rows = {k: len(r) for k, r in rows.items()}

    def floor(k, chunk):
        r = rows[k]
        for i in range(0, len(r), chunk):
            proba1(r[i:i + chunk])

    times = {k: [] for k in runs} | {f"floor {k}": [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            t0 = time.process_time()
            fn()
            times[k].append(time.process_time() - t0)
            best = []
            for chunk in (1024, 4096, 10000, 25000, 65536):
                t0 = time.process_time()
                floor(k, chunk)
                best.append(time.process_time() - t0)
            times[f"floor {k}"].append(min(best))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"model_rows": model_rows, "seconds": med,
            "ratio": {k: med[k] / med[f"floor {k}"] for k in runs},
            "best_ratio": {k: min(times[k]) / min(times[f"floor {k}"]) for k in runs}}


def main(seeds=SEEDS, max_power=MAX_POWER, h=None):
    """The curves, the floor check and their outputs, on one torch thread (restored after)."""
    from benchmarks.harness import one_thread

    return one_thread(lambda h: _main(seeds, max_power, h))(h)


def floor_only():
    """``--floor-only``: :func:`floor_check` alone on one torch thread; its figures replace the
    ``floor`` entry of a stored curve.json (``--record`` then writes the RESULTS.md rows)."""
    from benchmarks.harness import one_thread

    fl = one_thread(lambda h: floor_check())(None)
    path = OUT / "curve.json"
    if path.exists():
        stored = json.loads(path.read_text())
        stored["floor"] = fl
        path.write_text(json.dumps(stored, indent=1))
        md = (OUT / "curve.md").read_text()
        head = md.split("\n## Fixed budget against the model floor\n")[0]
        (OUT / "curve.md").write_text(head + "\n## Fixed budget against the model floor\n\n" + json.dumps(fl, indent=1)
                                      + "\n")
    return fl


def _main(seeds, max_power, h):
    OUT.mkdir(exist_ok=True)
    budgets = sorted({2 ** p for p in range(6, max_power + 1)} | {500})
    estimators = {**lumos_estimators(), **peer_estimators()}
    results, summaries = [], []
    for make in (breast_cancer_mlp, mlp16, ecg_cnn):
        m = make()
        print(f"{m['name']}", flush=True)
        res = curve(m, seeds, budgets, estimators)
        results.append(res)
        summaries.append(summarise(res))
    fl = floor_check()
    (OUT / "curve.json").write_text(json.dumps({"seeds": seeds, "budgets": budgets, "results": results,
                                                "summaries": summaries, "floor": fl}, indent=1))
    (OUT / "curve.md").write_text(table(results, summaries, seeds) + "\n## Fixed budget against the model floor\n\n"
                                  + json.dumps(fl, indent=1) + "\n")
    plot(results, OUT / "curve.png")
    if h is not None:
        record(h, results, summaries, fl, seeds)
    return results, summaries, fl


def record(h, results, summaries, fl, seeds):
    """The summary rows of a run (or of a stored curve.json) in the harness ``h``."""
    for res, summ in zip(results, summaries):
        for label, s in summ.items():
            met = s["ratio"] is not None and s["ratio"] <= 0.2
            ratio = "not reached" if s["ratio"] is None else f"{s['ratio']:.3f}"
            h.record(FAMILY, "time to accuracy", s["best_s"] or float("nan"), met="yes" if met else "NO",
                     setting=f"{res['model']}, {N_ROWS} rows, target = error of {label}",
                     note=f"lumos/peer time = {ratio}"
                          f" (best: {s['best']}; target <= 0.2); peer {s['peer_s']:.3f} s, RMSE {s['target_rmse']:.2e}; "
                          f"mean of {seeds} seeds; benchmarks/shapley_curve/curve.md")
    for k, r in fl["ratio"].items():
        h.record(FAMILY, f"{k} at a fixed budget", fl["seconds"][k], met="yes" if r <= 1.15 else "NO",
                 floor_s=fl["seconds"].get(f"floor {k}", fl["seconds"].get("floor")), floor_target=1.15,
                 setting=f"30 features, 20 rows, 50 k-means bg, 500 coalitions "
                         f"({fl.get('model_rows', {}).get(k, 500_000):,} model rows, the floor's too)",
                 note=f"lumos/floor {r:.2f} (best of repeats {fl['best_ratio'][k]:.2f}); target <= 1.15")


def record_stored():
    """Write the summary rows of the stored curve.json into results.json and RESULTS.md
    (this family's section only), as ``benchmarks.run shapley_curve`` would."""
    import datetime
    import platform

    from benchmarks.harness import Harness
    from benchmarks.run import merge

    stored = json.loads((OUT / "curve.json").read_text())
    h = Harness()
    record(h, stored["results"], stored["summaries"], stored["floor"], stored["seeds"])
    store, md = OUT.parent / "results.json", OUT.parent / "RESULTS.md"
    results = json.loads(store.read_text()) if store.exists() else {}
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}, torch threads 1")
    results[FAMILY] = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine,
                       "rows": h.to_dicts()}
    store.write_text(json.dumps(results, indent=1))
    md.write_text(merge(md.read_text() if md.exists() else "", results, [FAMILY]))


def run(h):
    main(h=h)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=SEEDS)
    p.add_argument("--max-power", type=int, default=MAX_POWER)
    p.add_argument("--plot-only", action="store_true", help="redraw curve.png from curve.json")
    p.add_argument("--record", action="store_true", help="write curve.json's summary rows into RESULTS.md")
    p.add_argument("--floor-only", action="store_true",
                   help="run only the fixed-budget check against the model floor (into curve.json)")
    a = p.parse_args()
    if a.floor_only:
        print(json.dumps(floor_only(), indent=1))
        raise SystemExit(0)
    if a.record:
        record_stored()
        raise SystemExit(0)
    if a.plot_only:
        stored = json.loads((OUT / "curve.json").read_text())
        MAX_POWER = int(np.log2(max(stored["budgets"])))
        plot(stored["results"], OUT / "curve.png")
        raise SystemExit(0)
    MAX_POWER = a.max_power
    _, summ, fl = main(a.seeds, a.max_power)
    print(json.dumps(summ, indent=1))
    print(json.dumps(fl, indent=1))
