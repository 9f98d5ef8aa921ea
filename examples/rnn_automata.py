"""Reading Elman networks as finite automata (Oliva & Lago-Fernández, ICANN 2019).

For each Tomita grammar and parity: train a small Elman RNN with an L1 weight penalty and
state noise, cluster its hidden states, read the transition table, minimise it (Hopcroft),
and compare the automaton with the network and the grammar on 1,000 held-out strings of
length up to 20 (training strings have length <= 12). Several seeds per grammar show how
reliable the recipe is.

Writes rnn_automata.md (the table), rnn_automata.png and rnn_states.png to the figures folder
(examples/output/, or $LUMOS_FIGURES). With --update-figures: the committed
examples/rnn_automata.md and examples/figures/rnn_automata.png, examples/figures/rnn_states.png.

    PYTHONPATH=src python examples/rnn_automata.py [--seeds 3] [--update-figures]
"""
from __future__ import annotations

import argparse
import os
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumos.analysis import GRAMMARS, extract_automaton, train_rnn  # noqa: E402

from _workshop import UPDATE_FLAG, figures_dir  # noqa: E402  (where figures go: see examples/_workshop.py)

HERE = Path(__file__).resolve().parent


def run(name: str, seed: int, hidden: int):
    g = GRAMMARS[name]
    t0 = time.perf_counter()
    rnn = train_rnn(g, hidden=hidden, seed=seed)
    seconds = time.perf_counter() - t0
    fit_strings, _ = g.sample(1000, 1, 12, seed=100 + seed)
    held_out, _ = g.sample(1000, 1, 20, seed=200 + seed)
    result = extract_automaton(rnn, fit_strings, held_out=held_out, grammar=g, seed=seed)
    states = np.stack(list(rnn.prefix_states(fit_strings).values()))
    saturation = float(np.mean(np.abs(states) > 0.9))
    return g, rnn, result, seconds, saturation


def main(n_seeds: int, hidden: int, update: bool = False):
    torch.set_num_threads(1)
    figures = figures_dir(update)
    rows, first = [], {}
    for name in GRAMMARS:
        for seed in range(n_seeds):
            g, rnn, r, seconds, sat = run(name, seed, hidden)
            ok = r.n_states == g.n_minimal_states and r.automaton.equivalent(g.dfa)
            rows.append((name, g.description, seed, seconds, r.n_clusters, r.n_states, g.n_minimal_states, ok,
                         r.network_agreement, r.grammar_agreement, r.network_grammar_agreement, sat))
            print(f"{name:8s} seed {seed}: {seconds:5.1f}s train, {r.summary()}, minimal DFA recovered: {ok}",
                  flush=True)
            if seed == 0:
                first[name] = (g, rnn, r, fit_strings_of(g, seed))
    write_table(rows, n_seeds, hidden, HERE if update else figures, figures)
    draw_automata(first, figures)
    draw_states(first, figures)


def fit_strings_of(g, seed):
    return g.sample(1000, 1, 12, seed=100 + seed)[0]


