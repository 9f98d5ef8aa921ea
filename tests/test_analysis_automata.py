"""Grammars, Hopcroft minimisation, and automata read out of trained Elman networks."""
import numpy as np
import pytest
import torch

from lumos.analysis import DFA, GRAMMARS, extract_automaton, parity, tomita, train_rnn
from lumos.analysis.automata import ElmanRNN
from lumos.analysis.dfa import dfa_from_table

MINIMAL_STATES = {"tomita1": 2, "tomita2": 3, "tomita3": 5, "tomita4": 4, "tomita5": 4, "tomita6": 3, "tomita7": 5,
                  "parity": 2}


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_grammar_predicate_matches_its_dfa_on_every_short_string(name):
    g = GRAMMARS[name]
    strings = g.all_strings(12)
    assert len(strings) == 2 ** 13 - 1
    np.testing.assert_array_equal(g(strings), g.dfa.accepts(strings))
    assert g.n_minimal_states == MINIMAL_STATES[name]


def test_grammar_examples_from_the_definitions():
    assert tomita(1)("111") and not tomita(1)("101")
    assert tomita(2)("1010") and not tomita(2)("0101")
    assert tomita(3)("1100") and not tomita(3)("1101000") and not tomita(3)("10")
    assert tomita(4)("1001") and not tomita(4)("10001")
    assert tomita(5)("0110") and not tomita(5)("011")
    assert tomita(6)("0011") and tomita(6)("000") and not tomita(6)("001")
    assert tomita(7)("0110") and not tomita(7)("10101")
    assert parity()("0100") and not parity()("0110")
    with pytest.raises(ValueError, match="1 to 7"):
        tomita(8)


def test_sampler_draws_balanced_labels_and_correct_lengths():
    strings, labels = tomita(1).sample(400, 3, 9, seed=1)
    assert all(3 <= len(s) <= 9 for s in strings)
    np.testing.assert_array_equal(labels, tomita(1)(strings))
    assert 0.4 < labels.mean() < 0.6  # 1* has one positive string per length, yet half the sample is positive
    again, _ = tomita(1).sample(400, 3, 9, seed=1)
    assert again == strings


def test_hopcroft_merges_equivalent_states_and_drops_unreachable_ones():
    # parity written with 4 states: 0/2 and 1/3 are equivalent, 4 is unreachable
    redundant = dfa_from_table([[2, 1], [3, 0], [0, 3], [1, 2], [4, 4]], [1, 3])
    minimal = redundant.minimize()
    assert minimal.n_states == 2
    assert minimal.equivalent(parity().dfa)
    strings = parity().all_strings(10)
    np.testing.assert_array_equal(minimal.accepts(strings), redundant.accepts(strings))
    # the minimal DFA is canonical: start is state 0 and minimising again changes nothing
    again = minimal.minimize()
    assert again.start == 0 and np.array_equal(again.delta, minimal.delta)


def test_dfa_rejects_bad_definitions_and_symbols():
    with pytest.raises(ValueError, match="outside"):
        DFA(np.array([[0, 2]]), 0, np.array([True]))
    with pytest.raises(ValueError, match="alphabet"):
        parity().dfa.accepts(["012"])
    rnn = ElmanRNN("01", hidden=3)
    with pytest.raises(ValueError, match="alphabet"):
        rnn.predict(["0a"])
    with pytest.raises(TypeError, match="sequence of strings"):
        rnn.predict("0101")


@pytest.fixture(scope="module", params=["tomita1", "parity"])
def trained(request):
    g = GRAMMARS[request.param]
    rnn = train_rnn(g, seed=0)
    return g, rnn


def test_extracted_automaton_is_the_minimal_dfa_and_agrees_on_longer_strings(trained):
    g, rnn = trained
    fit_strings, _ = g.sample(1000, 1, 12, seed=100)
    held_out, _ = g.sample(1000, 1, 20, seed=200)  # up to length 20, beyond the training length 12
    assert max(len(s) for s in held_out) == 20
    result = extract_automaton(rnn, fit_strings, held_out=held_out, grammar=g, seed=0)
    assert result.n_states == g.n_minimal_states
    assert result.automaton.equivalent(g.dfa)
    assert result.grammar_agreement == 1.0
    assert result.network_agreement == 1.0
    assert result.fit_agreement == 1.0
    assert result.raw.n_states == result.n_clusters >= result.n_states


def test_training_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = train_rnn("tomita1", epochs=3, seed=5)
    assert torch.equal(before, torch.random.get_rng_state())
    b = train_rnn("tomita1", epochs=3, seed=5)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    assert a.history_ == b.history_


def test_extraction_leaves_the_network_as_found(trained):
    g, rnn = trained
    rnn.train()
    flags = [p.requires_grad for p in rnn.parameters()]
    extract_automaton(rnn, g.all_strings(6), n_clusters=g.n_minimal_states + 2)
    assert rnn.training and [p.requires_grad for p in rnn.parameters()] == flags
    rnn.eval()


def test_forward_follows_lumos_time_series_layout(trained):
    g, rnn = trained
    strings = ["0110", "1111", "1011"]
    codes, _ = rnn.encode(strings)
    with torch.no_grad():
        logits = rnn(codes.transpose(1, 2))
    assert logits.shape == (3, 1)
    np.testing.assert_array_equal((logits[:, 0] > 0).numpy(), rnn.predict(strings))
    with pytest.raises(ValueError, match="one-hot"):
        rnn(torch.zeros(2, 3, 4))
