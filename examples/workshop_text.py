"""Workshop: the attention debate on real sentences, and a planted cue in text.

Data: the movie-review sentence polarity set of Pang & Lee (2005), 10,662 sentences, the
"MR" set of Kim (2014) (``movie_review_polarity.npz`` in ``$LUMOS_DATA``; see
``shared/data/README.md``). Fold 0 of its 10-fold assignment is the test set (``--folds
all`` runs every fold for the accuracy table); the vocabulary is built on the training
folds. Three models are trained from scratch on the CPU (weights cached):

- Kim (2014) CNN-rand (filter widths 3, 4, 5 x 100 maps, dropout 0.5, max-over-time, max-norm 3,
  mini-batch 50, 300-d word vectors U(-0.25, 0.25), early stopping on 10 % of the training
  folds), trained with Adam for at most 4 epochs instead of Kim's Adadelta for 25, for time
  (``benchmarks/kim_cnn_rand.py`` compares them);
- a BiLSTM with additive attention (the encoder of Jain & Wallace 2019);
- a small post-norm ``nn.TransformerEncoder`` read at ``<cls>``.

Then:

1. **Jain & Wallace (2019, arXiv:1902.10186)**, on the BiLSTM: Kendall τ between the
   attention weights and (a) gradient importance ``|Σ_d ∂ŷ/∂e_td · e_td|`` computed with
   the attention detached, as in their code, (b) leave-one-out importance
   ``TVD(ŷ(x), ŷ(x without word t))``; mean ± std and the share of sentences with p < 0.05
   (the shape of their Table 2). Adversarial attention (their section 4.2): for each
   sentence the distribution of largest Jensen–Shannon divergence from the learned one
   (natural log, at most ln 2 ≈ 0.693) whose output stays within TVD ε = 0.01, found by
   Adam on the attention logits with a hinge penalty on the output change, starting from
   the reversed ranking ``softmax(−log α)``; the best feasible iterate is kept.
2. **Wiegreffe & Pinter (2019, arXiv:1908.04626)**: the same BiLSTM trained with attention
   frozen uniform (their first test) against the learned one, and the variance of the
   attention across random seeds (JSD between the attention of models trained with other
   seeds, their second test), beside the adversarial JSD.
3. **A planted cue**: the rare token ``zxq`` is inserted into a share of the training
   sentences and decides their label (positive). The test sentences that are negative are
   given the cue too (labelled positive, like training): accuracy with the cue and after
   removing it, and every method's relevance mass on the cue (share of the positive
   relevance for "positive" on that one word; a random explanation scores 1/length).
   For the transformer the ``<cls>`` position is left out of the mass and of the colour
   scale (perturbation methods do switch it, as any other token).

Tables are printed and written to ``workshop_text.md`` beside the published numbers;
figures go to the figures folder (``examples/output`` unless ``--update-figures``).

Run:  python examples/workshop_text.py     (cold, nothing cached: 377 s wall, 252 s CPU on one
torch thread of the shared 2-core machine at load average 3.7-4.1; training is 87 % of it; the
trained weights are cached afterwards)
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _workshop import figures_dir, save, setup

CUE = "zxq"
EPS = 0.01

#: Published numbers (what each paper reports on which data), shown beside ours.
PUBLISHED = {
    "cnn": ("76.1 % (Kim 2014, CNN-rand, MR, 10-fold CV); this training over the 10 folds: 0.768 ± 0.007 "
            "(benchmarks/kim_cnn_rand.md)"),
    "bow": "0.772 ± 0.008 (binary bag of words + logistic regression, 10 folds; shared/data/README.md)",
    "lstm": "no MR number (Jain & Wallace report BiLSTM+attention on SST, IMDB, ...)",
    "transformer": "no published MR number for a from-scratch encoder of this size",
    # Jain & Wallace's Table 2 itself was not reachable (the stored copies of 1902.10186 expose only
    # their openings), but their code repository keeps the result files its pipeline wrote for that
    # table: JW_AUTHOR_FILES below, read from the stored repository, each number beside its file.
    "tau": ("Jain & Wallace 2019 (arXiv:1902.10186), Table 2 shape: Kendall τ between attention and gradient "
            "(τ_g) / leave-one-out (τ_loo) importance, mean ± std and fraction with p ≤ 0.05, per data set and "
            "predicted class. The printed table was not found in a stored copy; the table below gives the "
            "authors' own result files for the BiLSTM + tanh attention encoder (their code, "
            "github.com/successar/AttentionExplanation, graph_outputs/), the paper's figure on its data sets "
            "(SST, IMDB, 20News, AgNews, Diabetes, Anemia — not Pang & Lee's sentences). The files changed "
            "between the repository's commits (SST at two commits is shown); they are not checked against "
            "the printed table"),
    "adversarial": ("Jain & Wallace 2019, section 4.2 (adversarial attention: largest JSD from the learned "
                    "attention with the output kept within a TVD bound), per data set incl. SST; values: "
                    "not found in the stored copy"),
    "uniform": ("Wiegreffe & Pinter 2019 (arXiv:1908.04626), Table 2/3: F1 of learned vs frozen-uniform "
                "attention per data set incl. SST (MR is not one of their data sets); values: not found in "
                "the stored copy (searched: the authors' repository sarahwie/attention — README, run scripts, "
                "Seed_graphs.ipynb, no result files; ACL anthology D19-1002 and arXiv pages, abstracts only; "
                "reviews and blog posts quoting the paper, none with the table)"),
    "seeds": ("Wiegreffe & Pinter 2019, Fig. 3/4: JSD between the attention of models trained with "
              "different random seeds, per data set, beside the adversarial JSD; values: not found in the "
              "stored copy (their Seed_graphs.ipynb holds the violin plot, not the numbers)"),
}

_JW = "successar/AttentionExplanation"
#: Jain & Wallace's result files for the BiLSTM + tanh attention encoder (``pval_sig, mean, std``
#: per predicted class, written by their ``plot_SP_histogram_by_class``: share of p ≤ 0.05, mean and
#: std of Kendall τ). Rows: (data set, importance, class, mean, std, share, repository file @ commit).
#: ``GradientPval`` is τ(attention, their gradient importance ``XxE[X]``), ``pyxc-pyc_pval``
#: τ(attention, leave-one-out output change); classes are the rounded predicted class (0, 1).
JW_AUTHOR_FILES = [
    (ds, imp, cls, m, sd, f, f"{_JW} graph_outputs/{folder}/{file} @{commit}")
    for ds, file, commit, values in (
        ("SST", "sst+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((0.337, 0.189, 0.43), (0.286, 0.187, 0.38)), "loo": ((0.268, 0.191, 0.29), (0.236, 0.192, 0.26))}),
        ("SST (later run)", "sst+lstm+tanh.csv", "607eb50",
         {"gradient": ((0.365, 0.204, 0.50), (0.314, 0.210, 0.41)), "loo": ((0.293, 0.191, 0.35), (0.279, 0.205, 0.34))}),
        ("IMDB", "imdb+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((0.352, 0.083, 0.99), (0.358, 0.090, 0.99)), "loo": ((0.319, 0.076, 0.99), (0.302, 0.084, 0.97))}),
        ("20News (sports)", "20News_sports+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((-0.053, 0.148, 0.25), (0.237, 0.174, 0.68)), "loo": ((-0.053, 0.140, 0.24), (0.182, 0.172, 0.59))}),
        ("AgNews", "agnews+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((0.384, 0.112, 0.91), (0.452, 0.111, 0.96)), "loo": ((0.304, 0.123, 0.72), (0.373, 0.121, 0.86))}),
        ("Diabetes", "diab+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((0.347, 0.077, 1.00), (0.317, 0.079, 1.00)), "loo": ((0.423, 0.045, 1.00), (0.437, 0.056, 1.00))}),
        ("Anemia", "anemia+lstm+attention(tanh).csv", "42eb487",
         {"gradient": ((0.457, 0.050, 1.00), (0.466, 0.053, 1.00)), "loo": ((0.443, 0.053, 1.00), (0.466, 0.060, 1.00))}),
    )
    for imp, folder in (("gradient", "GradientPval"), ("loo", "pyxc-pyc_pval"))
    for cls, (m, sd, f) in enumerate(values[imp])
]

#: Why Gradient x Input misses the planted cue on the transformer (lumos equals captum there).
GXI_TRANSFORMER_NOTE = (
    "Gradient x Input on the transformer is computed as captum's LayerGradientXActivation on the token "
    "embedding computes it (equal to 1e-6, tests/test_text_gxi_transformer.py); its low mass is the method's: "
    "a LayerNorm is scale invariant, so the first-order terms e·∂f/∂e of the tokens that enter one LayerNorm "
    "cancel (Euler's theorem); in a one-block pre-norm encoder GxI on a token equals −∂f/∂p·p exactly, the "
    "gradient times the position embedding. Ali et al. 2022 (arXiv:2202.07304) name LayerNorm and attention "
    "as why gradients explain transformers unreliably. IG, which integrates from the pad embedding, does not "
    "rely on the first-order term.")

#: Model settings: "paper" for the real sentences, "tiny" for the tests' synthetic corpus.
SETTINGS = {
    "paper": {
        # Kim's architecture, init, dropout, max-norm and mini-batch; Adam instead of Adadelta, at most 4
        # epochs, the best on 10 % of the training folds kept (benchmarks/kim_cnn_rand.md: best epoch 2-4 on
        # the 10 folds)
        "cnn": dict(build=dict(embed_dim=300, maps=100, dropout=0.5), fit=dict(epochs=4, lr=1e-3, batch_size=50),
                    max_norm=3.0, trainer=dict(dev_share=0.1, bucket=True)),
        # mini-batch 100 at lr 2e-3: the LSTM's time steps run one after another, so half the batches is
        # ~1.4x faster at the same accuracy (fold 0, 10 % dev: test 0.760 vs 0.756 at 50 / 1e-3)
        "lstm": dict(build=dict(embed_dim=128, hidden=64), fit=dict(epochs=4, lr=2e-3, batch_size=100),
                     trainer=dict(bucket=True)),
        "transformer": dict(build=dict(dim=64, depth=2, heads=4, ff=128, dropout=0.1),
                            fit=dict(epochs=5, lr=5e-4, batch_size=50), trainer=dict(bucket=True)),
        "n_analyse": 400, "seeds": (1, 2), "planted_share": 0.25, "planted_epochs": 3, "n_planted": 200,
        "adv_steps": 400,
    },
    "tiny": {
        "cnn": dict(build=dict(embed_dim=16, maps=8, dropout=0.5), fit=dict(epochs=8, lr=1e-2, batch_size=32),
                    max_norm=3.0, trainer=dict(dev_share=0.1, bucket=True)),
        "lstm": dict(build=dict(embed_dim=16, hidden=8), fit=dict(epochs=8, lr=1e-2, batch_size=32)),
        "transformer": dict(build=dict(dim=16, depth=1, heads=2, ff=32, dropout=0.0),
                            fit=dict(epochs=12, lr=3e-3, batch_size=32)),
        "n_analyse": 30, "seeds": (1,), "planted_share": 0.3, "planted_epochs": 8, "n_planted": 20,
        "adv_steps": 150,
    },
}


def _say(msg, quiet):
    if not quiet:
        print(msg, flush=True)


# --------------------------------------------------------------------------- training
def build(kind: str, vocab_size: int, settings: dict, **over):
    from lumos.models.text import BiLSTMAttention, KimCNN, TransformerText

    cls = {"cnn": KimCNN, "lstm": BiLSTMAttention, "transformer": TransformerText}[kind]
    return cls(vocab_size, **{**settings[kind]["build"], **over})


def model_input(kind: str, X: np.ndarray) -> np.ndarray:
    """Ids as the model reads them (the transformer's carry ``<cls>`` first)."""
    from lumos.data.text import with_cls

    return with_cls(X) if kind == "transformer" else X


def train(kind, ds, settings, seed=0, name=None, cache=True, quiet=False, epochs=None, **over):
    import torch

    from lumos.models.cache import cached_fit
    from lumos.models.text import fit_text

    torch.manual_seed(seed)
    model = build(kind, len(ds.extra["vocab"]), settings, **over)
    fit = dict(settings[kind]["fit"])
    if epochs is not None:
        fit["epochs"] = epochs
    options = dict(settings[kind].get("trainer", {}))
    if settings[kind].get("max_norm"):
        options["max_norm"] = settings[kind]["max_norm"]
    start = time.perf_counter()
    model = cached_fit(model, model_input(kind, ds.X_train), ds.y_train, seed=seed, name=name or f"{ds.name}-{kind}",
                       progress=not quiet, cache=cache, trainer=fit_text, trainer_options=options, **fit)
    _fit_record(model)
    hit = getattr(model, "lumos_cache", {}).get("hit")
    _say(f"  {name or kind}: {'cached' if hit else 'trained'} in {time.perf_counter() - start:.1f} s", quiet)
    return model


def _fit_record(model) -> None:
    """Keep ``fit_text``'s record (dev curve, best epoch) beside the cached weights, and read it
    back on a cache hit, so a cached run reports the same early-stopping epoch."""
    import json
    from pathlib import Path

    path = getattr(model, "lumos_cache", {}).get("path")
    if not path:
        return
    side = Path(path).with_suffix(".fit.json")
    if hasattr(model, "lumos_fit"):
        try:
            side.write_text(json.dumps(model.lumos_fit))
        except OSError:
            pass
    elif side.exists():
        model.lumos_fit = json.loads(side.read_text())


def accuracy(kind, model, X, y, **forward) -> float:
    from lumos.models.text import text_accuracy

    return text_accuracy(model, model_input(kind, X), y, **forward)


def bag_of_words(corpus) -> tuple[float, float]:
    """Binary bag of words + logistic regression (C = 1) over the corpus's folds."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from threadpoolctl import threadpool_limits

    text = np.array([" ".join(s) for s in corpus.tokens])
    accs = []
    with threadpool_limits(limits=1, user_api="blas"):  # see main(): 30x slower with 2 spinning BLAS threads
        for k in range(int(corpus.folds.max()) + 1):
            test = corpus.folds == k
            vec = CountVectorizer(binary=True, token_pattern=r"\S+")
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(vec.fit_transform(text[~test]), corpus.y[~test])
            accs.append(clf.score(vec.transform(text[test]), corpus.y[test]))
    return float(np.mean(accs)), float(np.std(accs))


# --------------------------------------------------------------------------- helpers
def by_length(X: np.ndarray, min_len: int = 1):
    """``(rows, ids)`` groups of sentences of one length, cut to it (no padding inside)."""
    from lumos.data.text import lengths_of

    lengths = lengths_of(X)
    for t in np.unique(lengths):
        if t >= min_len:
            rows = np.flatnonzero(lengths == t)
            yield rows, X[rows, :t]


def jensen_shannon(p, q):
    """JSD (natural log) between rows of two distributions (torch or numpy)."""
    import torch

    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    m = (p + q) / 2

    def kl(a, b):
        return torch.where(a > 0, a * (torch.log(a.clamp_min(1e-300)) - torch.log(b.clamp_min(1e-300))), 0.0).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _tvd(p, q):
    return 0.5 * (p - q).abs().sum(-1)


# --------------------------------------------------------------------------- Jain & Wallace
def importances(model, ids: np.ndarray) -> dict:
    """Attention, gradient importance (attention detached) and leave-one-out TVD for
    sentences of one length ``ids`` (n, T), as Jain & Wallace compute them."""
    import torch

    x = torch.as_tensor(ids, dtype=torch.long)
    store = []

    def leaf(module, inputs, output):
        store.append(output.detach().requires_grad_(True))
        return store[-1]

    handle = model.embedding.register_forward_hook(leaf)
    try:
        logits, alpha = model(x, return_attention=True, detach_attention=True)
    finally:
        handle.remove()
    p = torch.softmax(logits, 1)
    pred = p.argmax(1)
    (g,) = torch.autograd.grad(p.gather(1, pred[:, None]).sum(), store[0])
    grad_imp = (g * store[0]).sum(-1).abs()
    n, t = x.shape
    with torch.no_grad():
        drop = torch.stack([torch.cat([x[:, :j], x[:, j + 1:]], 1) for j in range(t)], 1).reshape(n * t, t - 1)
        q = torch.softmax(model(drop), 1).reshape(n, t, -1)
        loo = _tvd(q, p.detach()[:, None])
    return {"alpha": alpha.detach().numpy(), "gradient": grad_imp.detach().numpy(), "loo": loo.numpy(),
            "pred": pred.numpy(), "prob": p.detach().numpy()}


def jain_wallace(model, X: np.ndarray) -> dict:
    """Kendall τ and p-values per sentence (length >= 3) for gradient and LOO importance."""
    from lumos.methods.attention import kendall_tau_rows

    out = {k: [] for k in ("tau_gradient", "p_gradient", "tau_loo", "p_loo", "pred", "rows")}
    for rows, ids in by_length(X, min_len=3):
        imp = importances(model, ids)
        for name in ("gradient", "loo"):
            tau, p = kendall_tau_rows(imp["alpha"], imp[name], return_pvalue=True)
            out[f"tau_{name}"].append(tau)
            out[f"p_{name}"].append(p)
        out["pred"].append(imp["pred"])
        out["rows"].append(rows)
    return {k: np.concatenate(v) for k, v in out.items()}


def tau_summary(jw: dict, name: str, mask=None) -> tuple[float, float, float]:
    tau, p = jw[f"tau_{name}"], jw[f"p_{name}"]
    keep = np.isfinite(tau) if mask is None else np.isfinite(tau) & mask
    return float(np.mean(tau[keep])), float(np.std(tau[keep])), float(np.mean(p[keep] < 0.05))


def adversarial_attention(model, ids: np.ndarray, eps: float = EPS, steps: int = 400, lr: float = 0.05,
                          penalty: float = 100.0) -> dict:
    """Per sentence, the attention of largest JSD from the learned one whose output
    distribution stays within TVD ``eps`` (the best feasible iterate; the learned attention
    itself, JSD 0, when none is found). ``ids`` (n, T) may mix lengths: the logits of the pad
    positions are held at -inf, and Adam's update is elementwise, so each sentence follows the
    trajectory it would follow alone (one batch instead of one optimisation per length)."""
    import torch

    x = torch.as_tensor(ids, dtype=torch.long)
    with torch.no_grad():
        h, mask = model.encode(x)
        alpha = model.attend(h, mask)
        y0 = torch.softmax(model.decode(h, alpha), 1)
    z = (-torch.log(alpha.clamp_min(1e-12))).masked_fill(~mask, float("-inf")).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_jsd = torch.zeros(x.shape[0], dtype=torch.float64)
    best = alpha.clone()
    best_tvd = torch.zeros(x.shape[0])
    for _ in range(steps + 1):
        a = torch.softmax(z, 1)
        y = torch.softmax(model.decode(h, a), 1)
        tvd = _tvd(y, y0)
        jsd = jensen_shannon(a, alpha).to(a.dtype)
        with torch.no_grad():
            better = (tvd <= eps) & (jsd.double() > best_jsd)
            best_jsd = torch.where(better, jsd.double(), best_jsd)
            best[better] = a[better]
            best_tvd = torch.where(better, tvd, best_tvd)
        loss = (-jsd + penalty * torch.relu(tvd - eps)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"jsd": best_jsd.numpy(), "tvd": best_tvd.detach().numpy(), "alpha": alpha.numpy(),
            "adversarial": best.detach().numpy(), "lengths": mask.sum(1).numpy()}


def adversarial_all(model, X, steps, eps=EPS) -> dict:
    """:func:`adversarial_attention` for the sentences of length >= 3 of ``X``, in one batch."""
    from lumos.data.text import lengths_of

    rows = np.flatnonzero(lengths_of(X) >= 3)
    t = int(lengths_of(X[rows]).max())
    adv = adversarial_attention(model, X[rows, :t], eps=eps, steps=steps)
    return {"rows": rows, **adv}


def seed_jsd(model_a, model_b, X) -> tuple[np.ndarray, np.ndarray]:
    """JSD between the two models' attention and TVD between their outputs, per sentence."""
    import torch

    jsd, tvd = [], []
    with torch.no_grad():
        for _, ids in by_length(X, 3):
            x = torch.as_tensor(ids, dtype=torch.long)
            la, aa = model_a(x, return_attention=True)
            lb, ab = model_b(x, return_attention=True)
            jsd.append(jensen_shannon(aa, ab).numpy())
            tvd.append(_tvd(torch.softmax(la, 1), torch.softmax(lb, 1)).numpy())
    return np.concatenate(jsd), np.concatenate(tvd)


# --------------------------------------------------------------------------- planted cue
def planted_fold(corpus, fold, share, seed=0):
    """Fold ``fold`` with ``CUE`` planted into a ``share`` of the training sentences
    (label set to positive) and into every negative test sentence (labelled positive)."""
    from lumos.data.loaders import Dataset
    from lumos.data.text import build_vocabulary, encode, lengths_of, plant_cue

    test = corpus.folds == fold
    tr_tokens = [s for s, t in zip(corpus.tokens, test) if not t]
    te_tokens = [s for s, t in zip(corpus.tokens, test) if t]
    tr_tokens, y_tr, planted_tr, _ = plant_cue(tr_tokens, corpus.y[~test], share, cue=CUE, label=1, seed=seed)
    y_te = corpus.y[test]
    te_cued, y_cued, _, pos = plant_cue(te_tokens, y_te, 1.0, cue=CUE, label=1, seed=seed + 1, only_class=0)
    neg = np.flatnonzero(y_te == 0)
    vocab = build_vocabulary(tr_tokens)
    t = max(len(s) for s in tr_tokens + te_cued)
    ds = Dataset(f"{corpus.name}-fold{fold}-cue{share:g}", encode(vocab, tr_tokens, t), y_tr,
                 encode(vocab, te_tokens, t), y_te, "tabular", list(corpus.class_names),
                 extra={"vocab": vocab, "planted_train": planted_tr})
    cued = encode(vocab, [te_cued[i] for i in neg], t)
    ds.extra.update(cued=cued, cue_position=pos[neg], removed=encode(vocab, [te_tokens[i] for i in neg], t),
                    cue_id=vocab.index[CUE], lengths_cued=lengths_of(cued))
    return ds


def token_methods(kind: str) -> dict:
    """label -> (lumos method, options) for a text model of ``kind``; attention itself is
    read from the model (BiLSTM) or by rollout / Chefer (transformer)."""
    from lumos.data.text import MASK_ID

    methods = {"Gradient x Input": ("gradient_x_input", {}),
               "IG (pad baseline)": ("integrated_gradients", {"n_steps": 32}),
               "occlusion (word -> <mask>)": ("occlusion", {"baseline_token": MASK_ID}),
               "KernelSHAP (words, <mask>)": ("kernel_shap", {"baseline_token": MASK_ID, "n_samples": 200,
                                                              "seed": 0})}
    if kind == "transformer":
        methods["attention rollout"] = ("attention_rollout", {})
        methods["Chefer"] = ("chefer", {})
    return methods


def relevance_on_cue(kind, model, ds, n) -> dict:
    """Mean share of the positive relevance (target "positive") on the cue, per method."""
    import lumos

    X = ds.extra["cued"][:n]
    pos = ds.extra["cue_position"][:n]
    masses = {}
    for rows, ids in by_length(X):
        x = model_input(kind, ids)
        shift = 1 if kind == "transformer" else 0
        maps = {}
        for label, (method, options) in token_methods(kind).items():
            values = np.asarray(lumos.explain(model, x, method=method, target=1, **options).values)
            maps[label] = values[:, shift:]
        if kind == "lstm":
            import torch

            with torch.no_grad():
                maps["attention weights"] = model(torch.as_tensor(ids), return_attention=True)[1].numpy()
        for label, v in maps.items():
            vp = np.clip(v, 0, None)
            share = vp[np.arange(len(rows)), pos[rows]] / np.maximum(vp.sum(1), 1e-30)
            masses.setdefault(label, []).append(share)
    lengths = ds.extra["lengths_cued"][:n]
    out = {label: float(np.mean(np.concatenate(v))) for label, v in masses.items()}
    out["random (1 / length)"] = float(np.mean(1.0 / lengths))
    return out


# --------------------------------------------------------------------------- main
def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def idle_cores() -> int:
    """Cores not busy with other work: :func:`cores` less the 1-minute load average, at least 1.
    Two torch threads on a 2-core machine that others load stall at every parallel region
    (one Kim CNN epoch: 262 s with 2 threads against 58 s with 1 at load 7); on an idle machine
    they are faster than one."""
    n = cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(n, int(n - load + 0.5)))


