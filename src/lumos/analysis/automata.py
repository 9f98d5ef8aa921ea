"""Reading a recurrent network as a finite automaton.

Following Oliva & Lago-Fernández ("On the interpretation of recurrent neural networks as
finite state machines", ICANN 2019; "Stability of internal states in recurrent neural
networks trained on regular languages", arXiv 2006.10828):

1. an Elman network ``h_t = tanh(W x_t + U h_{t-1} + b)``, ``y_t = σ(v·h_t + c)`` is trained
   on a regular language with an L1 penalty ``λ Σ|w|`` on its weights and Gaussian noise
   ``h_t + ε, ε ~ N(0, σ²)`` on its state, so that its units saturate and its states form
   tight, well separated clusters;
2. the states visited on every prefix of a set of strings are clustered (k-means); each
   cluster is a state, the transition ``δ(c, a)`` is the cluster most of the successors of
   ``c``'s members on symbol ``a`` fall in, and a cluster accepts when most of its members
   make the network accept;
3. the automaton is minimised (Hopcroft) and compared with the network and the grammar on
   longer held-out strings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from lumos.analysis.dfa import DFA
from lumos.analysis.grammars import GRAMMARS, Grammar, get_grammar, parity, tomita
from lumos.core.guard import model_guard
from lumos.core.validate import check_positive_int

__all__ = [
    "ElmanRNN", "train_rnn", "extract_automaton", "AutomatonExtraction", "DFA", "Grammar", "GRAMMARS", "tomita",
    "parity", "get_grammar",
]


class ElmanRNN(nn.Module):
    """Elman network reading strings over ``alphabet`` and accepting or rejecting every prefix.

    ``h_0 = tanh(s)`` (``s`` learned), ``h_t = tanh(W x_t + U h_{t-1} + b)`` with ``x_t`` the
    one-hot code of the t-th symbol, and ``y_t = v·h_t + c`` the logit of "prefix accepted".

    ``forward`` takes one-hot inputs laid out as lumos time series ``(N, |Σ|, T)`` and
    returns the logit after the last symbol, ``(N, 1)``; :meth:`run` returns the logits and
    states of every prefix.
    """

    def __init__(self, alphabet: str = "01", hidden: int = 16):
        super().__init__()
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must be a string of distinct symbols, got {alphabet!r}")
        self.alphabet = alphabet
        self.hidden = check_positive_int(hidden, "hidden")
        self.initial = nn.Parameter(torch.zeros(hidden))
        self.input = nn.Linear(len(alphabet), hidden)
        self.recurrent = nn.Linear(hidden, hidden, bias=False)
        self.readout = nn.Linear(hidden, 1)

    def encode(self, strings: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot codes ``(N, T, |Σ|)`` (zero-padded) and the lengths of ``strings``."""
        if isinstance(strings, str):
            raise TypeError("strings must be a sequence of strings, not a single string; wrap it in a list")
        lengths = torch.tensor([len(s) for s in strings], dtype=torch.long)
        T = int(lengths.max()) if len(strings) else 0
        codes = torch.zeros(len(strings), T, len(self.alphabet))
        for i, s in enumerate(strings):
            for t, ch in enumerate(s):
                j = self.alphabet.find(ch)
                if j < 0:
                    raise ValueError(f"string {s!r} has the symbol {ch!r}, outside the alphabet {self.alphabet!r}")
                codes[i, t, j] = 1.0
        return codes, lengths

    def run(self, codes: torch.Tensor, noise: float = 0.0, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, T+1)`` and states ``(N, T+1, H)`` of every prefix (index 0: the empty one).

        ``noise`` adds ``N(0, noise²)`` to each state before it is read and fed back (training only).
        """
        codes = codes.to(self.initial.device)
        n, T, _ = codes.shape
        drive = self.input(codes)  # (N, T, H)
        h = torch.tanh(self.initial).expand(n, -1)
        states = []
        for t in range(T + 1):
            if t > 0:
                h = torch.tanh(drive[:, t - 1] + self.recurrent(h))
            if noise > 0:
                h = h + noise * torch.randn(h.shape, generator=generator).to(h.device)
            states.append(h)
        states = torch.stack(states, 1)
        return self.readout(states)[..., 0], states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != len(self.alphabet):
            raise ValueError(f"ElmanRNN expects one-hot inputs (N, {len(self.alphabet)}, T), got {tuple(x.shape)}")
        logits, _ = self.run(x.transpose(1, 2))
        return logits[:, -1:]

    @torch.no_grad()
    def predict(self, strings: Sequence[str]) -> np.ndarray:
        """Whether the network accepts each string (logit > 0)."""
        with model_guard(self, warn_training=False):
            codes, lengths = self.encode(strings)
            logits, _ = self.run(codes)
            return (logits[torch.arange(len(strings)), lengths.to(logits.device)] > 0).cpu().numpy()

    @torch.no_grad()
    def prefix_states(self, strings: Sequence[str]) -> dict[str, np.ndarray]:
        """The state after every distinct prefix of ``strings`` (the empty prefix included)."""
        with model_guard(self, warn_training=False):
            codes, lengths = self.encode(strings)
            _, states = self.run(codes)
        out: dict[str, np.ndarray] = {}
        states = states.cpu().numpy()
        for i, s in enumerate(strings):
            for t in range(len(s) + 1):
                out.setdefault(s[:t], states[i, t])
        return out


def _prefix_targets(grammar: Grammar, strings: Sequence[str], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.zeros(len(strings), T + 1)
    mask = torch.zeros(len(strings), T + 1)
    for i, s in enumerate(strings):
        targets[i, : len(s) + 1] = torch.tensor(grammar([s[:t] for t in range(len(s) + 1)]), dtype=torch.float32)
        mask[i, : len(s) + 1] = 1.0
    return targets, mask


def train_rnn(grammar: str | Grammar, hidden: int = 16, n_strings: int = 1000, max_length: int = 12,
              l1: float = 1e-4, state_noise: float = 0.2, epochs: int = 150, lr: float = 0.02,
              batch_size: int = 100, seed: int = 0, time_limit: float | None = None) -> ElmanRNN:
    """Train an :class:`ElmanRNN` on a grammar, supervising the label of every prefix.

    The training set is every string up to length 6 plus ``n_strings`` strings of length
    1..``max_length`` sampled with balanced labels (:meth:`Grammar.sample`). The loss is the
    binary cross-entropy over all prefixes plus ``l1 * Σ|w|`` over the input, recurrent and
    readout weights; ``state_noise`` is the standard deviation of the Gaussian noise added
    to the state at every step during training. Deterministic for a given ``seed``
    (the global torch random state is left untouched). ``time_limit`` (seconds) stops
    training early. The history of losses is in ``rnn.history_``, the training time in
    ``rnn.train_seconds_``.
    """
    grammar = get_grammar(grammar)
    check_positive_int(epochs, "epochs")
    if l1 < 0 or state_noise < 0 or lr <= 0:
        raise ValueError(f"l1 and state_noise must be >= 0 and lr > 0, got l1={l1}, state_noise={state_noise}, lr={lr}")
    start = time.perf_counter()
    sampled, _ = grammar.sample(n_strings, 1, max_length, seed=seed)
    strings = sorted(set(grammar.all_strings(min(6, max_length), 1)) | set(sampled))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rnn = ElmanRNN(grammar.alphabet, hidden)
    codes, lengths = rnn.encode(strings)
    targets, mask = _prefix_targets(grammar, strings, codes.shape[1])
    weights = [rnn.input.weight, rnn.recurrent.weight, rnn.readout.weight]
    opt = torch.optim.Adam(rnn.parameters(), lr=lr)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    history = []
    rnn.train()
    for _ in range(epochs):
        order = torch.randperm(len(strings), generator=gen)
        total = 0.0
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            logits, _ = rnn.run(codes[idx], noise=state_noise, generator=gen)
            fit = (bce(logits, targets[idx]) * mask[idx]).sum() / mask[idx].sum()
            loss = fit + l1 * sum(w.abs().sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(fit.detach()) * len(idx)
        history.append(total / len(strings))
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    rnn.eval()
    rnn.history_ = history
    rnn.train_seconds_ = time.perf_counter() - start
    return rnn


@dataclass
class AutomatonExtraction:
    """What :func:`extract_automaton` read out of a network.

    Attributes
    ----------
    automaton : DFA
        The minimised automaton.
    raw : DFA
        The automaton with one state per cluster, before minimisation.
    n_clusters : int
        The number of k-means clusters used.
    fit_agreement : float
        Fraction of the prefixes of the fitting strings on which the raw automaton and the
        network agree.
    network_agreement, grammar_agreement : float or None
        Agreement of the minimised automaton with the network and with the grammar on the
        held-out strings (None when not given).
    scan : list of (k, fit agreement)
        The numbers of clusters tried.
    """

    automaton: DFA
    raw: DFA
    n_clusters: int
    fit_agreement: float
    network_agreement: float | None = None
    grammar_agreement: float | None = None
    network_grammar_agreement: float | None = None
    held_out_max_length: int | None = None
    scan: list = field(default_factory=list)

    @property
    def n_states(self) -> int:
        return self.automaton.n_states

    def summary(self) -> str:
        parts = [f"{self.n_clusters} clusters -> {self.n_states} states after minimisation",
                 f"agreement on fitting prefixes {self.fit_agreement:.4f}"]
        if self.network_agreement is not None:
            parts.append(f"held-out (length <= {self.held_out_max_length}): with network {self.network_agreement:.4f}")
        if self.grammar_agreement is not None:
            parts.append(f"with grammar {self.grammar_agreement:.4f}")
        return "; ".join(parts)


def _cluster_automaton(labels: np.ndarray, index: dict[str, int], accept: np.ndarray, k: int, alphabet: str) -> DFA:
    """One state per cluster; majority votes for transitions and acceptance."""
    votes = np.zeros((k, len(alphabet), k), dtype=np.int64)
    for prefix, i in index.items():
        for a, sym in enumerate(alphabet):
            j = index.get(prefix + sym)
            if j is not None:
                votes[labels[i], a, labels[j]] += 1
    delta = votes.argmax(axis=2)
    unseen = votes.sum(axis=2) == 0
    delta[unseen] = np.nonzero(unseen)[0]  # a transition never observed: stay (it is never used on the data)
    yes = np.bincount(labels, weights=accept.astype(float), minlength=k)
    size = np.bincount(labels, minlength=k)
    return DFA(delta, int(labels[index[""]]), yes * 2 > size, alphabet)


def extract_automaton(rnn: ElmanRNN, strings: Sequence[str], n_clusters: int | None = None, max_clusters: int = 16,
                      held_out: Sequence[str] | None = None, grammar: str | Grammar | None = None,
                      seed: int = 0) -> AutomatonExtraction:
    """Cluster the network's states and read the automaton they implement.

    Parameters
    ----------
    rnn : ElmanRNN
        A trained network (its mode and flags are left as found).
    strings : sequence of str
        Strings whose prefixes' states are clustered (e.g. the training strings).
    n_clusters : int, optional
        Number of k-means clusters. By default the smallest ``k`` in ``2..max_clusters``
        whose automaton agrees with the network on every fitting prefix is used (the best
        ``k`` when none is perfect).
    held_out : sequence of str, optional
        Strings (typically longer than the fitting ones) on which the minimised automaton
        is compared with the network and, when ``grammar`` is given, with the grammar.
    seed : int
        Seed of k-means.
    """
    from sklearn.cluster import KMeans

    if not isinstance(rnn, ElmanRNN):
        raise TypeError(f"rnn must be an ElmanRNN, got {type(rnn).__name__}")
    if isinstance(strings, str) or len(strings) == 0:
        raise ValueError("strings must be a non-empty sequence of strings")
    grammar = get_grammar(grammar) if grammar is not None else None
    states = rnn.prefix_states(strings)
    prefixes = list(states)
    index = {p: i for i, p in enumerate(prefixes)}
    X = np.stack([states[p] for p in prefixes]).astype(np.float64)
    with torch.no_grad(), model_guard(rnn, warn_training=False):
        readout = rnn.readout(torch.as_tensor(X, dtype=torch.float32, device=rnn.initial.device))
        accept = (readout[:, 0] > 0).cpu().numpy()
    if n_clusters is not None:
        candidates = [check_positive_int(n_clusters, "n_clusters")]
    else:
        candidates = list(range(2, check_positive_int(max_clusters, "max_clusters", 2) + 1))
    distinct = len(np.unique(np.round(X, 6), axis=0))
    best = None
    scan = []
    for k in candidates:
        if k > distinct:
            break
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)
        raw = _cluster_automaton(labels, index, accept, k, rnn.alphabet)
        agreement = float(np.mean(raw.accepts(prefixes) == accept))
        scan.append((k, agreement))
        if best is None or agreement > best[1]:
            best = (k, agreement, raw)
        if agreement == 1.0:
            break
    if best is None:
        raise ValueError(f"the strings give only {distinct} distinct state(s); cannot form {candidates[0]} clusters")
    k, agreement, raw = best
    result = AutomatonExtraction(raw.minimize(), raw, k, agreement, scan=scan)
    if held_out is not None:
        held_out = list(held_out)
        dfa_says = result.automaton.accepts(held_out)
        net_says = rnn.predict(held_out)
        result.network_agreement = float(np.mean(dfa_says == net_says))
        result.held_out_max_length = max(len(s) for s in held_out)
        if grammar is not None:
            truth = grammar(held_out)
            result.grammar_agreement = float(np.mean(dfa_says == truth))
            result.network_grammar_agreement = float(np.mean(net_says == truth))
    return result
