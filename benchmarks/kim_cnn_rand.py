"""Kim (2014) CNN-rand on the movie-review sentences (MR): what the published settings reach
here and what the cheapest configuration reaching ~76 % costs, per test fold.

Kim's settings: filter widths 3, 4, 5 x 100 maps, ReLU, max-over-time, dropout 0.5, max-norm 3
on the softmax rows, mini-batch 50, Adadelta (rho 0.95, eps 1e-6), 300-d random word vectors
U(-0.25, 0.25), early stopping on a random 10 % of the training folds; 76.1 % is his 10-fold
mean (s.d. unreported).

    python benchmarks/kim_cnn_rand.py --configs kim,adam --folds 0,1,2 --threads 2

Prints one row per (config, fold): best dev epoch, test accuracy at it, seconds. Measured:
benchmarks/kim_cnn_rand.md.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

CONFIGS = {
    # Kim's settings: Adadelta, 25 epochs max, early stopping on 10 % dev.
    "kim": dict(optimizer="adadelta", lr=1.0, epochs=25, batch_size=50, dev_share=0.1, patience=None),
    "kim-bucket": dict(optimizer="adadelta", lr=1.0, epochs=25, batch_size=50, dev_share=0.1, patience=None,
                       bucket=True),
    "adam": dict(optimizer="adam", lr=1e-3, epochs=8, batch_size=50, dev_share=0.1, patience=None),
    "adam-bucket": dict(optimizer="adam", lr=1e-3, epochs=4, batch_size=50, dev_share=0.1, patience=None,
                        bucket=True),
    "adam-torchinit": dict(optimizer="adam", lr=1e-3, epochs=4, batch_size=50, dev_share=0.1, patience=None,
                           bucket=True, init="torch"),
}


def run(config: str, fold: int, corpus, seed: int = 0, time_budget=None, epochs=None) -> dict:
    from lumos.models.text import KimCNN, fit_text, text_accuracy

    options = dict(CONFIGS[config])
    init = options.pop("init", "kim")
    if epochs:
        options["epochs"] = epochs
    ds = corpus.fold(fold)
    torch.manual_seed(seed)
    model = KimCNN(len(ds.extra["vocab"]), embed_dim=300, maps=100, dropout=0.5, init=init)
    start = time.perf_counter()
    fit_text(model, ds.X_train, ds.y_train, seed=seed, max_norm=3.0, time_budget=time_budget, progress=True,
             **options)
    rec = model.lumos_fit
    return {"config": config, "fold": fold, "test_accuracy": text_accuracy(model, ds.X_test, ds.y_test),
            "best_epoch": rec["best_epoch"], "epochs_run": rec["epochs_run"],
            "dev_accuracy": [round(a, 4) for a in rec["dev_accuracy"]], "seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="kim")
    parser.add_argument("--folds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--time-budget", type=float, default=None)
    parser.add_argument("--out", default=None, help="append JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lumos.data.text import load_movie_reviews

    corpus = load_movie_reviews()
    rows = []
    for config in args.configs.split(","):
        for fold in (int(f) for f in args.folds.split(",")):
            row = run(config, fold, corpus, time_budget=args.time_budget, epochs=args.epochs)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    for config in args.configs.split(","):
        acc = [r["test_accuracy"] for r in rows if r["config"] == config]
        print(f"{config}: test accuracy {np.mean(acc):.4f} ± {np.std(acc):.4f} over {len(acc)} fold(s) "
              f"(Kim 2014: 76.1 %, 10-fold mean)")


if __name__ == "__main__":
    main()
