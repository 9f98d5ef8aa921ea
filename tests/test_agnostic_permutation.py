"""Permutation importance: equality with scikit-learn, ignored features, groups, plotting."""
import matplotlib
import numpy as np
import pytest
import torch
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, LinearRegression

import lumos
from lumos.methods.agnostic import PermutationImportance, sklearn_permutations
from tests.conftest import assert_same_state, model_state

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + 0.3 * rng.normal(size=120) > 0).astype(int)
    return LogisticRegression().fit(x, y), x, y


@pytest.mark.parametrize("ours,theirs", [("accuracy", "accuracy"), ("roc_auc", "roc_auc"),
                                         ("log_loss", "neg_log_loss")])
def test_equals_sklearn_with_same_permutations(fitted, ours, theirs):
    clf, x, y = fitted
    ref = permutation_importance(clf, x, y, scoring=theirs, n_repeats=6, random_state=7)
    exp = PermutationImportance(clf.predict_proba, scoring=ours, n_repeats=6, batch_size=300).explain(
        x, y, permutations=sklearn_permutations(len(x), 6, 7))
    np.testing.assert_array_equal(exp.values, ref.importances_mean)
    np.testing.assert_array_equal(exp.extras["std"], ref.importances_std)
    np.testing.assert_array_equal(exp.extras["importances"], ref.importances)
    assert exp.scope == "global" and exp.values.shape == (5,)


def test_mse_equals_sklearn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5]) + 0.1 * rng.normal(size=80)
    reg = LinearRegression().fit(x, y)
    ref = permutation_importance(reg, x, y, scoring="neg_mean_squared_error", n_repeats=3, random_state=0)
    exp = PermutationImportance(reg.predict, scoring="mse", n_repeats=3).explain(
        x, y, permutations=sklearn_permutations(80, 3, 0))
    np.testing.assert_allclose(exp.values, ref.importances_mean, rtol=1e-12, atol=1e-12)


def test_ignored_feature_scores_exactly_zero(fitted):
    _, x, y = fitted
    f = lambda z: np.stack([-z[:, 0] - z[:, 1], z[:, 0] + z[:, 1]], 1)  # noqa: E731  ignores 2, 3, 4
    for scoring in ("accuracy", "roc_auc", "log_loss"):
        exp = PermutationImportance(f, scoring=scoring, n_repeats=4).explain(x, y)
        assert np.all(exp.values[2:] == 0.0) and np.all(exp.extras["std"][2:] == 0.0)
        assert np.all(exp.values[:2] > 0)


def test_callable_scoring_per_class_and_seed(fitted):
    clf, x, y = fitted
    score = lambda yt, s: float(np.mean(s.argmax(1) == yt))  # noqa: E731
    a = PermutationImportance(clf.predict_proba, scoring=score, n_repeats=3, per_class=True, seed=5).explain(x, y)
    b = PermutationImportance(clf.predict_proba, scoring="accuracy", n_repeats=3, per_class=True, seed=5).explain(x, y)
    c = PermutationImportance(clf.predict_proba, scoring="accuracy", n_repeats=3, seed=6).explain(x, y)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(b.values, c.values)
    assert b.extras["per_class"].shape == (2, 5)
    # accuracy is the class-size-weighted mean of per-class recall
    share = np.bincount(y) / len(y)
    np.testing.assert_allclose(share @ b.extras["per_class"], b.values, atol=1e-12)


def test_channel_groups_torch_model_one_call_per_chunk():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 10, 2)).train()
    with torch.no_grad():
        model[1].weight[:, 10:20] = 0  # channel 1 ignored
    before = model_state(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3, 10)).astype(np.float32)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    before = model_state(model)
    exp = PermutationImportance(model, n_repeats=4, batch_size=400).explain(
        x, y, groups=np.arange(3)[:, None], feature_names=["a", "b", "c"])
    assert_same_state(before, model_state(model))
    assert exp.values.shape == (3,) and exp.values[1] == 0.0
    assert calls == [40, 400, 80]  # the inputs, then 12 permuted copies of 40 rows in 2 calls
    ax = exp.plot().axes[0]
    assert len(ax.patches) == 3 and ax.containers  # bars with error bars
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted(["a", "b", "c"], key=lambda n: abs(exp.values[["a", "b", "c"].index(n)]))


def test_registry_and_errors(fitted):
    clf, x, y = fitted
    exp = lumos.explain(clf.predict_proba, x, method="pfi", y=y, n_repeats=2)
    assert exp.method == "permutation_importance"
    with pytest.raises(ValueError, match="true targets"):
        PermutationImportance(clf.predict_proba).explain(x)
    with pytest.raises(ValueError, match="scoring"):
        PermutationImportance(clf.predict_proba, scoring="f1")
    with pytest.raises(ValueError, match="permutations"):
        PermutationImportance(clf.predict_proba, n_repeats=2).explain(x, y, permutations=np.zeros((2, len(x)), int))
    with pytest.raises(ValueError, match="NaN"):
        PermutationImportance(lambda z: np.full((len(z), 2), np.nan)).explain(x, y)
    with pytest.raises(ValueError, match="scores of shape"):
        PermutationImportance(lambda z: np.ones((3, 2))).explain(x, y)


def test_default_names_say_where_a_feature_or_group_lies():
    from lumos.methods.agnostic.masking import group_names, resolve_groups, window_groups

    assert group_names(*resolve_groups(None, (3,))) == ["x0", "x1", "x2"]
    assert group_names(*resolve_groups(None, (1, 3))) == ["t 0", "t 1", "t 2"]  # one channel: left out
    assert group_names(*window_groups((2, 30), (None, 10))) == ["t 0–9", "t 10–19", "t 20–29"]
    assert group_names(*window_groups((3, 30), (1, None))) == ["ch 0", "ch 1", "ch 2"]
    assert group_names(*window_groups((1, 8, 8), (1, 4, 4)))[1] == "rows 0–3, cols 4–7"
    assert group_names(*resolve_groups(None, (2, 2, 2)))[-1] == "ch 1, row 1, col 1"
    model = lambda z: np.stack([z.reshape(len(z), -1).sum(1), -z.reshape(len(z), -1).sum(1)], 1)  # noqa: E731
    x = np.random.default_rng(0).normal(size=(20, 2, 30))
    exp = PermutationImportance(model, n_repeats=2).explain(x, (x.sum((1, 2)) > 0).astype(int),
                                                           groups=window_groups((2, 30), (None, 10))[0])
    assert exp.feature_names == ["t 0–9", "t 10–19", "t 20–29"]


def test_labels_positional_or_as_y_once(fitted):
    clf, x, y = fitted
    a = PermutationImportance(clf.predict_proba, n_repeats=2).explain(x, y)
    b = PermutationImportance(clf.predict_proba, n_repeats=2).explain(x, y=y)
    c = PermutationImportance(clf.predict_proba, n_repeats=2).explain(x, target=y)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.values, c.values)
    with pytest.raises(ValueError, match="twice"):
        PermutationImportance(clf.predict_proba).explain(x, y, y=y)
    with pytest.raises(ValueError, match="one per input"):
        PermutationImportance(clf.predict_proba).explain(x, y=y[:-1])
    fresh = PermutationImportance(clf.predict_proba, n_repeats=2, seed=None).explain(x, y)
    again = PermutationImportance(clf.predict_proba, n_repeats=2, seed=fresh.params["seed"]).explain(x, y)
    np.testing.assert_array_equal(fresh.values, again.values)
