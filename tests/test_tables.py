"""Tables as users have them (#20 item 2): a pandas DataFrame's column names reach the
Explanation and its plot, a scikit-learn pipeline fitted on a DataFrame is called with one
(no "X does not have valid feature names" warning), class names are targets, and the
plot of a row shows the feature values and how many features it shows."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import lumos

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X = data.frame[data.feature_names]
    y = pd.Series(np.asarray(data.target_names)[data.target], name="diagnosis")  # "malignant" / "benign"
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return clf, X, y


METHODS = {"kernel_shap": {"n_samples": 128}, "sampling_shapley": {"n_permutations": 4}, "lime": {"n_samples": 200},
           "occlusion": {}}


@pytest.mark.parametrize("method", list(METHODS))
def test_a_dataframe_gives_its_names_and_the_pipeline_sees_a_dataframe(cancer, method):
    clf, X, _ = cancer
    options = dict(METHODS[method])
    if "shap" in method:
        options["background"] = X.iloc[:20]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's feature-name warnings (and any other) fail the test
        exp = lumos.explain(clf, X.iloc[:3], method=method, target="malignant", **options)
    assert exp.feature_names == list(X.columns)
    assert list(exp.target) == [list(clf.classes_).index("malignant")] * 3
    assert exp.meta["class_names"] == list(clf.classes_)
    np.testing.assert_allclose(exp.prediction, clf.predict_proba(X.iloc[:3]))


def test_the_model_is_called_with_a_dataframe_of_the_same_columns(cancer):
    clf, X, _ = cancer
    seen = []

    class Spy:
        feature_names_in_ = clf.feature_names_in_
        classes_ = clf.classes_

        def fit(self):  # a scikit-learn style estimator
            return self

        def predict_proba(self, table):
            seen.append(table)
            return clf.predict_proba(table)

    lumos.explain(Spy(), X.iloc[:2], method="occlusion")
    assert seen and all(isinstance(t, pd.DataFrame) and list(t.columns) == list(X.columns) for t in seen)


def test_global_method_names_and_bound_predict_proba(cancer):
    clf, X, y = cancer
    labels = (y.iloc[:60] == clf.classes_[1]).astype(int).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pfi = lumos.PermutationImportance(clf, n_repeats=2).explain(X.iloc[:60], labels)
        ks = lumos.KernelShap(clf.predict_proba, n_samples=64).explain(X.iloc[:2], background=X.iloc[:10].to_numpy())
    assert pfi.feature_names == list(X.columns)
    assert ks.params["scores"] == "Pipeline.predict_proba" and ks.feature_names == list(X.columns)


def test_class_names_as_targets(cancer):
    clf, X, _ = cancer
    from lumos.models.reference import MLP

    net = MLP(30, 2, hidden=(8,)).eval()
    x = X.iloc[:4].to_numpy(np.float32)
    by_name = lumos.explain(net, x, method="saliency", target="malignant", class_names=["malignant", "benign"])
    by_index = lumos.explain(net, x, method="saliency", target=0)
    np.testing.assert_array_equal(by_name.values, by_index.values)
    mixed = lumos.explain(net, x, method="gradient_x_input", target=["benign", "malignant", "benign", "benign"],
                          class_names=["malignant", "benign"])
    assert list(mixed.target) == [1, 0, 1, 1]
    with pytest.raises(ValueError, match=r"not a class name \(did you mean 'malignant'\?\)"):
        lumos.explain(clf, X.iloc[:2], method="occlusion", target="malignat")
    with pytest.raises(TypeError, match="no class names"):
        lumos.explain(net, x, method="saliency", target="malignant")


def test_plot_of_a_row_shows_values_and_how_many_are_shown(cancer, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    clf, X, _ = cancer
    row = X.iloc[[0]]
    exp = lumos.explain(clf, row, method="kernel_shap", background=X.iloc[:20], n_samples=256, target="malignant")
    fig = exp.plot(show=False)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 20
    assert f"worst perimeter = {row['worst perimeter'].iloc[0]:.3g}" in labels  # 184.6 -> '185'
    assert all(" = " in label for label in labels)
    assert "20 of 30 shown" in ax.get_xlabel()
    assert "malignant" in ax.get_title()
    path = tmp_path / "row.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
