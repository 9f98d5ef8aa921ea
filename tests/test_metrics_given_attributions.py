"""Phi(x) computed beforehand (``attributions=``, Quantus's a_batch): max-sensitivity takes it
as the stability metrics do (same values, same errors for explanations that do not fit), and
``lumos.evaluate`` passes the explanation it already holds to every explainer metric that
takes it, so x is explained once per method, not once more per stability metric."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumos import IntegratedGradients, Saliency
from lumos.metrics import (continuity, evaluate, local_lipschitz_estimate, max_sensitivity, relative_input_stability,
                           relative_output_stability, relative_representation_stability)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 6 * 6, 4)).eval()
    x = np.random.default_rng(0).normal(size=(5, 1, 6, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0])
    return model, x, y


def test_max_sensitivity_with_given_attributions_equals_explaining_x(cnn):
    model, x, y = cnn
    for explainer in (Saliency(model, absolute=False), IntegratedGradients(model, n_steps=8)):
        exp = explainer.explain(x, target=y)
        for relative in (False, True):
            kw = dict(n_samples=4, radius=0.1, relative=relative, seed=3)
            base = max_sensitivity(explainer, model, x, y, **kw)
            given = max_sensitivity(explainer, model, x, y, attributions=exp.values, **kw)
            np.testing.assert_allclose(given, base, rtol=1e-5, atol=1e-9)  # x alone here, with its copies there
            np.testing.assert_array_equal(max_sensitivity(explainer, model, None, None, attributions=exp, **kw), given)
            chunked = max_sensitivity(explainer, model, x, y, attributions=exp.values, batch_size=10, **kw)
            np.testing.assert_allclose(chunked, given, rtol=1e-6, atol=1e-12)  # the same noise for any chunking


def _counted(explainer):
    """``(rows explained per call, fn(inputs, target))`` around ``explainer``."""
    seen = []

    def counted(inputs, target):
        seen.append(len(inputs))
        return explainer.explain(inputs, target=target).values

    return seen, counted


def test_max_sensitivity_explains_only_the_copies(cnn):
    model, x, y = cnn
    sal = Saliency(model, absolute=False)
    seen, counted = _counted(sal)
    max_sensitivity(counted, model, x, y, n_samples=3, attributions=sal.explain(x, target=y).values)
    assert sum(seen) == len(x) * 3
    seen.clear()
    max_sensitivity(counted, model, x, y, n_samples=3)
    assert sum(seen) == len(x) * 4


def test_max_sensitivity_refuses_attributions_that_do_not_fit(cnn):
    model, x, y = cnn
    sal = Saliency(model)
    a = sal.explain(x, target=y).values
    with pytest.raises(ValueError, match="rows but there are"):
        max_sensitivity(sal, model, x, y, n_samples=2, attributions=a[:-1])
    with pytest.raises(ValueError, match="values per input"):
        max_sensitivity(sal, model, x, y, n_samples=2, attributions=a[:, :, :5])


STABILITY = {"max_sensitivity": (max_sensitivity, {"n_samples": 4, "radius": 0.1}),
             "local_lipschitz_estimate": (local_lipschitz_estimate, {"n_samples": 4, "seed": 1}),
             "continuity": (continuity, {"n_steps": 4}),
             "relative_input_stability": (relative_input_stability, {"n_samples": 4, "seed": 1}),
             "relative_output_stability": (relative_output_stability, {"n_samples": 4, "seed": 1}),
             "relative_representation_stability": (relative_representation_stability, {"n_samples": 4, "seed": 1})}


def test_evaluate_passes_the_explanation_it_holds(cnn):
    """The table's values equal each metric explaining x itself (deterministic explainer), and x
    is explained once for the whole table: only the copies are explained by the metrics."""
    model, x, y = cnn
    sal = Saliency(model, absolute=False)
    seen, counted = _counted(sal)
    table = evaluate(model, x, y, {"saliency": counted}, STABILITY, progress=False)
    assert sum(seen) == len(x) * (1 + 4 * len(STABILITY)), seen  # x once, then 4 copies per input and metric
    for row in table:
        fn, options = STABILITY[row["metric"]]
        alone = fn(sal, model, x, y, **options)
        np.testing.assert_allclose(row["mean"], np.nanmean(alone), rtol=1e-5, err_msg=row["metric"])
