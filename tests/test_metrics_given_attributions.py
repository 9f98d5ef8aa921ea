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


STABILITY = {"max_sensitivity": (max_sensitivity, {"n_samples": 4, "radius": 0.1}),
             "local_lipschitz_estimate": (local_lipschitz_estimate, {"n_samples": 4, "seed": 1}),
             "continuity": (continuity, {"n_steps": 4}),
             "relative_input_stability": (relative_input_stability, {"n_samples": 4, "seed": 1}),
             "relative_output_stability": (relative_output_stability, {"n_samples": 4, "seed": 1}),
             "relative_representation_stability": (relative_representation_stability, {"n_samples": 4, "seed": 1})}


@pytest.mark.parametrize("name", list(STABILITY))
def test_attributions_that_do_not_fit_are_refused(cnn, name):
    """Every metric taking ``attributions=`` refuses one with too few rows or the wrong width
    (one shared check, ``stability.check_width``), before any explaining."""
    model, x, y = cnn
    fn, kw = STABILITY[name]
    sal = Saliency(model)
    a = sal.explain(x, target=y).values
    with pytest.raises(ValueError, match="rows but there are"):
        fn(sal, model, x, y, attributions=a[:-1], **kw)
    with pytest.raises(ValueError, match="values per input"):
        fn(sal, model, x, y, attributions=a[:, :, :5], **kw)


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
