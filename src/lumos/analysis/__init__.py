"""Global model analysis: what a whole network has learned, beyond single predictions.

- :func:`activation_maximization`: the input that maximises a class logit, a neuron or a channel;
- :func:`representations` and :func:`probe`: hidden layers projected and linearly probed;
- :func:`surrogate_tree`: a shallow decision tree imitating the model, with its fidelity;
- :mod:`lumos.analysis.automata`: an Elman network read as a finite automaton
  (:func:`train_rnn`, :func:`extract_automaton`, Tomita grammars and parity).
"""
from lumos.analysis.activation_max import (
    ActivationMaximization, Objective, activation_maximization, channel, class_log_probability, class_logit, neuron,
    total_variation,
)
from lumos.analysis.automata import AutomatonExtraction, ElmanRNN, extract_automaton, train_rnn
from lumos.analysis.dfa import DFA
from lumos.analysis.grammars import GRAMMARS, Grammar, parity, tomita
from lumos.analysis.representations import ProbeResult, Representation, layer_activations, probe, representations
from lumos.analysis.surrogate import SurrogateTree, surrogate_tree

__all__ = [
    "activation_maximization", "ActivationMaximization", "Objective", "class_logit", "class_log_probability", "neuron",
    "channel", "total_variation", "representations", "Representation", "probe", "ProbeResult", "layer_activations",
    "surrogate_tree", "SurrogateTree", "train_rnn", "extract_automaton", "AutomatonExtraction", "ElmanRNN", "DFA",
    "Grammar", "GRAMMARS", "tomita", "parity",
]
