"""LIME with mask sampling: inputs whose samples fit one block share model calls (a recurrent
model's call costs nearly as much for 25 rows as for 200). Each input keeps its own draws, so
the explanation is the one computed input by input, and the model sees full calls."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import rows_per_call
from lumos.methods.agnostic import Lime
from lumos.models.temporal import GRUClassifier


def _gru():
    torch.manual_seed(0)
    return GRUClassifier(3, 2, hidden=8).eval()


def _series(n=7, t=20):
    return np.random.default_rng(1).normal(size=(n, 3, t)).astype(np.float32)


@pytest.mark.parametrize("kwargs", [{}, {"penalty": "l1", "kernel": "cosine", "include_input": False}])
def test_packed_calls_give_the_values_of_one_call_per_input(kwargs):
    model, x = _gru(), _series()
    groups = np.arange(3 * 20).reshape(3, 20) // 4  # 15 groups of 4 cells
    one_by_one, rows_single = rows_per_call(model, lambda: Lime(model, n_samples=25, seed=3, batch_size=25, **kwargs)
                                            .explain(x, target=1, groups=groups))
    packed, rows = rows_per_call(model, lambda: Lime(model, n_samples=25, seed=3, batch_size=100, **kwargs)
                                 .explain(x, target=1, groups=groups))
    np.testing.assert_allclose(packed.values, one_by_one.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(packed.extras["r2"], one_by_one.extras["r2"], rtol=1e-5, atol=1e-7)
    # chunks of 100 rows = 4 inputs (balanced: 3 + 4), each the inputs' own call, then all their samples
    assert rows == [3, 75, 4, 100], rows
    assert rows_single == [1, 25] * 7, rows_single


def test_packing_follows_the_automatic_budget_and_the_seed_alone():
    model, x = _gru(), _series(n=12)
    a = Lime(model, n_samples=30, seed=5).explain(x, target=0)
    b = Lime(model, n_samples=30, seed=5, batch_size=7).explain(x, target=0)  # 30 > 7 rows: per input, blocked calls
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a.values, Lime(model, n_samples=30, seed=6).explain(x, target=0).values)