def write_table(rows, n_seeds, hidden, folder, figures):
    link = os.path.relpath(figures, folder).replace(os.sep, "/") + "/"
    link = "" if link == "./" else link
    lines = [
        "# Automata extracted from Elman RNNs (`examples/rnn_automata.py`)",
        "",
        f"Elman RNN, {hidden} tanh units, trained on ~1,100 strings of length <= 12 with per-prefix labels, L1 weight",
        "penalty 1e-4 and Gaussian state noise sigma = 0.2 (150 epochs of Adam, 1 CPU thread). States of all",
        "prefixes of 1,000 strings are clustered with k-means (smallest k whose automaton reproduces the network",
        "on every prefix), the cluster automaton is minimised with Hopcroft's algorithm, and compared on 1,000",
        "held-out strings of length 1 to 20. *Recovered* means the extracted automaton is exactly the grammar's",
        "minimal DFA (same number of states and language-equivalent). *Saturated* is the fraction of hidden",
        "activations with |h| > 0.9.",
        "",
        "| grammar | language | seed | train (s) | k-means clusters | states after minimisation | minimal DFA "
        "| recovered | agreement DFA-network | agreement DFA-grammar | agreement network-grammar | saturated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, desc, seed, sec, k, n, nmin, ok, an, ag, ang, sat) in rows:
        lines.append(f"| {name} | {desc} | {seed} | {sec:.1f} | {k} | {n} | {nmin} | {'yes' if ok else 'no'} | "
                     f"{an:.3f} | {ag:.3f} | {ang:.3f} | {sat:.2f} |")
    names = list(dict.fromkeys(r[0] for r in rows))
    recovered_seed0 = sum(r[7] for r in rows if r[2] == 0 and r[0].startswith("tomita"))
    per_grammar = {n: sum(r[7] for r in rows if r[0] == n) for n in names}
    lines += [
        "",
        f"Seed 0: minimal DFA recovered for {recovered_seed0} of 7 Tomita grammars; "
        f"slowest training {max(r[3] for r in rows):.1f} s.",
        "Recovered over seeds: " + ", ".join(f"{n} {per_grammar[n]}/{n_seeds}" for n in names) + ".",
        "",
        "Observed earlier with 10 hidden units (`--hidden 10`): tomita1-5, tomita7 and parity recovered for 3/3",
        "seeds, tomita6 for 1/3 only; there the network itself stayed stuck (training loss 0.04, 0.91-0.99",
        "agreement with the grammar) and the extraction reports it (10-11 states, agreement < 0.94). A failure",
        "in the table above, if any, is of the same kind when the network-grammar agreement is below 1.",
        "",
        f"![extracted automata]({link}rnn_automata.png)",
        "",
        f"![hidden states]({link}rnn_states.png)",
        "",
    ]
    (folder / "rnn_automata.md").write_text("\n".join(lines))
    print(f"wrote {folder / 'rnn_automata.md'}")


def draw_automata(first, figures):
    fig, axes = plt.subplots(2, 4, figsize=(18, 9))
    for ax, (name, (g, _, r, _)) in zip(axes.ravel(), first.items()):
        desc = textwrap.fill(f"{name}: {g.description}", 42)
        r.automaton.draw(ax, title=f"{desc}\n{r.n_clusters} clusters -> {r.n_states} states, "
                                   f"grammar agreement {r.grammar_agreement:.3f}")
    fig.suptitle("Automata extracted from Elman RNNs (seed 0); double ring = accepting", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(figures / "rnn_automata.png", dpi=90)
    plt.close(fig)


def draw_states(first, figures):
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    for ax, (name, (g, rnn, r, strings)) in zip(axes.ravel(), first.items()):
        states = rnn.prefix_states(strings)
        X = np.stack(list(states.values()))
        q = np.array([r.automaton.run(p) for p in states])
        emb = PCA(2, random_state=0).fit_transform(X)
        jitter = np.random.default_rng(0).normal(scale=0.03, size=emb.shape)
        for s in range(r.n_states):
            sel = q == s
            ax.scatter(*(emb[sel] + jitter[sel]).T, s=6, alpha=0.5,
                       label=f"q{s}{' (accept)' if r.automaton.accepting[s] else ''}")
        ax.set_title(f"{name}: {len(X)} prefix states", fontsize=10)
        ax.legend(fontsize=7, markerscale=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Hidden states of every prefix (PCA, small jitter), coloured by the extracted automaton's state",
                 fontsize=12)
    fig.tight_layout()
    fig.savefig(figures / "rnn_states.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument(UPDATE_FLAG, action="store_true", dest="update",
                        help="rewrite the committed examples/rnn_automata.md and examples/figures/ PNGs")
    args = parser.parse_args()
    main(args.seeds, args.hidden, args.update)
