"""Time-series explanation benchmarks with an exact ground truth (issue #16 items 2-4).

``lumos bench timeseries [--quick | --scale tiny|quick|medium|full] [--out DIR] [--methods a,b]
[--settings hmm,rare] [--seeds N | --folds N] [--no-cache] [--render]`` (installed package; tables in ``./timeseries_tables``
unless ``--out``) or, in a source checkout, ``python -m benchmarks.timeseries ...`` with the same options (tables
in ``benchmarks/timeseries_tables/``). ``--render`` rewrites the tables from ``DIR/results.json`` without
running anything; the default scale is ``full``, see :data:`SCALES`.

Settings (data from :mod:`lumos.data.synthetic_ts`, models from :mod:`lumos.models.temporal`):

- ``hmm_gru``: the switching-state HMM (Tonekaboni et al. 2020, as tint generates it) and a
  GRU trained on tint's per-step task (``y_t`` from ``x_{0..t}``). As tint's
  ``TimeForwardTunnel`` does, the prediction at step ``t`` is explained on the prefix
  ``x[..., :t+1]`` (target: the predicted class) and the attribution of the step-``t``
  inputs is kept; the map of all kept steps is scored against the true mask. To bound
  the cost only ``n_times`` evenly spaced steps are explained (tint: all 200), and the
  perturbation methods (occlusion, LIME, KernelSHAP) see the prefix as ``C + 1`` groups:
  the whole past, and each channel at step ``t`` (the only cells whose attribution is
  kept; occlusion's value of a cell does not depend on the grouping of the others).
- ``rare_feature`` / ``rare_time``: Crabbé & van der Schaar 2021's ARMA experiments with
  the white box ``SalientSquares`` (output: the raw score; no training).
- ``ismail_<dataset>_<model>``: Ismail et al. 2020's box datasets (Gaussian base process)
  x {LSTM, TCN, Transformer}, trained to 99 % training accuracy (or the epoch limit), as
  their ``train_models.py``.

For each setting and seed the test inputs are explained with every registered method
that applies (looked up in ``lumos.list_methods()`` at run time, so methods that land
later are picked up; see :data:`METHOD_OPTIONS` for the budgets and :data:`NOT_RUN` for
the methods left out and why), plus a uniform ``random`` map as the chance baseline.
Scores: tint's white-box metrics on ``|attributions|`` (:mod:`lumos.metrics.white_box`:
AUP, AUR, AUROC, AUPRC, information, entropy); three ground-truth-free faithfulness
scores on ``|attributions|``: deletion and insertion AUC (:func:`lumos.metrics.deletion`,
:func:`lumos.metrics.insertion`, canvas 0 = the base processes' mean) and a ROAD-like
most-relevant-first removal (Rong et al. 2022, arXiv:2202.00449: removed cells are
linearly interpolated along time from the kept cells of their channel, plus noise of
1 % of the input's standard deviation; the mean score over 10..50 % removed, lower is
better); for Ismail's sets their masking experiment (``getMaskedAccuracy.py``: the cells
holding the top p % of the min-max-scaled saliency mass are replaced by one fresh draw of
the base process; the drop in test accuracy, averaged over p = 10..90 %).

Outputs in the output folder: one markdown table per
setting (mean ± std over seeds; lumos next to the published value where the paper or
its code's results file gives one, '-' otherwise; time per explained prediction),
``summary.md`` ("which method to trust": the top method by each ground-truth-free score
against the best by AUROC, on how many settings it is within 5 %) and ``results.json``.
Weights are cached under ``$LUMOS_CACHE`` (:func:`lumos.models.cache.cache_dir`), keyed
by architecture, data and training configuration.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

import lumos
from lumos.core import registry
from lumos.data.synthetic_ts import ismail_base, make_ismail, make_rare_feature, make_rare_time, make_switching_hmm
from lumos.methods.agnostic.masking import window_groups
from lumos.metrics import deletion, insertion, white_box_metrics
from lumos.metrics._base import scorer
from lumos.models.cache import cache_dir, cache_key
from lumos.models.temporal import TCN, AllSteps, GRUClassifier, LSTMClassifier, SalientSquares, TransformerClassifier

DEFAULT_OUT = Path("timeseries_tables")
"""Where the tables go without ``out_dir`` (relative to the working directory; the source
checkout's ``python -m benchmarks.timeseries`` passes ``benchmarks/timeseries_tables``)."""
GROUND_TRUTH = ("aup", "aur", "auroc", "auprc", "information", "entropy")
FAITHFULNESS = {"deletion": False, "insertion": True, "road": False}  # name -> higher is better
RANDOM = "random"


# -- scales ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """Sizes and budgets of one run (``tiny`` for the tests, ``quick``, ``full``)."""

    name: str
    seeds: int
    hmm: dict
    rare: dict
    ismail: dict
    budget: dict
    methods: tuple | None = None  # None: every applicable registered method
    faith_inputs: int = 50


_BUDGET = {"ig_steps": 32, "sg_samples": 20, "lime_samples": 1000, "shap_samples": 1000, "svs_permutations": 25,
           "mask_epochs": 500, "rise_masks": 1000, "aug_samples": 4, "faith_steps": 20, "time_windows": 10,
           "faith_times": 4, "dynamask_epochs": 0, "extremal_epochs": 0, "hmm_inputs": 0}
"""Budgets of the ``full`` scale (the others override some). ``dynamask_epochs`` /
``extremal_epochs``: each mask's own epoch count (0: ``mask_epochs``; tint's HMM experiment
trains Dynamask 1000 and ExtremalMask 500 epochs); ``hmm_inputs``: explain only the first N
of the HMM's test sequences (0: all), where a budget does not fit all of them. All can be
set from the command line with ``--budget KEY=VALUE``."""
ISMAIL_ALL = tuple((d, m) for d in ("Middle", "SmallMiddle", "Moving_Middle", "RareTime", "RareFeature",
                                    "PositionalTime") for m in ("lstm", "tcn", "transformer"))
ISMAIL_ONE_EACH = (("Middle", "lstm"), ("SmallMiddle", "tcn"), ("Moving_Middle", "transformer"), ("RareTime", "lstm"),
                   ("RareFeature", "tcn"), ("PositionalTime", "transformer"))

SCALES = {
    "tiny": Scale("tiny", 1,
                  hmm={"n_train": 64, "n_test": 6, "length": 24, "n_times": 3, "hidden": 8, "epochs": 3},
                  rare={"n": 4, "times": 12, "features": 12, "subset": 3},
                  ismail={"n_train": 96, "n_test": 8, "times": 12, "features": 12, "epochs": 4,
                          "settings": (("Middle", "tcn"),)},
                  budget={**_BUDGET, "ig_steps": 8, "sg_samples": 4, "lime_samples": 64, "shap_samples": 64,
                          "svs_permutations": 2, "mask_epochs": 5, "rise_masks": 32, "aug_samples": 1,
                          "faith_steps": 6, "time_windows": 4, "faith_times": 1},
                  methods=("saliency", "integrated_gradients", "occlusion", "grad_cam"), faith_inputs=8),
    "quick": Scale("quick", 1,
                   hmm={"n_train": 300, "n_test": 8, "length": 200, "n_times": 5, "hidden": 16, "epochs": 6},
                   rare={"n": 10, "times": 50, "features": 50, "subset": 5, "kinds": ("rare_feature",)},
                   ismail={"n_train": 300, "n_test": 8, "times": 50, "features": 50, "epochs": 8,
                           "settings": (("RareFeature", "tcn"), ("PositionalTime", "transformer"))},
                   budget={**_BUDGET, "ig_steps": 8, "sg_samples": 6, "lime_samples": 100, "shap_samples": 100,
                           "svs_permutations": 2, "mask_epochs": 100, "rise_masks": 100, "aug_samples": 1,
                           "faith_steps": 8, "faith_times": 1},
                   faith_inputs=8),
    "medium": Scale("medium", 3,
                    hmm={"n_train": 400, "n_test": 10, "length": 200, "n_times": 6, "hidden": 16, "epochs": 8},
                    rare={"n": 10, "times": 50, "features": 50, "subset": 5},
                    ismail={"n_train": 300, "n_test": 6, "times": 50, "features": 50, "epochs": 10,
                            "settings": ISMAIL_ONE_EACH},
                    budget={**_BUDGET, "ig_steps": 16, "sg_samples": 10, "lime_samples": 200, "shap_samples": 200,
                            "svs_permutations": 4, "mask_epochs": 100, "rise_masks": 200, "aug_samples": 2,
                            "faith_steps": 10, "faith_times": 2},
                    faith_inputs=10),
    "large": Scale("large", 3,
                   hmm={"n_train": 400, "n_test": 30, "length": 200, "n_times": 10, "hidden": 16, "epochs": 8},
                   rare={"n": 10, "times": 50, "features": 50, "subset": 5},
                   ismail={"n_train": 300, "n_test": 20, "times": 50, "features": 50, "epochs": 10,
                           "settings": ISMAIL_ALL},
                   budget={**_BUDGET, "ig_steps": 16, "sg_samples": 10, "lime_samples": 200, "shap_samples": 200,
                           "svs_permutations": 4, "mask_epochs": 100, "rise_masks": 200, "aug_samples": 2,
                           "faith_steps": 10, "faith_times": 2},
                   faith_inputs=20),
    "full": Scale("full", 3,
                  hmm={"n_train": 800, "n_test": 60, "length": 200, "n_times": 20, "hidden": 32, "epochs": 12},
                  rare={"n": 10, "times": 50, "features": 50, "subset": 5},
                  ismail={"n_train": 600, "n_test": 50, "times": 50, "features": 50, "epochs": 15,
                          "settings": ISMAIL_ALL},
                  budget=dict(_BUDGET), faith_inputs=30),
    "published": Scale("published", 1,
                       hmm={"n_train": 800, "n_test": 200, "length": 200, "n_times": 5, "hidden": 32, "epochs": 12},
                       rare={"n": 10, "times": 50, "features": 50, "subset": 5},
                       ismail={"n_train": 600, "n_test": 50, "times": 50, "features": 50, "epochs": 15,
                               "settings": ISMAIL_ALL},
                       budget={**_BUDGET, "faith_times": 2}, faith_inputs=30,
                       methods=("deeplift", "integrated_gradients", "gradient_shap", "lime", "occlusion",
                                "augmented_occlusion", "temporal_occlusion")),
}
"""``tiny``: the test (seconds); ``quick``: ``--quick`` (HMM, rare feature, two Ismail
settings, one seed, small budgets; about a minute on 2 idle cores, a few when they are
shared); ``medium``: the
committed tables (every setting kind, the six Ismail sets with one model each, 3 seeds,
mid budgets; minutes on 2 idle cores, much longer when the cores are shared); ``large``: the
same budgets on the six Ismail sets x 3 models, 20 test inputs (the committed tables when
they ran); ``full``: 3
seeds, the six Ismail sets x 3 models, 50 test inputs and the papers' budgets (hours on 2
cores); ``published``: the HMM at tint's size (800 training / 200 test sequences of 200
steps; one fold by default, ``--folds 5`` for tint's five (each fold a seed: its own HMM
draw and GRU; tint keeps one draw, seed 42, and its folds are KFold splits of the 800
training sequences into 640 train / 160 validation, the same 200 test sequences in every
fold: ``tint/datasets/dataset.py`` ``setup``), 5 explained steps, GRU(32) where tint
trains GRU(200): one fold takes ~5 min on 2 idle cores with tint live) and the methods
with a published value except the masks (Dynamask at tint's 1000 epochs on 200 sequences alone would take hours here)."""


# -- published values ----------------------------------------------------------------------------------
def _mean_std(rows: dict[str, list[list[float]]], names: tuple[str, ...]) -> dict:
    out = {}
    for method, runs in rows.items():
        arr = np.asarray(runs, dtype=float)
        out[method] = {n: (float(arr[:, i].mean()), float(arr[:, i].std(ddof=1)) if len(arr) > 1 else 0.0)
                       for i, n in enumerate(names)}
    return out


# tint, experiments/hmm/results.csv (seed 42, folds 0-4; 800 train / 200 test sequences of 200 steps,
# StateClassifierNet GRU(200), TimeForwardTunnel, |attributions|): AUP, AUR, information, entropy, AUROC, AUPRC.
_TINT_HMM = {  # lumos name: one row per fold
    "deeplift": [[.9254, .4611, 373.6, 137.3, .9256, .9027], [.9203, .4481, 366.4, 137.6, .915, .8924],
                 [.9278, .4721, 380.0, 139.8, .935, .9142], [.8329, .4313, 346.9, 136.5, .8589, .7922],
                 [.8955, .4516, 361.2, 137.1, .8839, .8606]],
    "dynamask": [[.7772, .8279, 1126, 35.75, .881, .7449], [.7976, .8527, 954.0, 43.26, .9126, .7979],
                 [.7982, .8533, 1135, 37.27, .8987, .7559], [.7926, .8456, 1038, 39.1, .9063, .776],
                 [.8224, .8761, 1181, 34.32, .9206, .8035]],
    "gradient_shap": [[.8516, .4096, 332.8, 135.5, .8457, .7916], [.8468, .4042, 325.2, 134.7, .8429, .7842],
                      [.8705, .4104, 323.3, 138.7, .8723, .8195], [.674, .3866, 310.2, 135.6, .7973, .6495],
                      [.8022, .4166, 335.4, 136.2, .8227, .7486]],
    "integrated_gradients": [[.9211, .4614, 376.2, 137.5, .9232, .8986], [.9167, .4481, 365.4, 137.6, .9121, .8884],
                             [.9241, .4681, 374.0, 140.4, .9315, .9096], [.824, .4281, 342.8, 136.8, .8545, .783],
                             [.8897, .4501, 359.9, 137.3, .8803, .8544]],
    "lime": [[.9321, .4495, 366.5, 133.2, .9195, .8948], [.9321, .4321, 351.4, 134.3, .9116, .8893],
             [.9338, .4614, 369.9, 136.0, .9256, .9045], [.8552, .4142, 342.9, 130.1, .8518, .7929],
             [.9032, .4464, 362.5, 131.7, .8846, .8577]],
    "occlusion": [[.8665, .4172, 345.6, 133.9, .8792, .8195], [.9005, .4076, 345.2, 133.4, .8874, .8512],
                  [.8886, .42, 339.7, 137.7, .896, .8486], [.7565, .3892, 310.6, 135.5, .8238, .7068],
                  [.836, .4084, 334.5, 136.0, .8468, .7777]],
    "augmented_occlusion": [[.759, .4012, 335.8, 168.1, .9067, .8054], [.7622, .3559, 366.3, 167.7, .9321, .8661],
                            [.7619, .377, 384.4, 165.5, .9394, .8807], [.6526, .3409, 313.8, 164.4, .8441, .6762],
                            [.7072, .3946, 354.9, 167.7, .8937, .774]],
}
# tint, experiments/arma/results.csv (seed 42, folds 0-4, 10 inputs of 50 x 50, white box):
# AUP, AUR, information, entropy.
_TINT_HMM["temporal_occlusion"] = _TINT_HMM["occlusion"]  # both are tint's TemporalOcclusion (training mean)
_TINT_RARE_FEATURE = {
    "integrated_gradients": [[1.0, .1363, 480.9, 491.0]] * 5,
    "occlusion": [[1.0, .1356, 475.5, 487.6]] * 5,
    "sampling_shapley": [[1.0, .1356, 475.5, 487.6]] * 5,
    "dynamask": [[.9056, .6458, 6404, 227.7]] * 5,
}
_TINT_RARE_TIME = {
    "integrated_gradients": [[1.0, .1277, 455.8, 463.5], [1.0, .1415, 494.2, 493.3], [1.0, .1361, 482.1, 480.3],
                             [1.0, .1328, 470.6, 479.3], [1.0, .1243, 437.8, 466.1]],
    "occlusion": [[1.0, .1268, 453.6, 459.2], [1.0, .1403, 491.4, 488.3], [1.0, .135, 479.4, 475.3],
                  [1.0, .1317, 468.1, 474.7], [1.0, .1236, 436.1, 462.4]],
    "sampling_shapley": [[1.0, .1268, 453.6, 459.2], [1.0, .1403, 491.4, 488.3], [1.0, .135, 479.4, 475.3],
                         [1.0, .1317, 468.1, 474.7], [1.0, .1236, 436.1, 462.4]],
    "dynamask": [[.9194, .6526, 3931, 470.0], [.8648, .6521, 4002, 452.1], [.9526, .6361, 3867, 441.8],
                 [.8715, .6409, 3781, 456.5], [.9043, .642, 3748, 479.5]],
}
_PAPER_HMM = {"extremal_mask": {"aup": (0.885, 0.030), "aur": (0.781, 0.013)}}
"""Enguehard 2023 (arXiv:2305.18840) Table 1, HMM, ExtremalMask: (mean, std over 5 folds). The
paper's information and entropy are on another scale than results.csv's (ExtremalMask
information 2.80e+05) and are left out."""
PUBLISHED = {
    "hmm_gru": {"source": "tint (Enguehard 2023), experiments/hmm/results.csv: mean ± std over its 5 folds "
                          "(200 test sequences x 200 steps). tint's `occlusion` (TemporalOcclusion, training mean) is "
                          "shown against lumos's occlusion and temporal_occlusion, its `augmented_occlusion` "
                          "(TemporalAugmentedOcclusion, 10 draws) against augmented_occlusion, `deep_lift` against "
                          "deeplift, `dyna_mask` against dynamask. `extremal_mask` (AUP, AUR only): the paper's "
                          "Table 1 (Enguehard 2023, arXiv:2305.18840; ExtremalMask, HMM: AUP 0.885 ± 0.030, AUR "
                          "0.781 ± 0.013, mean ± std over 5 folds), as the TMLR 2024 reproduction (Fan et al.) copies "
                          "it in anonymous8293/factai experiments/hmm/original_results_averaged.csv line 5; tint's "
                          "results.csv holds no ExtremalMask row. The same table gives Dynamask AUP 0.711 ± 0.020, AUR "
                          "0.763 ± 0.026 and DeepLift AUP 0.920 ± 0.019, from a run other than results.csv's",
                "n_true": 200 * 200,
                "values": {**_mean_std(_TINT_HMM, ("aup", "aur", "information", "entropy", "auroc", "auprc")),
                           **_PAPER_HMM}},
    "rare_feature": {"source": "tint, experiments/arma/results.csv, rare-feature: mean over its 5 folds (10 inputs; "
                               "Crabbé & van der Schaar 2021 Sec. 4.1); `shapley_values_sampling` as sampling_shapley",
                     "n_true": 10 * 125,
                     "values": _mean_std(_TINT_RARE_FEATURE, ("aup", "aur", "information", "entropy"))},
    "rare_time": {"source": "tint, experiments/arma/results.csv, rare-time: mean ± std over its 5 folds (10 inputs)",
                  "n_true": 10 * 125,
                  "values": _mean_std(_TINT_RARE_TIME, ("aup", "aur", "information", "entropy"))},
}
ISMAIL_SOURCE = ("Ismail et al. 2020 (arXiv:2010.13924) report these sets as curves and heat maps (precision/recall "
                 "of the salient cells, accuracy drop against the masked fraction), not as tabulated numbers: no "
                 "published value is copied here")


# -- methods ---------------------------------------------------------------------------------------------
NOT_RUN = {
    "permutation_importance": "global method (one importance per feature over a labelled set)",
    "exact_shapley": "enumerates 2^d coalitions; kernel_shap estimates the same Shapley values",
    "attention": "needs a model that returns attention weights",
}
"""Registered methods the benchmark leaves out on purpose, with the reason (printed in the tables)."""

CONV_ONLY = {"grad_cam", "grad_cam_plus_plus", "guided_grad_cam", "cam"}
"""Grad-CAM and CAM run only where the model has a convolution ("Grad-CAM where a conv layer
exists"); the other layer methods run wherever lumos finds a layer for them (a recurrent
output counts) and are reported as failed where it finds none."""


PER_STEP = {"temporal_ig", "temporal_occlusion"}
"""Methods that explain every step's prediction of a model called on prefixes (tint's
TimeForwardTunnel built in): run once on the whole HMM sequences (target: the class
predicted for the whole sequence, their one target), and not on the one-prediction sets."""

SEQUENCE_MASKS = {"dynamask", "extremal_mask"}
"""Mask methods that tint fits, in its HMM experiment, to the outputs of every step at
once (``MaskNet`` / ``ExtremalMaskNet`` on the classifier's ``return_all``): run once on the
whole sequences with the per-step logits flattened and ``outputs="all"``."""


def _mask_lr(epochs: int) -> float:
    """tint's masks take 1000 (Dynamask) or 500 (ExtremalMask) Adam steps at 1e-3 / 1e-2;
    with fewer steps the rate is raised in proportion (at most 0.05). The scales give the
    masks at least 100 epochs (``full``: 500): below that Dynamask loses a third of its AUP
    on the HMM (0.41 at 30 epochs, 0.64 at 100, 0.69 at 500; see
    :mod:`lumos.methods.temporal.masks`), tint run with the same budget as well."""
    return float(min(0.05, 1e-3 * 1000 / max(1, epochs)))


LIME_AS_CAPTUM = {"penalty": "l1", "alpha": 0.01, "kernel": "cosine", "include_input": False}
"""lumos's Lime options for captum's default ``Lime`` (see :mod:`lumos.methods.agnostic.lime`)."""


def METHOD_OPTIONS(name: str, ctx: "Context") -> dict:
    """The options a method gets in this benchmark (filtered by what its class accepts, so
    methods whose options are named differently simply run with their defaults)."""
    b = ctx.budget
    bg = ctx.background
    hmm, rare = ctx.kind == "hmm", ctx.kind == "rare"
    occ_window = (1, 1) if ctx.cheap_model else (1, ctx.window)
    perturb = {"groups": ctx.groups} if ctx.groups is not None else {"window": occ_window, "stride": None}
    epochs = b["mask_epochs"]
    d_epochs, e_epochs = b.get("dynamask_epochs") or epochs, b.get("extremal_epochs") or epochs
    known = {
        "integrated_gradients": {"n_steps": b["ig_steps"], "baseline": 0.0},
        "smoothgrad": {"n_samples": b["sg_samples"], "seed": ctx.seed},
        "occlusion": {"baseline": ctx.baseline, **perturb},
        "augmented_occlusion": {"background": bg, "n_samples": 10 if hmm else b["aug_samples"], "seed": ctx.seed,
                                **perturb},
        # captum's Lime configuration (what tint's lime runs): Lasso(0.01), cosine kernel, no all-on sample
        "lime": ({"n_samples": 25, "baseline": 0.0, "groups": ctx.lime_groups, "seed": ctx.seed, **LIME_AS_CAPTUM}
                 if hmm and ctx.lime_groups is not None else
                 {"n_samples": b["lime_samples"], "baseline": ctx.baseline, "groups": ctx.perturb_groups,
                  "seed": ctx.seed, **LIME_AS_CAPTUM}),
        "kernel_shap": {"n_samples": b["shap_samples"], "background": ctx.baseline[None],
                        "groups": ctx.perturb_groups},
        "sampling_shapley": {"n_permutations": b["svs_permutations"], "background": ctx.baseline[None],
                             "groups": ctx.groups},
        # methods written for #16 by other engineers (options kept only if the class accepts them)
        "deeplift": {"baseline": 0.0, "strict": False},  # captum (tint) also computes through GRU/LSTM cells
        "deeplift_shap": {"background": bg, "n_background": 8, "strict": False, "seed": ctx.seed},
        # HMM: tint's published setting (n_samples=50, stdevs=0.0001, zeros + test inputs as references)
        "gradient_shap": ({"background": ctx.shap_background, "n_samples": 50, "stdevs": 1e-4, "seed": ctx.seed}
                          if hmm and ctx.shap_background is not None
                          else {"background": bg, "n_samples": b["sg_samples"], "seed": ctx.seed}),
        "temporal_ig": {"n_steps": b["ig_steps"], "baseline": 0.0},
        "temporal_occlusion": {"baseline": ctx.baseline},  # tint's TemporalOcclusion with the training mean
        "rise": {"n_masks": b["rise_masks"], "grid": min(7, ctx.length), "per_channel": True, "seed": ctx.seed},
        "tsr": {"base": "saliency"},  # TSR over IG costs T + C x (selected steps) IG runs per input
        "dynamask": {"epochs": d_epochs, "lr": _mask_lr(d_epochs), "seed": ctx.seed,
                     **({"keep_ratio": 0.3, "sigma_max": 1.0, "size_reg_factor_init": 0.1,
                         "size_reg_factor_dilation": 100, "time_reg_factor": 1.0, "outputs": "all"} if hmm else {}),
                     **({"keep_ratio": 0.05, "size_reg_factor_init": 1.0, "size_reg_factor_dilation": 1000}
                        if rare else {})},
        "extremal_mask": {"epochs": e_epochs, "lr": min(0.05, 0.01 * 500 / max(1, e_epochs)), "seed": ctx.seed,
                          **({"outputs": "all"} if hmm else {})},
    }
    opts = dict(known.get(name, {}))
    opts.setdefault("seed", ctx.seed)
    return opts


def accepted_options(cls) -> set[str]:
    """Option names a registered explainer accepts: its constructors' keywords (whole MRO)
    and its ``call_options``."""
    names = set(getattr(cls, "call_options", {}) or {})
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            try:
                params = inspect.signature(klass.__init__).parameters
            except (TypeError, ValueError):
                continue
            names |= {p for p, v in params.items() if p not in ("self", "model") and v.kind not in
                      (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    return names


@dataclass
class Context:
    """What one setting x seed gives every method."""

    kind: str
    length: int
    seed: int
    budget: dict
    baseline: np.ndarray  # one sample (C, T): the training mean
    background: np.ndarray  # a few training rows
    x_train: np.ndarray
    groups: np.ndarray | None  # HMM: past + channels at t (for every perturbation method)
    window: int
    cheap_model: bool  # the white box: per-cell occlusion and Shapley sampling are affordable
    perturb_groups: np.ndarray = None
    # HMM: GradientShap's references as in tint's experiments/hmm/main.py, zeros and the test
    # inputs themselves (prefixes), ``th.cat([x_test * 0, x_test])``; None: ``background``
    shap_background: np.ndarray | None = None
    # HMM: LIME as tint's experiments/hmm/main.py runs it, captum's ``Lime`` with its defaults:
    # every cell of the prefix its own feature, baseline 0, 25 samples; None: ``perturb_groups``
    lime_groups: np.ndarray | None = None


def plan_methods(model: nn.Module, scale: Scale, only=None, kind: str = "ismail"
                 ) -> tuple[list[tuple[str, type]], dict[str, str]]:
    """The registered methods to run on ``model`` in a setting of ``kind`` and the reasons
    for the others."""
    has_conv = any(isinstance(m, nn.Conv1d) for m in model.modules())
    cheap = isinstance(model, SalientSquares)
    run, skipped = [], {}
    wanted = only if only is not None else scale.methods
    for name, cls in lumos.list_methods().items():
        if wanted is not None and name not in wanted:
            continue
        if name in NOT_RUN:
            skipped[name] = NOT_RUN[name]
            continue
        if name == "sampling_shapley" and not cheap:
            skipped[name] = "64 permutations x every cell per input: affordable only on the white box; " \
                            "kernel_shap estimates the same values"
            continue
        if getattr(cls, "scope", "local") != "local":
            skipped[name] = "global method"
            continue
        if getattr(cls, "needs_labels", False):
            skipped[name] = "needs the true labels"
            continue
        if name in PER_STEP and kind != "hmm":
            skipped[name] = "explains the prediction of every step of a model run on prefixes; one prediction " \
                            "per series here"
            continue
        if name in CONV_ONLY and not has_conv:
            skipped[name] = "no convolution in this model"
            continue
        why = cls.applicability(model, "timeseries") if hasattr(cls, "applicability") else None
        if why:
            skipped[name] = why
            continue
        run.append((name, cls))
    return run, skipped


def explainer_options(name: str, cls, ctx: Context) -> tuple[dict, dict]:
    """``(constructor options, call options)`` of ``name`` in this benchmark: worked out
    once, outside the timing (the peer's options are too: see :func:`_peer_map`)."""
    opts = METHOD_OPTIONS(name, ctx)
    ok = accepted_options(cls)
    opts = {k: v for k, v in opts.items() if k in ok}
    config, call = registry.split_options(cls, opts)
    if "progress" in ok:
        config["progress"] = False
    return config, call


def make_explainer(name: str, cls, model, ctx: Context, options: tuple[dict, dict] | None = None):
    config, call = options if options is not None else explainer_options(name, cls, ctx)
    return cls(model, **config), call


def _as_map(values, shape) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape == tuple(shape):
        return v
    if v.ndim == len(shape) - 1 and v.shape[0] == shape[0]:
        v = v[:, None]
    return np.broadcast_to(v, shape).copy()


# -- training --------------------------------------------------------------------------------------------
def train(model: nn.Module, X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int, name: str,
          batch_size: int = 64, target_acc: float = 0.99, per_step: bool = False, cache: bool = True) -> dict:
    """Adam + cross-entropy until the training accuracy reaches ``target_acc`` (checked
    after every epoch on up to 512 samples, as Ismail et al. stop at 99 %) or ``epochs``;
    ``per_step``: the model's ``forward_all`` against per-step labels (N, T). Weights are
    cached under ``lumos.models.cache.cache_dir()/benchmarks``. Returns training info."""
    net = AllSteps(model) if per_step else model
    config = {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size, "target_acc": target_acc,
              "trainer": "benchmarks.timeseries/1"}
    path = cache_dir() / "benchmarks" / f"{name}-{cache_key(net, X, y, config)}.pt"
    start = time.perf_counter()
    if cache and path.exists():
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            net.eval()
            return {"cached": True, "seconds": time.perf_counter() - start, "epochs": None}
        except Exception:  # noqa: BLE001 - stale or corrupt: retrain
            pass
    torch.manual_seed(seed)
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    rng = np.random.default_rng(seed)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    check = rng.permutation(len(Xt))[:512]
    done = 0
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(Xt))
        for s in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[s:s + batch_size])
            opt.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()
        done = epoch + 1
        net.eval()
        with torch.no_grad():
            acc = float((net(Xt[check]).argmax(1) == yt[check]).float().mean())
        if acc >= target_acc:
            break
    net.eval()
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(net.state_dict(), tmp)
            os.replace(tmp, path)
        except OSError:
            pass
    return {"cached": False, "seconds": time.perf_counter() - start, "epochs": done}


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == y).mean())


