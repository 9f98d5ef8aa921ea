"""Smooth MPRT, efficient MPRT (Hedström et al. 2023) and random logit (Sixt et al. 2020):
equal to Quantus 0.6.0 on the same model, inputs, explainer, noise and layer seeds (live
when Quantus is installed, and against its frozen scores in tests/data, written by
``python -m benchmarks.sanity_reference``), and the properties that define them."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from benchmarks import sanity_reference as ref
from conftest import assert_same_state, model_state
from lumos import Saliency
from lumos.metrics.sanity import (discrete_entropy, efficient_mprt, off_class_targets, random_logit, smooth_mprt,
                                  smooth_mprt_noise)


def _edges(inputs, target):
    """An explainer that ignores the model and the class: the input's edges."""
    x = np.asarray(inputs, dtype=np.float64)
    return np.hypot(ndimage.sobel(x, axis=-1), ndimage.sobel(x, axis=-2))


def _close(ours: dict, theirs: dict) -> None:
    assert list(ours["smooth_mprt"]) == list(theirs["smooth_mprt"])  # the stages, input side first
    for stage, values in theirs["smooth_mprt"].items():
        np.testing.assert_allclose(ours["smooth_mprt"][stage], values, atol=1e-5)
    np.testing.assert_allclose(ours["efficient_mprt"], theirs["efficient_mprt"], atol=1e-5)
    np.testing.assert_allclose(ours["random_logit"], theirs["random_logit"], atol=1e-5)


def test_equal_to_frozen_quantus_scores():
    _close(ref.lumos_scores(), json.loads(ref.REFERENCE.read_text()))


def test_equal_to_quantus_live():
    pytest.importorskip("sklearn")
    from benchmarks.stubs import torchvision_stub

    with torchvision_stub():
        pytest.importorskip("quantus")
    _close(ref.lumos_scores(), ref.quantus_scores())


def test_model_independent_explainer_fails_and_gains_nothing():
    model, x, y = ref.setup()
    smooth = smooth_mprt(_edges, model, x, y, n_samples=4, order="top_down")
    np.testing.assert_allclose(smooth.scores["spearman"], 1.0)
    assert not smooth.passed and "insensitive to the top layers" in smooth.reason
    eff = efficient_mprt(_edges, model, x, y)
    np.testing.assert_array_equal(eff.scores, 0.0)
    np.testing.assert_allclose(random_logit(_edges, model, x, y).scores, 1.0)
    np.testing.assert_allclose(random_logit(_edges, model, x, y, similarity="spearman").scores, 1.0)


def test_gradients_pass_and_rise_in_complexity():
    model, x, y = ref.setup()
    before = model_state(model)
    smooth = smooth_mprt(Saliency(model), model, x, y, n_samples=4)
    assert smooth.passed and smooth.mode == "bottom_up" and smooth.stages == ["0", "2", "5"]
    assert smooth.similarity["5"] < 0.5
    assert_same_state(before, model_state(model))


def test_noise_and_results_do_not_depend_on_chunks():
    model, x, y = ref.setup()
    z = smooth_mprt_noise(x, 5, seed=7)
    np.testing.assert_array_equal(smooth_mprt_noise(x[2:4], 5, seed=7, row_offset=2), z[:, 2:4])
    a = smooth_mprt(Saliency(model), model, x, y, n_samples=5, seed=1, chunk=1)
    b = smooth_mprt(Saliency(model), model, x, y, n_samples=5, seed=1)
    np.testing.assert_allclose(a.scores["spearman"], b.scores["spearman"], atol=1e-12)
    one = smooth_mprt(Saliency(model), model, x[:1], y[:1], n_samples=5, seed=1, reference=None)
    np.testing.assert_allclose(one.scores["spearman"][:, 0], b.scores["spearman"][:, 0], atol=1e-12)


def test_discrete_entropy_and_off_classes_exact():
    a = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    np.testing.assert_allclose(discrete_entropy(a, n_bins=2), [np.log(2), np.log(2)])
    np.testing.assert_allclose(discrete_entropy(a, n_bins=4)[1], np.log(4))
    t = np.array([0, 3, 9, 5] * 50)
    off = off_class_targets(t, 10, seed=3)
    assert np.all(off != t) and off.min() >= 0 and off.max() <= 9
    assert set(off[t == 0]) <= set(range(1, 10)) and len(set(off)) == 10


def test_bad_arguments():
    model, x, y = ref.setup()
    with pytest.raises(ValueError, match="order"):
        smooth_mprt(Saliency(model), model, x, y, order="cascade")
    with pytest.raises(ValueError, match="at least 2 inputs"):  # the reference rule's yardstick, before any work
        smooth_mprt(Saliency(model), model, x[:1], y[:1])
    with pytest.raises(ValueError, match="reference must be one of"):
        smooth_mprt(Saliency(model), model, x, y, reference="zero")
    with pytest.raises(ValueError, match="off_target"):
        random_logit(Saliency(model), model, x, y, off_target=y)
    with pytest.raises(ValueError, match="unknown layers"):
        efficient_mprt(Saliency(model), model, x, y, layers=["nope"])


def test_a_torchscript_model_can_be_randomised():
    """deepcopy of a ScriptModule gives non-leaf parameters (CloneBackward) that an explainer's
    guard could not freeze; the randomised copies are made leaves again and the model is left alone."""
    import warnings

    import torch

    model, x, y = ref.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    before = [p.detach().clone() for p in scripted.parameters()]
    smooth = smooth_mprt(Saliency(scripted), scripted, x, y, n_samples=2)
    assert smooth.passed and smooth.stages == ["0", "2", "5"]
    assert np.isfinite(efficient_mprt(Saliency(scripted), scripted, x, y).mean)
    assert all(torch.equal(a, b) and b.is_leaf for a, b in zip(before, scripted.parameters()))
