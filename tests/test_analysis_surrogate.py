"""Global surrogate trees."""
import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from conftest import assert_same_state, model_state
from lumos.analysis import surrogate_tree
from lumos.models import MLP


@pytest.fixture
def grid_data():
    """Integer-valued features: any threshold between two grid values splits the same way,
    so a tree recovering the model's splits agrees with it everywhere."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 10, size=(3000, 5)).astype(np.float32)


def test_fidelity_is_one_on_a_model_that_is_itself_a_shallow_tree(grid_data):
    x = grid_data
    rule = np.where(x[:, 0] > 4, np.where(x[:, 1] > 6, 3, np.where(x[:, 4] > 1, 2, 1)), np.where(x[:, 2] > 3, 1, 0))
    teacher = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x[:500], rule[:500])
    assert teacher.get_depth() == 3
    result = surrogate_tree(teacher.predict_proba, x, max_depth=3, seed=0)
    assert result.fidelity == 1.0 and result.train_fidelity == 1.0
    assert result.n_test == 900 and result.depth <= 3
    used = {int(f) for f in teacher.tree_.feature if f >= 0}
    for f in used:
        assert f"x{f}" in result.rules
    np.testing.assert_array_equal(result.predict(grid_data[:50]), teacher.predict(grid_data[:50]))


def test_rule_model_with_names_and_held_out_set(grid_data):
    def model(x):  # class 1 iff x0 > 4 and x3 <= 2: a depth-2 tree
        positive = (x[:, 0] > 4) & (x[:, 3] <= 2)
        return np.stack([~positive, positive], 1).astype(float)

    names = ["age", "b", "c", "dose", "e"]
    result = surrogate_tree(model, grid_data[:2000], max_depth=2, held_out=grid_data[2000:], feature_names=names)
    assert result.fidelity == 1.0 and result.n_test == 1000
    assert "age" in result.rules and "dose" in result.rules
    too_shallow = surrogate_tree(model, grid_data[:2000], max_depth=1, held_out=grid_data[2000:])
    assert too_shallow.fidelity < 1.0


def test_torch_model_left_as_found_and_single_output(grid_data):
    torch.manual_seed(0)
    net = MLP(5, 1, hidden=(8,)).train()
    state = model_state(net)
    result = surrogate_tree(net, grid_data[:600], max_depth=4, seed=0)
    assert 0.0 <= result.fidelity <= 1.0
    assert_same_state(state, model_state(net))
    with pytest.raises(ValueError, match="feature names"):
        surrogate_tree(net, grid_data[:100], feature_names=["a"])
    with pytest.raises(ValueError, match="max_depth"):
        surrogate_tree(net, grid_data[:100], max_depth=0)
