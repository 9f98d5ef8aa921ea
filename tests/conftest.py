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


@pytest.fixture
def mlp():
    """A 12-feature, 3-class MLP (seeded); modules that need another model define their own."""
    from lumos.models import MLP

    torch.manual_seed(0)
    return MLP(12, 3, hidden=(16,))


@pytest.fixture
def X():
    """53 tabular rows for :func:`mlp`."""
    return np.random.default_rng(0).normal(size=(53, 12)).astype(np.float32)


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


def setup_for_method(name: str, mlp: torch.nn.Module, X: np.ndarray):
    """A model, 12 inputs and options that the registered method ``name`` applies to: the
    given MLP on tabular rows, a 1-D CNN with a GAP head for the CAM family, an
    AttentionRNN for attention, a background (and player groups) for Shapley values."""
    from lumos.models import CNN1d
    from lumos.models.attention_rnn import AttentionRNN

    torch.manual_seed(0)
    series = np.random.default_rng(1).normal(size=(12, 2, 16)).astype(np.float32)
    if "cam" in name:
        return CNN1d(2, 3, channels=(4, 4)), series, {}
    if name == "attention":
        return AttentionRNN(2, 3, hidden=4), series, {}
    if name in ("kernel_shap", "sampling_shapley", "exact_shapley"):
        options = {"background": X[-8:]}
        if name == "exact_shapley":
            options["groups"] = np.arange(X.shape[1]) // 2  # 6 players
        return mlp, X[:12], options
    if name == "permutation_importance":
        return mlp, X[:12], {"y": np.arange(12) % 3}
    return mlp, X[:12], {}
