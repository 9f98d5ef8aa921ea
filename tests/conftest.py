"""Shared fixtures: small reference models (seeded) and the offline real data when present."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumos.data import find_data_dir

torch.set_num_threads(1)  # tests are small; threads only add contention on CI's 2 cores


def shared_data(name: str):
    """Path of an archive in ../shared/data, or skip the test with the reason."""
    try:
        return find_data_dir(name) / name
    except FileNotFoundError as err:
        pytest.skip(f"real data not available: {err}")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    return 0


def model_state(model: torch.nn.Module) -> dict:
    """Everything a guard must restore: modes, requires_grad, hooks, parameters."""
    return {
        "modes": [m.training for m in model.modules()],
        "grads": [p.requires_grad for p in model.parameters()],
        "hooks": [sum(len(getattr(m, d, {})) for d in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                        "_backward_pre_hooks")) for m in model.modules()],
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before["modes"] == after["modes"], "training modes changed"
    assert before["grads"] == after["grads"], "requires_grad flags changed"
    assert before["hooks"] == after["hooks"], "hooks left on the model"
    for k, v in before["params"].items():
        assert torch.equal(v, after["params"][k]), f"parameter {k} changed"