# -- ground-truth-free faithfulness --------------------------------------------------------------------------
def road_morf(model, x: np.ndarray, attributions: np.ndarray, target=None, *, output: str = "softmax",
              fractions=(0.1, 0.2, 0.3, 0.4, 0.5), noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """ROAD-like removal, most relevant first (after Rong et al. 2022): for each fraction
    the top cells by ``|attributions|`` are replaced by a linear interpolation along time
    of the kept cells of their channel (their "noisy linear imputation" for 1-D series),
    plus Gaussian noise of ``noise`` x the input's standard deviation. Returns the mean
    target score over the fractions per input (N,); lower is better."""
    n, c, t = x.shape
    a = np.abs(attributions).reshape(n, -1)
    order = np.argsort(-a, axis=1, kind="stable")
    rng = np.random.default_rng(seed)
    steps = np.arange(t)
    copies = np.empty((len(fractions), n, c, t), dtype=np.float32)
    for k, frac in enumerate(fractions):
        removed = np.zeros((n, c * t), dtype=bool)
        removed[np.arange(n)[:, None], order[:, : int(round(frac * c * t))]] = True
        removed = removed.reshape(n, c, t)
        out = x.astype(np.float64).copy()
        for i, j in zip(*np.nonzero(removed.any(axis=2))):
            keep = ~removed[i, j]
            out[i, j, ~keep] = np.interp(steps[~keep], steps[keep], x[i, j, keep]) if keep.any() else 0.0
        sd = x.reshape(n, -1).std(axis=1)[:, None, None]
        out = np.where(removed, out + noise * sd * rng.standard_normal(out.shape), out)
        copies[k] = out
    with scorer(model, c * t, output=output) as bound:
        base = bound.scores(x)
        tgt = bound.targets(target, base)
        scores = bound.scores(copies.reshape(-1, c, t)).reshape(len(fractions), n, -1)
    return scores[:, np.arange(n), tgt].mean(axis=0)


def faithfulness(model, x, a, target, output, n_steps, seed) -> dict[str, float]:
    opts = {"absolute": True, "n_steps": n_steps, "baseline": 0.0, "output": output}
    return {"deletion": deletion(model, x, a, target, **opts).value,
            "insertion": insertion(model, x, a, target, **opts).value,
            "road": float(road_morf(model, x, a, target, output=output, seed=seed).mean())}


def masked_accuracy_drop(model, x, y, a, fill, percentages=range(10, 100, 10)) -> float:
    """Ismail et al.'s masking experiment: per input, the smallest set of cells holding
    ``p`` % of the min-max-scaled ``|a|`` mass is replaced by ``fill`` (one fresh draw of
    the base process, the same for every input); returns the test accuracy at p = 0 minus
    the mean accuracy over ``percentages``, in percentage points."""
    n = len(x)
    s = np.abs(a).reshape(n, -1)
    lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
    s = (s - lo) / np.where(hi > lo, hi - lo, 1.0)
    order = np.argsort(-s, axis=1, kind="stable")
    mass = np.cumsum(np.take_along_axis(s, order, axis=1), axis=1)
    total = np.maximum(mass[:, -1:], 1e-12)
    base = accuracy(model, x, y)
    accs = []
    flat_x, flat_fill = x.reshape(n, -1), fill.reshape(-1)
    for p in percentages:
        k = (mass / total < p / 100.0).sum(axis=1) + 1  # smallest count reaching p % of the mass
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(order.shape[1])[None].repeat(n, 0), axis=1)
        masked = np.where(rank < k[:, None], flat_fill[None], flat_x).reshape(x.shape)
        accs.append(accuracy(model, masked.astype(np.float32), y))
    return 100.0 * (base - float(np.mean(accs)))


