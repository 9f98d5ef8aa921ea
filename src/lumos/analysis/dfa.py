"""Deterministic finite automata: running, Hopcroft minimisation and drawing.

A :class:`DFA` over an alphabet of single-character symbols has states ``0..n-1``, a
transition table ``delta[q, a]`` (complete: every state has a successor for every
symbol), a start state and a boolean ``accepting`` vector. It is what
:func:`lumos.analysis.automata.extract_automaton` reads out of a recurrent network and
what the grammars in :mod:`lumos.analysis.grammars` are defined by.

Reference: Hopcroft, "An n log n algorithm for minimizing states in a finite automaton"
(1971); Hopcroft, Motwani & Ullman, *Introduction to Automata Theory*, section 4.4.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class DFA:
    """A complete DFA ``(Q, Σ, δ, q0, F)``.

    Parameters
    ----------
    delta : array (n_states, n_symbols) of int
        ``delta[q, a]`` is the state reached from ``q`` on symbol ``alphabet[a]``.
    start : int
    accepting : array (n_states,) of bool
    alphabet : str
        The symbols, one character each, in the order of ``delta``'s columns.
    """

    delta: np.ndarray
    start: int
    accepting: np.ndarray
    alphabet: str = "01"

    def __post_init__(self):
        delta = np.asarray(self.delta, dtype=np.int64)
        accepting = np.asarray(self.accepting, dtype=bool)
        if delta.ndim != 2 or delta.shape[1] != len(self.alphabet):
            raise ValueError(f"delta must have shape (n_states, {len(self.alphabet)}), got {delta.shape}")
        n = delta.shape[0]
        if n == 0 or accepting.shape != (n,):
            raise ValueError(f"accepting must have one flag per state ({n}), got shape {accepting.shape}")
        if delta.min() < 0 or delta.max() >= n:
            raise ValueError(f"delta refers to states outside 0..{n - 1}")
        if not 0 <= int(self.start) < n:
            raise ValueError(f"start state {self.start} is not in 0..{n - 1}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet has repeated symbols: {self.alphabet!r}")
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "accepting", accepting)
        object.__setattr__(self, "start", int(self.start))

    @property
    def n_states(self) -> int:
        return self.delta.shape[0]

    def symbol_index(self, string: str) -> list[int]:
        try:
            return [self.alphabet.index(s) for s in string]
        except ValueError:
            bad = sorted(set(string) - set(self.alphabet))
            raise ValueError(f"string {string!r} has symbols {bad} outside the alphabet {self.alphabet!r}") from None

    def run(self, string: str) -> int:
        """The state reached after reading ``string`` from the start state."""
        q = self.start
        for a in self.symbol_index(string):
            q = int(self.delta[q, a])
        return q

    def accepts(self, strings: str | Iterable[str]) -> np.ndarray | bool:
        """Whether each string is accepted (a bool for one string, an array for many)."""
        if isinstance(strings, str):
            return bool(self.accepting[self.run(strings)])
        return np.array([self.accepting[self.run(s)] for s in strings], dtype=bool)

    def reachable(self) -> np.ndarray:
        """States reachable from the start, in breadth-first order (symbols in alphabet order)."""
        seen, order, queue = {self.start}, [self.start], deque([self.start])
        while queue:
            q = queue.popleft()
            for r in self.delta[q]:
                r = int(r)
                if r not in seen:
                    seen.add(r)
                    order.append(r)
                    queue.append(r)
        return np.array(order, dtype=np.int64)

    def minimize(self) -> "DFA":
        """The minimal equivalent DFA: unreachable states removed, then Hopcroft's partition
        refinement merges indistinguishable states. States are renumbered in breadth-first
        order from the start, so two minimal DFAs of the same language are identical."""
        keep = self.reachable()
        index = {int(q): i for i, q in enumerate(keep)}
        delta = np.array([[index[int(r)] for r in self.delta[q]] for q in keep], dtype=np.int64)
        accepting = self.accepting[keep]
        blocks = _hopcroft(delta, accepting)
        block_of = np.empty(len(keep), dtype=np.int64)
        for b, members in enumerate(blocks):
            block_of[list(members)] = b
        reps = [min(members) for members in blocks]
        quotient = DFA(block_of[delta[reps]], int(block_of[0]), accepting[reps], self.alphabet)
        return quotient._renumbered()

    def _renumbered(self) -> "DFA":
        order = self.reachable()
        index = np.empty(self.n_states, dtype=np.int64)
        index[order] = np.arange(len(order))
        return DFA(index[self.delta[order]], 0, self.accepting[order], self.alphabet)

    def equivalent(self, other: "DFA") -> bool:
        """Whether both automata accept the same language (same minimal DFA)."""
        if self.alphabet != other.alphabet:
            return False
        a, b = self.minimize(), other.minimize()
        same_shape = a.n_states == b.n_states
        return same_shape and np.array_equal(a.delta, b.delta) and np.array_equal(a.accepting, b.accepting)

    def to_text(self) -> str:
        """The transition table as text: one row per state, ``*`` marks accepting, ``>`` the start."""
        head = "state | " + " | ".join(f"on {s!r}" for s in self.alphabet)
        rows = [head, "-" * len(head)]
        for q in range(self.n_states):
            mark = (">" if q == self.start else " ") + ("*" if self.accepting[q] else " ")
            rows.append(f"{mark}q{q:<3}| " + " | ".join(f"q{int(r):<4}" for r in self.delta[q]))
        return "\n".join(rows)

    def draw(self, ax=None, title: str | None = None):
        """Draw the automaton with matplotlib: states on a circle, accepting states with a
        double ring, an arrow into the start state, edges labelled by their symbols."""
        from lumos.analysis._draw import draw_dfa

        return draw_dfa(self, ax=ax, title=title)


def _hopcroft(delta: np.ndarray, accepting: np.ndarray) -> list[frozenset]:
    """Hopcroft's algorithm: the coarsest partition of the states that separates accepting
    from rejecting states and is stable under every symbol's transitions."""
    n, k = delta.shape
    inverse = [[[] for _ in range(n)] for _ in range(k)]
    for q in range(n):
        for a in range(k):
            inverse[a][delta[q, a]].append(q)
    final = frozenset(np.flatnonzero(accepting).tolist())
    rest = frozenset(range(n)) - final
    partition = [b for b in (final, rest) if b]
    waiting = [min(partition, key=len)] if len(partition) == 2 else []
    while waiting:
        splitter = waiting.pop()
        for a in range(k):
            into = frozenset(p for q in splitter for p in inverse[a][q])
            if not into:
                continue
            refined = []
            for block in partition:
                inside, outside = block & into, block - into
                if inside and outside:
                    refined += [inside, outside]
                    if block in waiting:
                        waiting.remove(block)
                        waiting += [inside, outside]
                    else:
                        waiting.append(min(inside, outside, key=len))
                else:
                    refined.append(block)
            partition = refined
    return sorted(partition, key=min)


def dfa_from_table(table: Sequence[Sequence[int]], accepting: Sequence[int], start: int = 0,
                   alphabet: str = "01") -> DFA:
    """Build a DFA from a nested list ``table[q][a]`` and the list of accepting states."""
    table = np.asarray(table, dtype=np.int64)
    flags = np.zeros(table.shape[0], dtype=bool)
    flags[list(accepting)] = True
    return DFA(table, start, flags, alphabet)