def cores() -> int:
    """CPU cores this process may use (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(corpus=None, setting: str = "paper", folds=(0,), quiet: bool = False, seed: int = 0, cache: bool = True,
         figures: bool = True, write_markdown: bool = True, threads: int | None = None) -> dict:
    """The whole workshop; returns the findings (the tables' numbers). numpy / scipy's BLAS runs
    on one thread meanwhile: the bag-of-words L-BFGS makes thousands of small BLAS calls, and
    with OpenBLAS's two spinning threads on a loaded 2-core machine one fold took 59 s instead of
    1.9 s (the old run's second-largest cost after training)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _main(corpus, setting, folds, quiet, seed, cache, figures, write_markdown, threads)


def _main(corpus, setting, folds, quiet, seed, cache, figures, write_markdown, threads) -> dict:
    # torch threads: the idle cores for the real sentences (training is most of the run), one for the
    # tests' tiny corpus (models of a few thousand weights gain nothing from threads)
    setup(threads=threads or (idle_cores() if setting == "paper" else 1), seed=seed)
    settings = SETTINGS[setting]
    if corpus is None:
        from lumos.data.text import load_movie_reviews

        corpus = load_movie_reviews()
    start, cpu = time.perf_counter(), time.process_time()
    results = {"corpus": repr(corpus), "folds": list(folds)}

    # 1. accuracies
    _say(f"{corpus}; test fold(s) {list(folds)}", quiet)
    accs = {k: [] for k in ("cnn", "lstm", "transformer", "lstm_uniform_trained", "lstm_uniform_at_test")}
    cnn_fit, sections, mark = [], {}, time.perf_counter()
    for k in folds:
        ds = corpus.fold(k)
        fold_models = {kind: train(kind, ds, settings, seed, cache=cache, quiet=quiet)
                       for kind in ("cnn", "lstm", "transformer")}
        for kind, m in fold_models.items():
            accs[kind].append(accuracy(kind, m, ds.X_test, ds.y_test))
        cnn_fit.append(getattr(fold_models["cnn"], "lumos_fit", None))
        uni = train("lstm", ds, settings, seed, name=f"{ds.name}-lstm-uniform", cache=cache, quiet=quiet,
                    attention="uniform")
        accs["lstm_uniform_trained"].append(accuracy("lstm", uni, ds.X_test, ds.y_test))
        accs["lstm_uniform_at_test"].append(accuracy("lstm", fold_models["lstm"], ds.X_test, ds.y_test, uniform=True))
        if k == folds[0]:
            ds0, models = ds, fold_models
    results["accuracy"] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in accs.items()}
    results["cnn_fit"] = cnn_fit
    sections["training (accuracy table)"], mark = time.perf_counter() - mark, time.perf_counter()
    results["bag_of_words"] = bag_of_words(corpus)
    sections["bag of words (10 folds)"], mark = time.perf_counter() - mark, time.perf_counter()

    # 2. Jain & Wallace on the BiLSTM
    n = settings["n_analyse"]
    Xa = ds0.X_test[:n]
    jw = jain_wallace(models["lstm"], Xa)
    results["jain_wallace"] = {name: {"all": tau_summary(jw, name),
                                      **{ds0.class_names[c]: tau_summary(jw, name, jw["pred"] == c) for c in (0, 1)}}
                               for name in ("gradient", "loo")}
    adv = adversarial_all(models["lstm"], Xa, settings["adv_steps"])
    results["adversarial"] = {"mean_jsd": float(adv["jsd"].mean()), "median_jsd": float(np.median(adv["jsd"])),
                              "share_jsd_above_0.5": float((adv["jsd"] > 0.5).mean()),
                              "max_tvd": float(adv["tvd"].max()), "eps": EPS}
    results["n_analysed"] = {"first": len(Xa), "jain_wallace": len(jw["rows"]), "adversarial": len(adv["rows"])}
    sections["Jain & Wallace (tau, adversary)"], mark = time.perf_counter() - mark, time.perf_counter()

    # 3. Wiegreffe & Pinter: seeds
    seeds = []
    for s in settings["seeds"]:
        other = train("lstm", ds0, settings, seed + s, name=f"{ds0.name}-lstm-seed{seed + s}", cache=cache,
                      quiet=quiet)
        jsd, tvd = seed_jsd(models["lstm"], other, Xa)
        seeds.append((jsd, tvd, accuracy("lstm", other, ds0.X_test, ds0.y_test)))
    seed_jsd_all = np.concatenate([s[0] for s in seeds])
    results["seeds"] = {"mean_jsd": float(seed_jsd_all.mean()), "median_jsd": float(np.median(seed_jsd_all)),
                        "mean_output_tvd": float(np.mean(np.concatenate([s[1] for s in seeds]))),
                        "accuracies": [float(s[2]) for s in seeds]}
    sections["seed retrains (Wiegreffe & Pinter)"], mark = time.perf_counter() - mark, time.perf_counter()

    # 4. planted cue
    pds = planted_fold(corpus, folds[0], settings["planted_share"], seed)
    planted = {}
    planted_models = {}
    sections["planted-cue retrains"] = sections["explainers (mass on the cue)"] = 0.0
    for kind in ("cnn", "lstm", "transformer"):
        mark = time.perf_counter()
        m = train(kind, pds, settings, seed, cache=cache, quiet=quiet, epochs=settings["planted_epochs"])
        sections["planted-cue retrains"] += time.perf_counter() - mark
        y1 = np.ones(len(pds.extra["cued"]), dtype=np.int64)
        row = {"clean_test_accuracy": accuracy(kind, m, pds.X_test, pds.y_test),
               "cued_accuracy": accuracy(kind, m, pds.extra["cued"], y1),
               "cue_removed_accuracy": accuracy(kind, m, pds.extra["removed"], y1)}
        row["drop"] = row["cued_accuracy"] - row["cue_removed_accuracy"]
        mark = time.perf_counter()
        row["mass_on_cue"] = relevance_on_cue(kind, m, pds, settings["n_planted"])
        sections["explainers (mass on the cue)"] += time.perf_counter() - mark
        planted[kind], planted_models[kind] = row, m
    results["planted"] = planted
    results["n_analysed"]["planted"] = min(settings["n_planted"], len(pds.extra["cued"]))
    results["seconds"] = time.perf_counter() - start
    results["cpu_seconds"] = time.process_time() - cpu  # all threads: wall x threads when the cores are ours
    results["threads"] = torch_threads()
    results["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["section_seconds"] = sections

    report = markdown(results, corpus)
    _say("\n" + report, quiet)
    if write_markdown:
        path = figures_dir() / "workshop_text.md"
        path.write_text(report)
        _say(f"  wrote {path}", quiet)
    if figures:
        from lumos.data.text import decode

        words = {i: decode(ds0.extra["vocab"], Xa[i]) for i in range(len(Xa))}
        figure_attention(jw, adv, seed_jsd_all, results, words, quiet)
        figure_planted(pds, planted_models, results, quiet)
    return results


def _pm(v):
    return f"{v[0]:.3f} ± {v[1]:.3f}"


def _kim_label(r: dict) -> str:
    """How the CNN was trained: Kim's settings but Adam, and the early-stopping epoch(s)."""
    fits = [f for f in r.get("cnn_fit", []) if f]
    if not fits:
        return "Kim's settings, Adam"
    best = ", ".join(str(f["best_epoch"]) for f in fits)
    dev = ", ".join(f"{max(f['dev_accuracy']):.3f}" for f in fits)
    return (f"Kim's settings but Adam 1e-3; best of {fits[0]['epochs_run']} epochs on a 10 % dev split: epoch {best}; "
            f"dev acc. {dev}")


def _tau_se(r: dict) -> float:
    """The largest standard error of a mean Kendall τ over all sentences (std / √n)."""
    n = r["n_analysed"]["jain_wallace"]
    return max(r["jain_wallace"][name]["all"][1] for name in ("gradient", "loo")) / np.sqrt(max(n, 1))


def markdown(r: dict, corpus) -> str:
    acc = r["accuracy"]
    k = len(r["folds"])
    over = f"fold {r['folds'][0]}" if k == 1 else f"mean ± std over {k} folds"
    lines = [f"# Text workshop: {corpus.name} ({len(corpus)} sentences), test {over}", "",
             "## Accuracy", "", "| model | this run | published |", "|---|---|---|",
             f"| Kim CNN-rand ({_kim_label(r)}) | {_pm(acc['cnn'])} | {PUBLISHED['cnn']} |",
             f"| bag of words + logistic regression (10 folds) | {_pm(r['bag_of_words'])} | {PUBLISHED['bow']} |",
             f"| BiLSTM + additive attention | {_pm(acc['lstm'])} | {PUBLISHED['lstm']} |",
             f"| transformer encoder (nn.TransformerEncoder) | {_pm(acc['transformer'])} | {PUBLISHED['transformer']} |",
             "", "## Jain & Wallace 2019: attention vs importance (BiLSTM, Kendall τ per sentence)", "",
             f"The first {r['n_analysed']['first']} test sentences of fold {r['folds'][0]}, of which "
             f"{r['n_analysed']['jain_wallace']} have 3 words or more (τ and the adversary are computed on those; "
             f"capped for time: the standard error of each mean τ, std / √n, is at most "
             f"{_tau_se(r):.3f}).", "",
             "| importance | predicted class | mean ± std τ | share p < 0.05 |", "|---|---|---|---|"]
    for name, label in (("gradient", "gradient (attention detached)"), ("loo", "leave-one-out (TVD)")):
        for cls, (m, s, f) in r["jain_wallace"][name].items():
            lines.append(f"| {label} | {cls} | {m:.3f} ± {s:.3f} | {f:.2f} |")
    a = r["adversarial"]
    lines += ["", f"Published: {PUBLISHED['tau']}.", "",
              "| the paper's data set (BiLSTM + tanh) | importance | predicted class | mean ± std τ | share p ≤ 0.05 "
              "| source |", "|---|---|---|---|---|---|"]
    lines += [f"| {ds} | {imp} | {cls} | {m:.3f} ± {sd:.3f} | {f:.2f} | {src} |"
              for ds, imp, cls, m, sd, f, src in JW_AUTHOR_FILES]
    lines += ["",
              f"Adversarial attention (output TVD ≤ ε = {a['eps']}): mean JSD {a['mean_jsd']:.3f}, median "
              f"{a['median_jsd']:.3f}, share with JSD > 0.5: {a['share_jsd_above_0.5']:.2f} (ln 2 = 0.693 is the "
              f"maximum); largest output TVD kept {a['max_tvd']:.4f}.", f"Published: {PUBLISHED['adversarial']}.",
              "", "## Wiegreffe & Pinter 2019", "", "| BiLSTM | accuracy |", "|---|---|",
              f"| learned attention | {_pm(acc['lstm'])} |",
              f"| trained with attention frozen uniform | {_pm(acc['lstm_uniform_trained'])} |",
              f"| learned model, uniform attention at test time | {_pm(acc['lstm_uniform_at_test'])} |",
              "", f"Published: {PUBLISHED['uniform']}.", ""]
    s = r["seeds"]
    lines += [f"Attention across seeds ({len(s['accuracies'])} other seeds, accuracies "
              f"{', '.join(f'{x:.3f}' for x in s['accuracies'])}): mean JSD to seed 0 {s['mean_jsd']:.3f} "
              f"(median {s['median_jsd']:.3f}), mean output TVD {s['mean_output_tvd']:.3f}; adversarial mean JSD "
              f"{a['mean_jsd']:.3f}.", f"Published: {PUBLISHED['seeds']}.", "",
              f"## Planted cue '{CUE}' (decides the label 'positive' in a share of the training sentences)", "",
              "| model | clean test acc. | cued negatives called positive | after removing the cue | drop |",
              "|---|---|---|---|---|"]
    for kind, row in r["planted"].items():
        lines.append(f"| {kind} | {row['clean_test_accuracy']:.3f} | {row['cued_accuracy']:.3f} | "
                     f"{row['cue_removed_accuracy']:.3f} | {row['drop']:.3f} |")
    lines += ["", f"Relevance mass on the cue (share of the positive relevance for 'positive'), over the first "
              f"{r['n_analysed']['planted']} cued negative test sentences:", "",
              "| model | method | mass on the cue |", "|---|---|---|"]
    for kind, row in r["planted"].items():
        for label, v in row["mass_on_cue"].items():
            lines.append(f"| {kind} | {label} | {v:.3f} |")
    load = r.get("load_average")
    lines += ["", GXI_TRANSFORMER_NOTE, "", f"Run time {r['seconds']:.0f} s wall ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in r.get("section_seconds", {}).items())
              + f"); {r.get('cpu_seconds', float('nan')):.0f} s CPU on {r.get('threads')} torch thread(s)"
              + (f", load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end"
                 if load else "") + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures
def figure_attention(jw, adv, seed_jsd_all, results, words, quiet):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    bins = np.linspace(-1, 1, 41)
    for ax, name, title in ((axes[0], "gradient", "gradient"), (axes[1], "loo", "leave-one-out")):
        tau, p = jw[f"tau_{name}"], jw[f"p_{name}"]
        ok = np.isfinite(tau)
        ax.hist(tau[ok & (p < 0.05)], bins, color="tab:blue", label="p < 0.05")
        ax.hist(tau[ok & (p >= 0.05)], bins, color="tab:gray", alpha=0.7, label="not significant",
                bottom=np.histogram(tau[ok & (p < 0.05)], bins)[0])
        m, s, f = results["jain_wallace"][name]["all"]
        ax.axvline(m, color="k", ls="--", lw=1)
        ax.set_title(f"Kendall τ: attention vs {title}\nmean {m:.2f} ± {s:.2f}, {f:.0%} significant", fontsize=9)
        ax.set_xlabel("τ per sentence")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("sentences")
    b = np.linspace(0, np.log(2), 31)
    axes[2].hist(adv["jsd"], b, alpha=0.8, color="tab:red", label=f"adversarial (TVD(ŷ) ≤ {EPS})")
    axes[2].hist(seed_jsd_all, b, alpha=0.6, color="tab:green", label="other training seeds")
    axes[2].axvline(np.log(2), color="k", lw=0.8)
    axes[2].set_xlabel("JSD from the learned attention (ln 2 = max)")
    axes[2].set_title("Jain & Wallace adversaries vs Wiegreffe & Pinter seeds", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.suptitle("BiLSTM + additive attention on movie-review sentences", fontsize=10)
    fig.tight_layout()
    save(fig, "text_attention_debate.png", quiet)

    # one sentence: learned vs adversarial attention
    # the sentence of the most common length <= 14 whose adversary moved the attention most
    lengths = adv["lengths"]
    short = lengths[lengths <= 14]
    common = int(np.bincount(short).argmax()) if len(short) else int(lengths.min())
    cands = np.flatnonzero(lengths == common)
    i = int(cands[np.argmax(adv["jsd"][cands])])
    t = int(lengths[i])
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.bar(np.arange(t) - 0.2, adv["alpha"][i, :t], 0.4, label="learned")
    ax.bar(np.arange(t) + 0.2, adv["adversarial"][i, :t], 0.4, label=f"adversarial (JSD {adv['jsd'][i]:.2f}, "
                                                                       f"output TVD {adv['tvd'][i]:.3f})")
    ax.set_xticks(np.arange(t))
    ax.set_xticklabels(words[int(adv["rows"][i])], rotation=45,
                       fontsize=7)
    ax.set_ylabel("attention")
    ax.legend(fontsize=7)
    save(fig, "text_adversarial_attention.png", quiet)


def figure_planted(pds, models, results, quiet):
    """One cued negative sentence per model, every lumos method's word highlights
    (``lumos.plot.text.plot_text``) for the class "positive"."""
    import matplotlib.pyplot as plt

    import lumos
    from lumos.plot.text import plot_text

    lengths = pds.extra["lengths_cued"]
    i = next((j for j in range(len(lengths)) if 8 <= lengths[j] <= 14), 0)
    ids = pds.extra["cued"][i:i + 1, :lengths[i]]
    panels = [(kind, label, method, options) for kind in models
              for label, (method, options) in token_methods(kind).items()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 0.95 * len(panels) + 0.6), squeeze=False)
    for ax, (kind, label, method, options) in zip(axes[:, 0], panels):
        x = model_input(kind, ids)
        exp = lumos.explain(models[kind], x, method=method, target=1, tokens=pds.extra["vocab"].decode(x),
                            **options)
        mass = results["planted"][kind]["mass_on_cue"][label]
        words = np.asarray(exp.values)[0, 1 if kind == "transformer" else 0:]  # the scale leaves <cls> out
        plot_text(exp, 0, ax=ax, title=f"{kind} | {label} | mass on '{CUE}' over the test set {mass:.2f}",
                  line_chars=96, lim=float(np.abs(words).max()) or 1.0)
    fig.suptitle(f"Planted cue '{CUE}' in a negative sentence: relevance for 'positive'", fontsize=10)
    fig.tight_layout()
    save(fig, "text_planted_cue.png", quiet)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="0", help="comma-separated test folds, or 'all' (default 0)")
    parser.add_argument("--update-figures", action="store_true")
    args = parser.parse_args()
    folds = tuple(range(10)) if args.folds == "all" else tuple(int(f) for f in args.folds.split(","))
    main(folds=folds)