# -- one setting -------------------------------------------------------------------------------------------
@dataclass
class Setting:
    key: str
    kind: str  # hmm, rare, ismail
    model: str
    dataset: str = ""
    title: str = ""


def settings_of(scale: Scale) -> list[Setting]:
    out = [Setting("hmm_gru", "hmm", "gru", "switching_hmm", "Switching-state HMM (FIT / tint) x GRU")]
    kinds = scale.rare.get("kinds", ("rare_feature", "rare_time"))
    if "rare_feature" in kinds:
        out.append(Setting("rare_feature", "rare", "white_box", "rare_feature", "Rare feature (Dynamask) x white box"))
    if "rare_time" in kinds:
        out.append(Setting("rare_time", "rare", "white_box", "rare_time", "Rare time (Dynamask) x white box"))
    for ds, m in scale.ismail["settings"]:
        out.append(Setting(f"ismail_{ds.lower()}_{m}", "ismail", m, ds, f"Ismail et al. {ds} (Gaussian) x {m.upper()}"
                           if m != "transformer" else f"Ismail et al. {ds} (Gaussian) x Transformer"))
    return out


def _classifier(kind: str, c: int, k: int) -> nn.Module:
    if kind == "lstm":
        return LSTMClassifier(c, k, hidden=32)
    if kind == "tcn":
        return TCN(c, k, channels=(32, 32, 32), kernel_size=4, dropout=0.1)
    if kind == "transformer":
        return TransformerClassifier(c, k, d_model=32, heads=4, layers=2, dim_feedforward=64, dropout=0.1)
    raise ValueError(kind)


