"""Workshop: tabular healthcare — the Wisconsin breast-cancer table (scikit-learn's
bundled copy; 30 features of cell nuclei measured on a fine-needle aspirate image).

An MLP is trained on standardised features. Global view: permutation feature importance
(Breiman 2001; Fisher et al. 2019). Local view for three patients: KernelSHAP (Lundberg &
Lee 2017), LIME (Ribeiro et al. 2016) and Integrated Gradients side by side, with the
patient's raw feature values.

Caveat (printed): Shapley values and PFI with independent permutations assume features
are independent; radius, perimeter and area are strongly correlated here, so credit may
be split among them.

Run:  python examples/workshop_tabular.py     (under a minute on 2 cores)
"""
from __future__ import annotations

import numpy as np

from _workshop import explain_all, normalise, save, setup


def local_methods(ds, background, seed) -> dict:
    """label -> (lumos method, options): KernelSHAP against 50 training patients, LIME's
    tabular sampling with quartile bins (its library default; without bins
    its coefficients are slopes shared by all patients, not evidence for one), IG from the mean patient."""
    return {
        "KernelSHAP": ("kernel_shap", {"background": background, "seed": seed}),
        "LIME (quartile bins)": ("lime", {"training_data": ds.X_train, "discretize": True, "n_samples": 5000,
                                          "seed": seed}),
        "Integrated Gradients": ("integrated_gradients", {"n_steps": 64}),
        "gradient x input": ("gradient_x_input", {}),
    }


def main(quiet=False, seed=0) -> dict:
    setup(seed=seed)
    from lumos.data import load_breast_cancer
    from lumos.models.cache import train_reference

    ds = load_breast_cancer(seed=seed)
    model, acc = train_reference(ds, epochs=40, seed=seed, progress=not quiet)
    names = ds.feature_names
    rng = np.random.default_rng(seed)
    background = ds.X_train[rng.choice(len(ds.X_train), 50, replace=False)]
    pfi = global_importance(model, ds, seed)
    patients = np.array([np.where(ds.y_test == 0)[0][0], np.where(ds.y_test == 1)[0][0], np.where(ds.y_test == 0)[0][1]])
    x = ds.X_test[patients]
    exps = explain_all(model, x, local_methods(ds, background, seed), target=0, quiet=quiet)  # class 0 = malignant
    raw = x * ds.extra["std"] + ds.extra["mean"]
    figure(ds, pfi, exps, patients, raw, acc, quiet)
    agreement = {}
    keys = list(exps)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            va, vb = exps[keys[a]].values, exps[keys[b]].values
            agreement[f"{keys[a]} vs {keys[b]}"] = float(np.mean([_spearman(p, q) for p, q in zip(va, vb)]))
    top_global = [names[i] for i in np.argsort(-pfi[0])[:5]]
    if not quiet:
        print(f"MLP test accuracy {acc:.3f}")
        print(f"top 5 features by permutation importance (accuracy drop, 10 repeats): {top_global}")
        for k, v in agreement.items():
            print(f"  rank agreement (Spearman) {k}: {v:.2f}")
        print("caveat: correlated features (radius/perimeter/area) share credit under PFI and SHAP")
    return {"accuracy": acc, "top_global": top_global, "agreement": agreement}


def _spearman(a, b):
    from scipy.stats import spearmanr

    return spearmanr(np.ravel(a), np.ravel(b)).statistic


def global_importance(model, ds, seed):
    """``(mean, std)`` accuracy drop per feature over 10 permutations of the test set."""
    import lumos

    e = lumos.PermutationImportance(model, scoring="accuracy", n_repeats=10, seed=seed).explain(ds.X_test, ds.y_test)
    return e.extras["importances"].mean(axis=1), e.extras["importances"].std(axis=1)


def figure(ds, pfi, exps, patients, raw, acc, quiet):
    import matplotlib.pyplot as plt

    names = ds.feature_names
    cols = len(exps) + (1 if pfi is not None else 0)
    fig, axes = plt.subplots(len(patients), max(cols, 1), figsize=(4.2 * max(cols, 1), 3.1 * len(patients)),
                             squeeze=False, gridspec_kw=dict(wspace=1.1, hspace=0.5))
    for r, p in enumerate(patients):
        j = 0
        if pfi is not None:
            ax = axes[r, 0]
            if r == 0:
                order = np.argsort(pfi[0])[-10:]
                ax.barh(range(10), pfi[0][order], xerr=pfi[1][order], color="#7d3c98", ecolor="0.4")
                ax.set_yticks(range(10), [names[i] for i in order], fontsize=7)
                ax.set_title("global: permutation importance\n(test accuracy drop, ± s.d. over 10)", fontsize=9)
                ax.xaxis.set_major_locator(plt.MaxNLocator(3))
                ax.tick_params(axis="x", labelsize=7)
            else:
                ax.axis("off")
            j = 1
        for name, e in exps.items():
            ax = axes[r, j]
            v = normalise(e.values[r])
            order = np.argsort(np.abs(v))[-8:]
            ax.barh(range(8), v[order], color=["#c0392b" if v[i] > 0 else "#2e6da4" for i in order])
            ax.set_yticks(range(8), [f"{names[i]} = {raw[r, i]:.3g}" for i in order], fontsize=7)
            ax.set_xlim(-1.05, 1.05)
            ax.axvline(0, color="k", lw=0.5)
            ax.set_title(f"patient {r + 1} (truly {ds.class_names[ds.y_test[p]]}): {name}", fontsize=8)
            if r == len(patients) - 1:
                ax.set_xlabel("attribution / largest |attribution|", fontsize=7)
            j += 1
    fig.suptitle(f"Breast cancer MLP (accuracy {acc:.3f}): evidence for 'malignant' (red) and against (blue);\n"
                 "8 largest |attributions| per method, labelled with the patient's value in original units",
                 fontsize=10)
    save(fig, "tabular_breast_cancer.png", quiet)


if __name__ == "__main__":
    main()
