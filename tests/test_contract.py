"""The contract every registered method keeps, checked method by method: the user's model
is left exactly as found (training mode, requires_grad, the user's own hooks, parameters),
also when the model raises half-way through an explanation; a seed makes the result
reproducible; NaN inputs are refused with a message that names the problem."""
import numpy as np
import pytest

import lumos
from conftest import assert_same_state, model_state, setup_for_method

METHODS = sorted(lumos.list_methods())


def _as_user_left_it(model):
    """Training mode, one frozen parameter and a hook of the user's own."""
    model.train()
    next(iter(model.parameters())).requires_grad_(False)
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(1))
    return handle, calls


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("name", METHODS)
def test_model_left_as_found_also_when_it_raises_half_way(name, mlp, X):
    model, x, options = setup_for_method(name, mlp, X)
    handle, calls = _as_user_left_it(model)
    before = model_state(model)
    lumos.explain(model, x, name, **options)
    assert_same_state(before, model_state(model))
    assert calls, "the user's hook stays active during the explanation"

    half_way = max(1, (len(calls) + 1) // 2)  # fail in the middle of the same explanation's forward passes

    def fail(module, inputs, output):
        if len(calls) >= half_way:
            raise Boom("model failed")

    failing = model.register_forward_hook(fail)
    before = model_state(model)
    calls.clear()
    with pytest.raises(Exception, match="model failed"):
        lumos.explain(model, x, name, **options)
    assert_same_state(before, model_state(model))
    failing.remove()
    handle.remove()


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name, mlp, X):
    model, x, options = setup_for_method(name, mlp, X)
    model.eval()
    a = lumos.explain(model, x, name, seed=3, **options) if _takes_seed(name) else lumos.explain(model, x, name, **options)
    b = lumos.explain(model, x, name, seed=3, **options) if _takes_seed(name) else lumos.explain(model, x, name, **options)
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("name", METHODS)
def test_nan_inputs_are_refused(name, mlp, X):
    model, x, options = setup_for_method(name, mlp, X)
    bad = x.copy()
    bad[1].flat[3] = np.nan
    with pytest.raises(ValueError, match=r"(?i)nan|finite"):
        lumos.explain(model, bad, name, **options)


def _takes_seed(name: str) -> bool:
    from lumos.core import registry

    return registry.get(name).stochastic