def _random_map(shape, seed) -> np.ndarray:
    return np.random.default_rng([seed, 7]).random(shape)


TIMING_REPEATS = 3
"""A call that takes under :data:`TIMING_REPEAT_BELOW` seconds is run this many times and
its fastest run is kept, for lumos and tint alike (on a shared machine one run of a cheap
method measures the machine's load as much as the method)."""
TIMING_REPEAT_BELOW = 1.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``: the result of the first run and the fastest of up to
    :data:`TIMING_REPEATS` runs (repeated only while a run takes under
    :data:`TIMING_REPEAT_BELOW` s). Both libraries are timed by this one function."""
    start = time.perf_counter()
    out = fn()
    best = time.perf_counter() - start
    for _ in range(TIMING_REPEATS - 1):
        if best >= TIMING_REPEAT_BELOW:
            break
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def _explain(explainer, call, x, target, notes: dict | None = None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = explainer.explain(x, target=target, **call)
    if notes is not None and caught:
        name = getattr(explainer, "name", type(explainer).__name__)
        notes.setdefault(name, str(caught[0].message).splitlines()[0][:200])
    return _as_map(exp.values, x.shape)


SE_METRICS = ("aup", "aur", "auroc")
"""The metrics whose standard error the tables give (bootstrap over the test inputs)."""


def bootstrap_se(a: np.ndarray, mask: np.ndarray, n_boot: int = 100, seed: int = 0) -> dict[str, float]:
    """Standard errors of the pooled white-box metrics over the test inputs: the standard
    deviation of each metric over ``n_boot`` resamples of the inputs (with replacement)."""
    rng = np.random.default_rng([seed, 11])
    n = len(a)
    vals = {k: [] for k in SE_METRICS}
    m = np.broadcast_to(mask, a.shape)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if not m[idx].any() or m[idx].all():
            continue
        row = white_box_metrics(a[idx], m[idx], absolute=True)
        for k in SE_METRICS:
            vals[k].append(row[k])
    return {f"{k}_se": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for k, v in vals.items()}


def _peer_map(name: str, net, x, target, ctx, log, failed: dict) -> tuple[np.ndarray | None, float]:
    """tint's counterpart of ``name`` on the same inputs (None when it fails); its seconds."""
    from lumos.benchmarks.timeseries_tint import PEERS

    peer, opts = PEERS[name][1], METHOD_OPTIONS(name, ctx)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, seconds = timed(lambda: peer(net, x, target, ctx, opts))
    except Exception as err:  # noqa: BLE001 - reported in the table
        failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        log(f"    tint {name}: failed ({failed[name]})")
        return None, 0.0
    return _as_map(a, x.shape), seconds


