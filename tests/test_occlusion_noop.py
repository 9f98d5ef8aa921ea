"""Occlusions that change nothing (a black patch occluded with a black baseline, a background
row equal to the input there) have a drop of exactly 0 and are not sent to the model; the map
is the definition's, computed copy by copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import rows_per_call
from lumos.methods.agnostic import Occlusion
from lumos.methods.agnostic.masking import sliding_windows


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 144, 3)).eval()


def _digits(n=5):
    x = np.zeros((n, 1, 12, 12), np.float32)  # black background, a bright blob in the middle
    x[:, :, 3:8, 4:9] = np.random.default_rng(0).uniform(0.2, 1.0, size=(n, 1, 5, 5))
    return x


@pytest.mark.parametrize("batch_size", [None, 7])
def test_occlusion_skips_copies_equal_to_the_input_and_keeps_the_definition(batch_size):
    net, x = _net(), _digits()
    window, stride = (1, 4, 4), (1, 2, 2)
    exp, rows = rows_per_call(net, lambda: Occlusion(net, window=window, stride=stride, batch_size=batch_size)
                      .explain(x, target=1))
    wins = sliding_windows(x.shape[1:], window, stride)
    with torch.no_grad():
        f = lambda z: net(torch.as_tensor(z))[:, 1].numpy().astype(np.float64)  # noqa: E731
        total, count, changed = np.zeros(x.shape), np.zeros(x.shape[1:]), 0
        for win in wins:
            copy = x.copy()
            copy[(slice(None),) + win] = 0.0
            changed += int((copy != x).reshape(len(x), -1).any(1).sum())
            total[(slice(None),) + win] += (f(x) - f(copy))[:, None, None, None]
            count[win] += 1
    np.testing.assert_allclose(exp.values, total / count, rtol=1e-5, atol=1e-6)
    assert changed < len(x) * len(wins)  # the black border's windows change nothing
    assert sum(rows) == len(x) + changed  # the inputs once, then only the copies that differ from them


def test_no_op_occlusions_have_exactly_zero_drop():
    net, x = _net(), _digits(3)
    groups = np.zeros((1, 12, 12), np.int64)
    groups[:, 3:8, 4:9] = 1  # group 0: the black background only
    exp = Occlusion(net).explain(x, target=0, groups=groups)
    assert np.all(exp.values[:, :, 0, 0] == 0.0)  # the background's group: drop exactly 0
    assert np.all(exp.values[:, :, 5, 6] != 0.0)


def test_nan_inputs_are_never_taken_for_unchanged():
    from lumos.methods.agnostic.occlusion import _changed

    x = np.array([[np.nan, 1.0]])
    copies = np.array([[[np.nan, 1.0], [0.0, 1.0]]])
    assert _changed(copies, x).tolist() == [[True, True]]  # NaN != NaN: evaluated, never assumed equal
