"""Regular languages to train and read recurrent networks on: the seven Tomita grammars
and parity, over the alphabet ``{0, 1}``.

Each :class:`Grammar` holds two independent definitions of its language: a Python
predicate written from the published description (used for labels) and a hand-written
DFA (used to sample strings of a given label uniformly, and as the reference automaton).
The tests check that both agree on every string up to length 12.

Reference: M. Tomita, "Dynamic construction of finite-state automata from examples using
hill-climbing", Proc. 4th Annual Cognitive Science Conference (1982); the numbering follows
Giles et al. (1992) and Oliva & Lago-Fernández (ICANN 2019).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from lumos.analysis.dfa import DFA, dfa_from_table
from lumos.core.validate import check_positive_int


@dataclass(frozen=True)
class Grammar:
    """A regular language with labels, a reference DFA and a uniform sampler."""

    name: str
    description: str
    predicate: Callable[[str], bool]
    dfa: DFA

    @property
    def alphabet(self) -> str:
        return self.dfa.alphabet

    @property
    def n_minimal_states(self) -> int:
        """Number of states of the minimal complete DFA (a dead state counts)."""
        return self.dfa.minimize().n_states

    def __call__(self, strings: str | Iterable[str]) -> np.ndarray | bool:
        """The label of each string: True when it belongs to the language."""
        if isinstance(strings, str):
            return bool(self.predicate(strings))
        return np.array([bool(self.predicate(s)) for s in strings], dtype=bool)

    def all_strings(self, max_length: int, min_length: int = 0) -> list[str]:
        """Every string with ``min_length <= len <= max_length``, shortest first."""
        return [
            "".join(t) for n in range(min_length, max_length + 1) for t in itertools.product(self.alphabet, repeat=n)
        ]

    def sample(self, n: int, min_length: int = 1, max_length: int = 12, positive_fraction: float = 0.5,
               seed: int | None = 0) -> tuple[list[str], np.ndarray]:
        """Draw ``n`` labelled strings.

        Each string's length is uniform in ``[min_length, max_length]`` and its label is
        positive with probability ``positive_fraction``; given both, the string is uniform
        among the strings of that length and label (counting paths in the DFA), so sparse
        languages such as Tomita 1 and 2 are represented. When a length has no string of
        the drawn label, the other label is used.
        """
        n = check_positive_int(n, "n")
        min_length = check_positive_int(min_length, "min_length", 0)
        max_length = check_positive_int(max_length, "max_length", min_length)
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must lie in [0, 1], got {positive_fraction!r}")
        rng = np.random.default_rng(seed)
        counts = {True: _path_counts(self.dfa, max_length, True), False: _path_counts(self.dfa, max_length, False)}
        strings = []
        for _ in range(n):
            length = int(rng.integers(min_length, max_length + 1))
            label = bool(rng.random() < positive_fraction)
            if counts[label][length][self.dfa.start] == 0:
                label = not label
            strings.append(_draw_string(self.dfa, counts[label], length, rng))
        return strings, self(strings)


def _path_counts(dfa: DFA, max_length: int, accepted: bool) -> list[list[int]]:
    """``c[l][q]``: number of strings of length ``l`` leading from ``q`` to an accepting
    (``accepted=True``) or rejecting state. Python integers, so no overflow."""
    target = dfa.accepting if accepted else ~dfa.accepting
    counts = [[int(t) for t in target]]
    for _ in range(max_length):
        prev = counts[-1]
        counts.append([sum(prev[int(r)] for r in dfa.delta[q]) for q in range(dfa.n_states)])
    return counts


def _draw_string(dfa: DFA, counts: list[list[int]], length: int, rng: np.random.Generator) -> str:
    q, out = dfa.start, []
    for remaining in range(length, 0, -1):
        weights = np.array([counts[remaining - 1][int(r)] for r in dfa.delta[q]], dtype=float)
        a = int(rng.choice(len(weights), p=weights / weights.sum()))
        out.append(dfa.alphabet[a])
        q = int(dfa.delta[q, a])
    return "".join(out)


def _runs(s: str) -> list[tuple[str, int]]:
    return [(k, len(list(g))) for k, g in itertools.groupby(s)]


def _tomita3(s: str) -> bool:
    runs = _runs(s)
    return not any(a == ("1", a[1]) and a[1] % 2 == 1 and b[0] == "0" and b[1] % 2 == 1 for a, b in zip(runs, runs[1:]))


_T7 = re.compile(r"0*1*0*1*")

GRAMMARS: dict[str, Grammar] = {
    "tomita1": Grammar("tomita1", "1*", lambda s: "0" not in s,
                       dfa_from_table([[1, 0], [1, 1]], [0])),
    "tomita2": Grammar("tomita2", "(10)*", lambda s: s == "10" * (len(s) // 2),
                       dfa_from_table([[2, 1], [0, 2], [2, 2]], [0])),
    "tomita3": Grammar("tomita3", "no odd-length run of 1s immediately followed by an odd-length run of 0s", _tomita3,
                       # 0: fine, 1: odd run of 1s, 2: even run of 1s, 3: odd 1s then odd 0s,
                       # 4: odd 1s then even 0s, 5: dead
                       dfa_from_table([[0, 1], [3, 2], [0, 1], [4, 5], [3, 1], [5, 5]], [0, 1, 2, 4])),
    "tomita4": Grammar("tomita4", "no three consecutive 0s", lambda s: "000" not in s,
                       dfa_from_table([[1, 0], [2, 0], [3, 0], [3, 3]], [0, 1, 2])),
    "tomita5": Grammar("tomita5", "an even number of 0s and an even number of 1s",
                       lambda s: s.count("0") % 2 == 0 and s.count("1") % 2 == 0,
                       dfa_from_table([[1, 2], [0, 3], [3, 0], [2, 1]], [0])),
    "tomita6": Grammar("tomita6", "(#0 - #1) divisible by 3", lambda s: (s.count("0") - s.count("1")) % 3 == 0,
                       dfa_from_table([[1, 2], [2, 0], [0, 1]], [0])),
    "tomita7": Grammar("tomita7", "0*1*0*1*", lambda s: _T7.fullmatch(s) is not None,
                       dfa_from_table([[0, 1], [2, 1], [2, 3], [4, 3], [4, 4]], [0, 1, 2, 3])),
    "parity": Grammar("parity", "an odd number of 1s", lambda s: s.count("1") % 2 == 1,
                      dfa_from_table([[0, 1], [1, 0]], [1])),
}


def tomita(k: int) -> Grammar:
    """Tomita grammar ``k`` (1 to 7)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 7:
        raise ValueError(f"Tomita grammars are numbered 1 to 7, got {k!r}")
    return GRAMMARS[f"tomita{int(k)}"]


def parity() -> Grammar:
    """Parity: strings over {0, 1} with an odd number of 1s."""
    return GRAMMARS["parity"]


def get_grammar(name: str | Grammar) -> Grammar:
    if isinstance(name, Grammar):
        return name
    if name not in GRAMMARS:
        raise ValueError(f"unknown grammar {name!r}; choose one of {sorted(GRAMMARS)}")
    return GRAMMARS[name]