def _peer_names(names, peer: bool) -> list[str]:
    if not peer:
        return []
    from lumos.benchmarks.timeseries_tint import PEERS

    return [nm for nm in names if nm in PEERS]


def hmm_step_groups(c: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The groups of the HMM's step-``t`` prefix (C x t): for the perturbation methods the past
    (group 0) and each channel at step t (groups 1..C), the only cells whose attribution is kept;
    for LIME every cell its own feature, as tint's experiment."""
    groups = np.zeros((c, t), dtype=np.int64)
    groups[:, t - 1] = np.arange(1, c + 1)
    return groups, np.arange(c * t).reshape(c, t)


def _predicted(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).argmax(1)


def run_setting(setting: Setting, scale: Scale, seed: int, only=None, log=print, cache=True, peer=False) -> dict:
    """Train (or load) the model of ``setting`` for ``seed``, explain its test inputs with
    every method, score them. Returns ``{"methods": {name: {metric: value}}, "info": ...,
    "skipped": {name: reason}, "failed": {name: message}}``."""
    torch.manual_seed(seed)
    b = scale.budget
    info: dict[str, Any] = {"seed": seed}
    if setting.kind == "hmm":
        return _run_hmm(setting, scale, seed, only, log, cache, peer)
    if setting.kind == "rare":
        make = make_rare_feature if setting.dataset == "rare_feature" else make_rare_time
        r = scale.rare
        ds = make(r["n"], r["times"], r["features"], r["subset"], seed=seed)
        model = SalientSquares(ds.extra["salient"]).eval()
        x, mask, target, output = ds.X, ds.mask, 0, "raw"
        train_x = make(max(32, r["n"]), r["times"], r["features"], r["subset"], seed=seed + 1000).X
        info.update(n_inputs=len(x), shape=list(x.shape[1:]))
        y = None
    else:
        s = scale.ismail
        data = make_ismail(setting.dataset, "gaussian", s["n_train"] + s["n_test"], s["times"], s["features"],
                           seed=seed)
        tr, te = data.split(s["n_train"])
        model = _classifier(setting.model, tr.X.shape[1], 2)
        lr = 1e-3 if setting.model == "transformer" else 3e-3
        info["training"] = train(model, tr.X, tr.y, epochs=s["epochs"], lr=lr, seed=seed, cache=cache,
                                 name=f"ismail-{setting.dataset}-{setting.model}-s{seed}")
        info["test_accuracy"] = accuracy(model, te.X, te.y)
        x, y, mask, target, output, train_x = te.X, te.y, te.mask, None, "softmax", tr.X
        info.update(n_inputs=len(x), shape=list(x.shape[1:]))
    c, t = x.shape[1:]
    window = max(1, t // b["time_windows"])
    ctx = Context(kind=setting.kind, length=t, seed=seed, budget=b, baseline=train_x.mean(axis=0).astype(np.float32),
                  background=train_x[np.random.default_rng(seed).permutation(len(train_x))[:16]],
                  x_train=train_x, groups=None, window=window, cheap_model=isinstance(model, SalientSquares),
                  perturb_groups=window_groups((c, t), (1, window))[0])
    if ctx.cheap_model:
        ctx.groups = np.arange(c * t).reshape(c, t)  # one Shapley player per cell on the white box
    methods, skipped = plan_methods(model, scale, only, setting.kind)
    maps, seconds, failed, notes = {}, {}, {}, {}
    peer_maps, peer_failed = {}, {}
    # the target both libraries get, computed outside the timing: the given one or the prediction
    tgt = torch.as_tensor(np.full(len(x), target)) if target is not None else _predicted(model, x)

    def explain_once(name, cls, options):
        explainer, call = make_explainer(name, cls, model, ctx, options)
        return _explain(explainer, call, x, tgt.numpy(), notes)

    for name, cls in methods:
        try:
            options = explainer_options(name, cls, ctx)
            maps[name], sec = timed(lambda: explain_once(name, cls, options))
        except Exception as err:  # noqa: BLE001 - a method that cannot explain this model is reported, not fatal
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
            log(f"    {name}: failed ({failed[name]})")
            continue
        seconds[name] = sec / len(x)
        log(f"    {name}: {seconds[name] * 1e3:.1f} ms/input")
        if _peer_names([name], peer):  # right after lumos's run, so that both see the same machine load
            peer_maps[name] = _peer_map(name, model, x, tgt, ctx, log, peer_failed)
    peer_rows = {}
    for name, (a, sec) in peer_maps.items():
        if a is not None:
            peer_rows[name] = {**white_box_metrics(a, mask, absolute=True), **bootstrap_se(a, mask, seed=seed),
                               "time_per_input": sec / len(x)}
            log(f"    tint {name}: {sec / len(x) * 1e3:.1f} ms/input")
    maps[RANDOM] = _random_map(x.shape, seed)
    seconds[RANDOM] = 0.0
    results = {}
    nf = min(scale.faith_inputs, len(x))
    fill = None
    if setting.kind == "ismail":
        fill = ismail_base(np.random.default_rng([seed, 99]), 1, t, c, "gaussian")[0].astype(np.float32)
    for name, a in maps.items():
        row = white_box_metrics(a, mask, absolute=True)
        row.update(faithfulness(model, x[:nf], a[:nf], target, output, b["faith_steps"], seed))
        if fill is not None:
            row["accuracy_drop"] = masked_accuracy_drop(model, x, y, a, fill)
        row["time_per_input"] = seconds[name]
        if name in peer_rows:
            row.update(bootstrap_se(a, mask, seed=seed))
        results[name] = row
    info["n_true"] = int(mask.sum())
    return {"methods": results, "info": info, "skipped": skipped, "failed": failed, "notes": notes,
            "tint": peer_rows, "tint_failed": peer_failed}


class FlatSteps(nn.Module):
    """The logits of every step, flattened: (N, C, T) -> (N, K * T), for the mask methods
    that tint fits to all steps' outputs at once."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_all(x).flatten(1)


def _run_hmm(setting: Setting, scale: Scale, seed: int, only, log, cache, peer=False) -> dict:
    h, b = scale.hmm, scale.budget
    data = make_switching_hmm(h["n_train"] + h["n_test"], h["length"], seed=seed)
    tr, te = data.split(h["n_train"])
    if 0 < int(b.get("hmm_inputs") or 0) < len(te.X):  # the same draw and model, fewer sequences explained
        te = te.split(int(b["hmm_inputs"]))[0]
    model = GRUClassifier(3, 2, hidden=h["hidden"])
    info: dict[str, Any] = {"seed": seed}
    info["training"] = train(model, tr.X, tr.y, epochs=h["epochs"], lr=5e-3, seed=seed, per_step=True, cache=cache,
                             target_acc=1.01, name=f"hmm-gru-s{seed}")
    with torch.no_grad():
        step_pred = model.forward_all(torch.as_tensor(te.X)).argmax(1).numpy()
    info["test_accuracy"] = float((step_pred == te.y).mean())  # per step, all steps
    info["bayes_accuracy"] = float(((te.extra["label_probs"] > 0.5) == te.y).mean())
    x_all, mask_all = te.X, te.mask
    n, c, length = x_all.shape
    times = np.unique(np.linspace(0, length - 1, h["n_times"]).round().astype(int))
    later = times[len(times) // 2:]  # whole-prefix faithfulness on long prefixes (a 1-step prefix says little)
    faith_times = sorted(set(later[np.linspace(0, len(later) - 1, b["faith_times"]).round().astype(int)].tolist()))
    info.update(n_inputs=n, shape=[c, length], times=times.tolist(), faith_times=faith_times)
    baseline_all = tr.X.mean(axis=0).astype(np.float32)
    bg_rows = np.random.default_rng(seed).permutation(len(tr.X))[:16]
    methods, skipped = plan_methods(model, scale, only, "hmm")
    kept = {name: np.zeros((n, c, len(times))) for name, _ in methods}
    full_maps: dict[str, dict[int, np.ndarray]] = {name: {} for name, _ in methods}
    seconds = {name: 0.0 for name, _ in methods}
    predictions = {name: n * len(times) for name, _ in methods}
    failed: dict[str, str] = {}
    notes: dict[str, str] = {}

    def context(t):
        groups, cells = hmm_step_groups(c, t)
        return Context(kind="hmm", length=t, seed=seed, budget=b, baseline=baseline_all[:, :t],
                       x_train=tr.X[:, :, :t], background=tr.X[bg_rows, :, :t], groups=groups, window=1,
                       cheap_model=False, perturb_groups=groups,
                       shap_background=np.concatenate([np.zeros_like(x_all[:, :, :t]), x_all[:, :, :t]]),
                       lime_groups=cells)

    def attempt(name, cls, net, ctx, x, target):
        """lumos's map (None when it fails), timed as the peer is (:func:`timed`), on the
        target the peer gets (None: the masks fitted to every step's outputs)."""
        def once():
            explainer, call = make_explainer(name, cls, net, ctx, options)
            return _explain(explainer, call, x, None if target is None else target.numpy(), notes)

        try:
            options = explainer_options(name, cls, ctx)
            a, sec = timed(once)
        except Exception as err:  # noqa: BLE001 - reported in the table, not fatal
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
            log(f"    {name}: failed ({failed[name]})")
            return None
        seconds[name] += sec
        return a

    peers = _peer_names([nm for nm, _ in methods], peer)
    peer_kept = {name: np.zeros((n, c, len(times))) for name in peers}
    peer_seconds = {name: 0.0 for name in peers}
    peer_failed: dict[str, str] = {}
    once = [(nm, cls) for nm, cls in methods if nm in PER_STEP | SEQUENCE_MASKS]
    for name, cls in once:  # one run over the whole sequences explains every step
        net = FlatSteps(model) if name in SEQUENCE_MASKS else model
        whole = None if name in SEQUENCE_MASKS else _predicted(model, x_all)
        a = attempt(name, cls, net, context(length), x_all, whole)
        if a is not None:
            kept[name][:] = a[:, :, times]
            full_maps[name] = {t: a[:, :, : t + 1] for t in faith_times}
            predictions[name] = n * length
        if name in peers:
            pa, sec = _peer_map(name, net, x_all, whole, context(length), log, peer_failed)
            if pa is not None:
                peer_kept[name][:] = pa[:, :, times]
                peer_seconds[name] += sec
    for j, t in enumerate(times):
        ctx = context(int(t) + 1)
        prefix = x_all[:, :, : t + 1]
        predicted = _predicted(model, prefix)  # the target of both libraries at this step
        for name, cls in methods:
            if name in failed or name in PER_STEP | SEQUENCE_MASKS:
                continue
            a = attempt(name, cls, model, ctx, prefix, predicted)
            if a is None:
                continue
            kept[name][:, :, j] = a[:, :, t]
            if int(t) in faith_times:
                full_maps[name][int(t)] = a
            if name in peers and name not in peer_failed:
                pa, sec = _peer_map(name, model, prefix, predicted, ctx, log, peer_failed)
                if pa is not None:
                    peer_kept[name][:, :, j] = pa[:, :, t]
                    peer_seconds[name] += sec
    mask = mask_all[:, :, times]
    results = {}
    maps = {k: v for k, v in kept.items() if k not in failed}
    maps[RANDOM] = _random_map((n, c, len(times)), seed)
    nf = min(scale.faith_inputs, n)
    for name, a in maps.items():
        row = white_box_metrics(a, mask, absolute=True)
        faith = []
        for t in faith_times:
            full = full_maps[name][t] if name != RANDOM else _random_map((n, c, t + 1), seed + t)
            faith.append(faithfulness(model, x_all[:nf, :, : t + 1], full[:nf], None, "softmax", b["faith_steps"],
                                      seed))
        row.update({k: float(np.mean([f[k] for f in faith])) for k in FAITHFULNESS})
        row["time_per_input"] = seconds.get(name, 0.0) / predictions.get(name, 1)
        if name in peers:
            row.update(bootstrap_se(a, mask, seed=seed))
        results[name] = row
        if name != RANDOM:
            log(f"    {name}: {row['time_per_input'] * 1e3:.1f} ms/prediction, AUROC {row['auroc']:.3f}")
    peer_rows = {}
    for name in peers:
        if name in peer_failed or name in failed:
            continue
        pa = peer_kept[name]
        peer_rows[name] = {**white_box_metrics(pa, mask, absolute=True), **bootstrap_se(pa, mask, seed=seed),
                           "time_per_input": peer_seconds[name] / predictions.get(name, 1)}
        log(f"    tint {name}: {peer_rows[name]['time_per_input'] * 1e3:.1f} ms/prediction, "
            f"AUROC {peer_rows[name]['auroc']:.3f}")
    info["n_true"] = int(mask.sum())
    return {"methods": results, "info": info, "skipped": skipped, "failed": failed, "notes": notes,
            "tint": peer_rows, "tint_failed": peer_failed}


# -- aggregation and tables ------------------------------------------------------------------------------------
def aggregate(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every metric of every method (a method
    that failed on some seed is averaged over the others)."""
    names = sorted({m for r in runs for m in r["methods"]}, key=lambda k: (k == RANDOM, k))
    out = {}
    for name in names:
        rows = [r["methods"][name] for r in runs if name in r["methods"]]
        metrics = sorted({k for row in rows for k in row})
        out[name] = {}
        for k in metrics:
            vals = np.array([row[k] for row in rows if k in row], dtype=float)
            out[name][k] = (float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
                            float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else None, len(vals))
    return out


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.1f}"
    return f"{v:.{digits}f}"


def _cell(stat, digits=3) -> str:
    mean, std, _ = stat
    if std is None:
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def _time(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def setting_table(setting: Setting, agg: dict, runs: list[dict], scale: Scale) -> str:
    pub = PUBLISHED.get(setting.key)
    info = [r["info"] for r in runs]
    n_true = int(np.mean([i["n_true"] for i in info]))
    lines = [f"# {setting.title}", ""]
    i0 = info[0]
    desc = [f"Scale `{scale.name}`, {len(runs)} seed(s) ({', '.join(str(i['seed']) for i in info)}), "
            f"{i0['n_inputs']} test inputs of shape {tuple(i0['shape'])} (channels x steps)."]
    if setting.kind == "hmm":
        desc.append(f"GRU(hidden {scale.hmm['hidden']}) trained on every step's label; per-step test accuracy "
                    f"{np.mean([i['test_accuracy'] for i in info]):.3f} (Bayes rule with the true probabilities: "
                    f"{np.mean([i['bayes_accuracy'] for i in info]):.3f}). The prediction at each of "
                    f"{len(i0['times'])} steps ({', '.join(map(str, i0['times']))}) is explained on its prefix "
                    f"(tint's TimeForwardTunnel, target: the predicted class) and the step's own column is kept; "
                    f"faithfulness scores use the whole prefix maps at steps {', '.join(map(str, i0['faith_times']))}. "
                    "GradientShap as in tint's experiments/hmm/main.py: the references are zeros and the test "
                    "inputs themselves (each prefix), 50 samples, noise σ = 1e-4.")
    elif setting.kind == "ismail":
        accs = [i["test_accuracy"] for i in info]
        desc.append(f"{setting.model.upper() if setting.model != 'transformer' else 'Transformer'} trained on "
                    f"{scale.ismail['n_train']} samples, test accuracy {np.mean(accs):.3f}. Target: the predicted "
                    "class (softmax probability in the faithfulness scores).")
    else:
        desc.append("White box f(x) = sum of x² over the salient cells; explained output: the raw score.")
    desc.append(f"White-box metrics on |attributions| (tint's definitions, pooled over the batch; information and "
                f"entropy are sums over the {n_true} true cells of the batch).")
    lines += [" ".join(desc), ""]
    if pub:
        scale_ratio = n_true / pub["n_true"]
        lines += [f"Published: {pub['source']}. Published information and entropy are rescaled to this batch's "
                  f"number of true cells (x {scale_ratio:.3g}).", ""]
    elif setting.kind == "ismail":
        lines += [f"Published: {ISMAIL_SOURCE}.", ""]
    cols = ["aup", "aur", "auroc", "auprc", "information", "entropy"]
    head = ["method"]
    for c in cols:
        head += [c.upper() if c.startswith("au") else c, "published"]
    head.append("time per input")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in agg.items():
        cells = [name if name != RANDOM else "random (chance)"]
        for c in cols:
            cells.append(_cell(row[c]) if c in row else "-")
            p = pub["values"].get(name, {}).get(c) if pub else None
            if p is not None and c in ("information", "entropy"):
                p = (p[0] * n_true / pub["n_true"], p[1] * n_true / pub["n_true"])
            cells.append("-" if p is None else (f"{_fmt(p[0])} ± {_fmt(p[1])}" if p[1] else _fmt(p[0])))
        cells.append(_time(row["time_per_input"][0]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Ground-truth-free faithfulness (|attributions|, canvas 0): deletion AUC (lower is better), "
              "insertion AUC (higher), ROAD-like MoRF mean score (lower)"
              + ("; Ismail et al.'s accuracy drop when the top 10..90 % of the saliency mass is replaced by a fresh "
                 "noise draw (higher is better, percentage points)" if setting.kind == "ismail" else "") + ".", ""]
    fcols = list(FAITHFULNESS) + (["accuracy_drop"] if setting.kind == "ismail" else [])
    head = ["method", "deletion ↓", "insertion ↑", "ROAD ↓"]
    head += ["accuracy drop ↑"] if setting.kind == "ismail" else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in agg.items():
        lines.append("| " + " | ".join([name if name != RANDOM else "random (chance)"]
                                       + [_cell(row[c], 3 if c != "accuracy_drop" else 1) for c in fcols]) + " |")
    skipped = {k: v for r in runs for k, v in r["skipped"].items()}
    failed = {k: v for r in runs for k, v in r["failed"].items()}
    if skipped or failed:
        lines += ["", "Not run: " + "; ".join(f"`{k}` ({v})" for k, v in sorted(skipped.items()))
                  + ("" if not failed else ". Failed: " + "; ".join(f"`{k}` ({v})" for k, v in sorted(failed.items())))]
    notes = {k: v for r in runs for k, v in r.get("notes", {}).items() if k in agg}
    if notes:
        lines += ["", "Warnings: " + "; ".join(f"`{k}`: {v}" for k, v in sorted(notes.items()))]
    missing = [m for m in (pub["values"] if pub else {}) if m not in agg]
    if missing:
        lines += ["", "Published methods not registered in lumos yet (or not run): " + ", ".join(missing) + "."]
    lines += peer_table(setting, agg, runs, scale)
    return "\n".join(lines) + "\n"


PUBLISHED_FOLDS = 5  # tint's results.csv: 5 folds per method


def _se_of(stat, row: dict, key: str) -> float:
    """Standard error of an aggregated metric: std / sqrt(seeds) over two or more seeds, the
    bootstrap standard error over the test inputs with one seed."""
    mean, std, n = stat
    if n >= 2 and std is not None:
        return float(std / np.sqrt(n))
    se = row.get(f"{key}_se")
    return float(se[0]) if se is not None else float("nan")


def _agree(a: tuple[float, float], b: tuple[float, float]) -> tuple[bool, float]:
    """Whether two estimates (mean, s.e.) are within two standard errors of their difference."""
    d = a[0] - b[0]
    se = float(np.sqrt(np.nansum([a[1] ** 2, b[1] ** 2])))
    return bool(abs(d) <= 2 * se + 5e-4), d  # 5e-4: the tables print 3 decimals


EXPLAINED: dict[tuple[str, str], str] = {}
"""(setting, method) -> why lumos differs from the published value (filled from the runs)."""

PEER_NOTES: dict[str, Callable[["Setting"], str | None]] = {
    "deeplift": lambda s: None if s.kind != "ismail" or s.model == "lstm" else (
        "`deeplift`: the model pools over time with `nn.AdaptiveMaxPool1d`, for which captum 0.9's DeepLift "
        "(tint's deep_lift) has no rule (its table lists MaxPool1d/2d/3d only): the pool passes its ordinary "
        "gradient and captum's contributions miss f(x) - f(x') (on the tiny TCN of `tests/test_deeplift_tcn.py` "
        "by 1.06..2.67 against changes f(x) - f(x') of 0.03..1.62), while lumos applies captum's own max-pool "
        "rule to it and sums to the change to float rounding; the rest of the network (causal padding, "
        "dilated and 1x1 convolutions, the residual addition, dropout, weight norm) is linear and both treat "
        "it alike (equal to 1e-12 in float64 where captum sees the pool as `Copy -> MaxPool1d(T)`, and on the "
        "TCN and the transformer with average pooling). The gap is the pool's rule: small on the TCN (AUP "
        "0.747 vs 0.745 at --quick), large on the transformer (0.270 vs 0.128), where layer norm and attention "
        "have a rule in neither library (both pass their gradient: neither sums to the change there)"),
    "lime": lambda s: (
        "`lime` runs in captum's configuration (`penalty='l1', alpha=0.01, kernel='cosine', "
        "include_input=False`: a weighted Lasso, the cosine kernel of width 1, no all-on sample; equal to captum "
        "on the same samples to float rounding, `tests/test_lime_timeseries.py`), on the same groups, baseline "
        "and sample count; only the draws differ. lumos's default LIME is lime's (weighted ridge, alpha 1, the "
        "kernel on the number of groups switched off, the input as first sample), which ranks cells differently "
        "when there are more groups than samples (rare-feature ARMA at --quick, 500 groups, 100 samples: AUP "
        "0.53 with the ridge against 0.87 with the Lasso)"),
}
"""method -> (setting -> a note on why lumos and tint (live) differ there, or None): the peer
runs what tint's experiments run (captum's classes with their defaults), and where that is
not the published definition the table says so."""


def peer_table(setting: "Setting", agg: dict, runs: list[dict], scale: Scale) -> list[str]:
    """Published / lumos / tint (live) for the methods tint has, with s.e. and the time ratio."""
    peer_runs = [{"methods": r.get("tint", {})} for r in runs]
    pagg = aggregate(peer_runs) if any(r["methods"] for r in peer_runs) else {}
    pub = PUBLISHED.get(setting.key, {}).get("values", {})
    names = [m for m in agg if m != RANDOM and (m in pagg or m in pub)]
    version = next((r["info"].get("tint_version") for r in runs if r["info"].get("tint_version")), None)
    if not names:
        return []
    lines = ["", "## Published, lumos and tint (live) side by side", "",
             ("tint " + version + " run on the same model, inputs, targets, baselines and budgets (equal work; "
              if version else "tint not installed for this run: no live column (")
             + "see `lumos.benchmarks.timeseries_tint`). mean ± s.e.: over seeds with two or more, else bootstrap "
             "over the test inputs; published: mean ± s.e. over tint's 5 folds. ✓: within two standard errors of "
             "the difference; ✗ with the difference otherwise. Time ratio: lumos / tint per explained prediction, "
             f"both timed by `timed` (the fastest of up to {TIMING_REPEATS} runs when a run takes under "
             f"{TIMING_REPEAT_BELOW:g} s; the target is computed outside the timing and given to both).",
             "", "| method | metric | published | lumos | tint (live) | lumos vs published | lumos vs tint | "
             "time lumos / tint |", "|---|---|---|---|---|---|---|---|"]
    misses = []
    for name in names:
        row, prow = agg[name], pagg.get(name)
        ratio = "-"
        if prow and prow["time_per_input"][0] > 0 and row["time_per_input"][0] > 0:
            ratio = f"{row['time_per_input'][0] / prow['time_per_input'][0]:.2f}"
        for k in SE_METRICS:
            lum = (row[k][0], _se_of(row[k], row, k))
            cells = [name, k.upper()]
            p = pub.get(name, {}).get(k)
            pv = (p[0], p[1] / np.sqrt(PUBLISHED_FOLDS)) if p is not None else None
            cells.append("-" if pv is None else f"{_fmt(pv[0])} ± {_fmt(pv[1])}")
            cells.append(f"{_fmt(lum[0])} ± {_fmt(lum[1])}")
            tv = (prow[k][0], _se_of(prow[k], prow, k)) if prow and k in prow else None
            cells.append("-" if tv is None else f"{_fmt(tv[0])} ± {_fmt(tv[1])}")
            for ref in (pv, tv):
                if ref is None:
                    cells.append("-")
                    continue
                ok, d = _agree(lum, ref)
                cells.append("✓" if ok else f"✗ ({d:+.3f})")
            if pv is not None and not _agree(lum, pv)[0]:
                misses.append((name, k, tv is not None and _agree(tv, pv)[0], tv is not None and _agree(lum, tv)[0]))
            cells.append(ratio if k == SE_METRICS[0] else "")
            lines.append("| " + " | ".join(cells) + " |")
    peer_notes = [n for n in (PEER_NOTES[m](setting) for m in names if m in PEER_NOTES and m in pagg) if n]
    if peer_notes:
        lines += ["", "lumos vs tint: " + "; ".join(peer_notes) + "."]
    if misses:
        notes: dict[str, list[str]] = {}
        for name in dict.fromkeys(m[0] for m in misses):
            ks = [m for m in misses if m[0] == name]
            why = EXPLAINED.get((setting.key, name))
            if why is None:
                if all(m[3] for m in ks):
                    why = ("tint, run live on the same model and inputs, agrees with lumos and misses the "
                           "published value too: the difference comes from this run's setting (its model, "
                           "training and test inputs; see above), not from lumos's method")
                elif any(m[2] for m in ks):
                    why = "tint live reaches the published value here and lumos does not: not explained"
                else:
                    why = "no live tint value to separate the setting from the method: not explained"
            notes.setdefault(why, []).append(f"`{name}` ({', '.join(m[1].upper() for m in ks)})")
        lines += ["", "Differences from the published values: "
                  + "; ".join(f"{', '.join(who)}: {why}" for why, who in notes.items()) + "."]
    failed = {k: v for r in runs for k, v in r.get("tint_failed", {}).items()}
    if failed:
        lines += ["", "tint failed: " + "; ".join(f"`{k}` ({v})" for k, v in sorted(failed.items())) + "."]
    return lines


MIN_ACCURACY = 0.8
"""Settings whose model scores below this test accuracy are left out of the ranking summary
(explaining a model that did not learn the task says nothing about the methods)."""


def _accuracy_of(runs: list[dict]) -> float | None:
    accs = [r["info"]["test_accuracy"] for r in runs if "test_accuracy" in r["info"]]
    return float(np.mean(accs)) if accs else None


def which_to_trust(all_agg: dict[str, dict], tolerance: float = 0.05, accuracy: dict | None = None) -> dict:
    """Per setting: the best method by AUROC (ground truth) and the top method by each
    ground-truth-free score (and by their mean rank); whether the pick's AUROC is within
    ``tolerance`` (relative) of the best; Spearman's rho between each score's ranking and
    the AUROC ranking. Settings whose ``accuracy`` is below :data:`MIN_ACCURACY` are
    returned under ``"excluded"``."""
    from scipy.stats import spearmanr

    rows = {}
    excluded = {}
    for key, agg in all_agg.items():
        acc = (accuracy or {}).get(key)
        if acc is not None and acc < MIN_ACCURACY:
            excluded[key] = acc
            continue
        methods = [m for m in agg if m != RANDOM and np.isfinite(agg[m]["auroc"][0])]
        if len(methods) < 2:
            continue
        auroc = {m: agg[m]["auroc"][0] for m in methods}
        best = max(methods, key=lambda m: auroc[m])
        row = {"best": best, "best_auroc": auroc[best], "picks": {}, "rho": {}}
        ranks = []
        for f, higher in FAITHFULNESS.items():
            vals = {m: agg[m][f][0] for m in methods}
            sign = 1.0 if higher else -1.0
            pick = max(methods, key=lambda m: sign * vals[m])
            row["picks"][f] = (pick, auroc[pick], auroc[pick] >= (1 - tolerance) * auroc[best])
            order = np.array([sign * vals[m] for m in methods])
            ranks.append(np.argsort(np.argsort(-order)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant rankings (ties everywhere) give NaN, shown as '-'
                rho = spearmanr(order, [auroc[m] for m in methods]).statistic
            row["rho"][f] = float(rho) if np.isfinite(rho) else float("nan")
        mean_rank = np.mean(ranks, axis=0)
        pick = methods[int(np.argmin(mean_rank))]
        row["picks"]["consensus"] = (pick, auroc[pick], auroc[pick] >= (1 - tolerance) * auroc[best])
        rows[key] = row
    if excluded:
        rows["excluded"] = excluded
    return rows


def summary_table(trust: dict, titles: dict[str, str], scale: Scale, meta: dict | None = None) -> str:
    picks = list(FAITHFULNESS) + ["consensus"]
    lines = ["# Which method to trust? Ground-truth-free rankings against the ground truth", "",
             f"Scale `{scale.name}`, {scale.seeds} seed(s)"
             + (f", {meta['seconds'] / 60:.0f} min on {meta['threads']} torch threads" if meta else "")
             + ". For every setting, the method with the best AUROC against the true mask "
             "(tint's definition, |attributions|) and the method each ground-truth-free faithfulness score would "
             "choose: lowest deletion AUC, highest insertion AUC, lowest ROAD-like MoRF score, and the best mean "
             "rank over the three (consensus). A pick is a hit (✓) when its AUROC is within 5 % (relative) of the "
             "best AUROC. ρ: Spearman correlation between a score's ranking of the methods and their AUROC "
             "ranking. The random map is not ranked.", "",
             "| setting | best by AUROC | " + " | ".join(f"pick by {p}" for p in picks)
             + " | ρ deletion | ρ insertion | ρ ROAD |", "|" + "---|" * (2 + len(picks) + 3)]
    hits = {p: 0 for p in picks}
    excluded = trust.get("excluded", {})
    trust = {k: v for k, v in trust.items() if k != "excluded"}
    for key, row in trust.items():
        cells = [titles.get(key, key), f"{row['best']} ({row['best_auroc']:.3f})"]
        for p in picks:
            name, au, ok = row["picks"][p]
            hits[p] += bool(ok)
            cells.append(f"{name} ({au:.3f}) {'✓' if ok else '✗'}")
        cells += [_fmt(row["rho"][f], 2) for f in FAITHFULNESS]
        lines.append("| " + " | ".join(cells) + " |")
    n = len(trust)
    lines += ["", "| | " + " | ".join(f"pick by {p}" for p in picks) + " |", "|---|" + "---|" * len(picks),
              "| settings where the pick is within 5 % of the best AUROC | "
              + " | ".join(f"{hits[p]} / {n}" for p in picks) + " |"]
    if excluded:
        lines += ["", f"Left out (model test accuracy below {MIN_ACCURACY:.0%}, so its explanations say nothing about "
                  "the methods): " + "; ".join(f"{titles.get(k, k)} ({v:.3f})" for k, v in excluded.items()) + "."]
    return "\n".join(lines) + "\n"


# -- driver --------------------------------------------------------------------------------------------------
def run(scale: str | Scale = "quick", out_dir: str | Path | None = None, methods=None, settings=None, seeds=None,
        log: Callable[[str], None] | None = None, cache: bool = True, tint: bool | None = None,
        budget: dict | None = None) -> dict:
    """Run the benchmark and write the tables; returns ``{"settings": {key: aggregate},
    "trust": ..., "runs": ...}``. ``methods``: names to run (None: every applicable
    registered method); ``settings``: substrings selecting settings by key; ``tint``: run tint
    beside lumos (None: where it is installed); ``budget``: overrides of the scale's budget
    (e.g. ``{"mask_epochs": 1000}``)."""
    from lumos.benchmarks.timeseries_tint import version as tint_version
    scale = SCALES[scale] if isinstance(scale, str) else scale
    if seeds is not None:
        scale = replace(scale, seeds=int(seeds))
    if budget:
        scale = replace(scale, budget={**scale.budget, **budget})
    peer_version = tint_version() if tint is not False else None
    if tint and peer_version is None:
        raise ImportError("tint is not installed: pip install -c constraints.txt --no-deps time-interpret "
                          "pytorch-lightning lightning-utilities torchmetrics (or run without --tint)")
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    only = tuple(methods) if methods is not None else None
    chosen = [s for s in settings_of(scale) if not settings or any(f in s.key for f in settings)]
    all_agg, all_runs, titles, accuracy = {}, {}, {}, {}
    started = time.perf_counter()
    for setting in chosen:
        runs = []
        for seed in range(scale.seeds):
            t0 = time.perf_counter()
            log(f"{setting.key} seed {seed}")
            runs.append(run_setting(setting, scale, seed, only=only, log=log, cache=cache,
                                    peer=peer_version is not None))
            runs[-1]["info"]["tint_version"] = peer_version
            log(f"  {setting.key} seed {seed}: {time.perf_counter() - t0:.1f} s")
        agg = aggregate(runs)
        all_agg[setting.key], all_runs[setting.key], titles[setting.key] = agg, runs, setting.title
        accuracy[setting.key] = _accuracy_of(runs)
        (out / f"{setting.key}.md").write_text(setting_table(setting, agg, runs, scale))
    trust = which_to_trust(all_agg, accuracy=accuracy)
    meta = {"scale": scale.name, "seeds": scale.seeds, "seconds": round(time.perf_counter() - started, 1),
            "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "methods": sorted(lumos.list_methods()), "tint": peer_version,
            "budget": scale.budget}
    (out / "summary.md").write_text(summary_table(trust, titles, scale, meta))
    keep = ("info", "methods", "skipped", "failed", "notes", "tint", "tint_failed")
    stored = {k: {"runs": [{f: r.get(f, {}) for f in keep} for r in v]} for k, v in all_runs.items()}
    (out / "results.json").write_text(json.dumps({"meta": meta, "settings": stored, "trust": trust}, indent=1,
                                                 default=_json_default))
    log(f"done in {meta['seconds']} s; tables in {out}")
    return {"settings": all_agg, "trust": trust, "runs": all_runs, "meta": meta}


def render(out_dir: str | Path | None = None) -> dict:
    """Rewrite the tables of ``out_dir`` from its ``results.json`` (no model is run)."""
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    scale = replace(SCALES[meta["scale"]], seeds=int(meta["seeds"]), budget=meta.get("budget")
                    or SCALES[meta["scale"]].budget)
    titles_of = {s.key: s for s in settings_of(scale)}
    all_agg, titles, accuracy = {}, {}, {}
    for key, block in data["settings"].items():
        runs = block["runs"]
        setting = titles_of.get(key) or Setting(key, "ismail" if key.startswith("ismail") else key, "", key, key)
        agg = aggregate(runs)
        all_agg[key], titles[key] = agg, setting.title
        accuracy[key] = _accuracy_of(runs)
        (out / f"{key}.md").write_text(setting_table(setting, agg, runs, scale))
    trust = which_to_trust(all_agg, accuracy=accuracy)
    (out / "summary.md").write_text(summary_table(trust, titles, scale, meta))
    data["trust"] = trust
    (out / "results.json").write_text(json.dumps(data, indent=1, default=_json_default))
    return {"settings": all_agg, "trust": trust, "meta": meta}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def build_parser(prog: str = "lumos bench timeseries", default_out: Path | str = DEFAULT_OUT) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="small sizes, fewer settings, one seed (~3 min)")
    group.add_argument("--scale", choices=sorted(SCALES), default=None,
                       help="tiny, quick, medium, large, full or published (default: full; see SCALES)")
    parser.add_argument("--out", default=str(default_out), help=f"folder for the tables (default: {default_out})")
    parser.add_argument("--methods", default=None, help="comma-separated method names (default: all applicable)")
    parser.add_argument("--settings", default=None, help="comma-separated substrings of setting keys")
    parser.add_argument("--seeds", "--folds", dest="seeds", type=int, default=None,
                        help="number of seeds, i.e. folds: each draws its own data, trains its own model and is "
                             "one row of the mean ± s.e. beside tint's 5 published folds (default: the scale's; "
                             "--scale published --settings hmm --folds 5 for tint's count)")
    parser.add_argument("--no-cache", action="store_true", help="retrain the models")
    parser.add_argument("--render", action="store_true", help="only rewrite the tables from --out's results.json")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--tint", dest="tint", action="store_true", default=None,
                      help="run tint beside lumos (an error if it is not installed; default: where installed)")
    peer.add_argument("--no-tint", dest="tint", action="store_false", help="lumos only")
    parser.add_argument("--budget", action="append", default=[], metavar="KEY=VALUE",
                        help="override a budget of the scale, e.g. --budget mask_epochs=1000 (repeatable)")
    return parser


def main(argv=None, prog: str = "lumos bench timeseries", default_out: Path | str = DEFAULT_OUT) -> int:
    args = build_parser(prog, default_out).parse_args(argv)
    if args.render:
        render(args.out)
        return 0
    scale = "quick" if args.quick else (args.scale or "full")
    budget = {}
    for item in args.budget:
        key, sep, value = item.partition("=")
        if not sep or key not in SCALES["full"].budget:
            raise SystemExit(f"--budget {item!r}: expected KEY=VALUE with KEY one of {', '.join(SCALES['full'].budget)}")
        budget[key] = int(value)
    run(scale, args.out, methods=args.methods.split(",") if args.methods else None,
        settings=args.settings.split(",") if args.settings else None, seeds=args.seeds, cache=not args.no_cache,
        tint=args.tint, budget=budget)
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m lumos.benchmarks.timeseries"))
