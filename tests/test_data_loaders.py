"""Data loaders: UCR/UEA formats, EEG epochs, tables, synthetic ground-truth sets."""
from __future__ import annotations

import numpy as np
import pytest

from lumos import data
from tests.conftest import shared_data


def test_ucr_tsv_roundtrip(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    labels = ["-1", "1", "1", "-1"]
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"Toy_{split}.tsv").write_text("\n".join(f"{l}\t" + "\t".join(map(str, r)) for l, r in zip(labels, X)))
    ds = data.load_ucr(tmp_path)
    assert ds.name == "Toy" and ds.layout == "timeseries"
    assert ds.X_train.shape == (4, 1, 3) and ds.X_train.dtype == np.float32
    np.testing.assert_array_equal(ds.X_train[:, 0], X)
    assert ds.class_names == ["-1", "1"]  # numeric sort
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0])


def test_ts_multivariate_with_missing_and_unequal_length(tmp_path):
    text = """# comment
@problemName toy
@univariate false
@classLabel true a b
@data
1,2,3:4,5,6:a
7,?,9:10,11:b
"""
    (tmp_path / "Toy_TRAIN.ts").write_text(text)
    (tmp_path / "Toy_TEST.ts").write_text(text)
    ds = data.load_ucr(tmp_path / "Toy_TRAIN.ts")
    assert ds.X_train.shape == (2, 2, 3)
    np.testing.assert_array_equal(ds.X_train[0], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(ds.X_train[1, 0, 1]) and np.isnan(ds.X_train[1, 1, 2])  # '?' and padding
    assert ds.class_names == ["a", "b"] and ds.y_train.tolist() == [0, 1]


def test_arff_univariate_and_relational(tmp_path):
    uni = "@relation t\n@attribute t1 numeric\n@attribute t2 numeric\n@attribute target {x,y}\n@data\n1,2,x\n3,4,y\n"
    X, y = data.read_arff(_write(tmp_path, "u.arff", uni))
    np.testing.assert_array_equal(X[:, 0], [[1, 2], [3, 4]])
    assert y.tolist() == ["x", "y"]
    rel = ("@relation t\n@attribute r relational\n@attribute t1 numeric\n@end r\n@attribute c {x,y}\n@data\n"
           "'1,2\\n3,4',x\n\"5,6\\n7,8\",y\n")
    X, y = data.read_arff(_write(tmp_path, "m.arff", rel))
    assert X.shape == (2, 2, 2)
    np.testing.assert_array_equal(X[1], [[5, 6], [7, 8]])


def _write(folder, name, text):
    p = folder / name
    p.write_text(text)
    return p


def test_bad_formats_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown time-series format"):
        data.read_series(_write(tmp_path, "a.json", "{}"))
    with pytest.raises(ValueError, match="no @data"):
        data.read_ts(_write(tmp_path, "a.ts", "@problemName x\n"))
    with pytest.raises(ValueError, match="a.tsv:1"):
        data.read_ucr_tsv(_write(tmp_path, "a.tsv", "1\tfoo\t2\n"))
    with pytest.raises(FileNotFoundError, match="_TEST"):
        data.load_ucr(_write(tmp_path, "B_TRAIN.tsv", "1\t2\t3\n"))


def test_epochs_npz_split_and_times(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3, 20)).astype(np.float32), np.arange(40) % 2
    p = tmp_path / "ep.npz"
    np.savez(p, X=X, y=y, ch_names=np.array(["Cz", "Pz", "Oz"]), sfreq=100.0)
    ds = data.load_epochs_npz(p, test_fraction=0.25, seed=0)
    assert len(ds.X_train) == 30 and len(ds.X_test) == 10
    assert ds.feature_names == ["Cz", "Pz", "Oz"] and ds.sfreq == 100.0
    np.testing.assert_allclose(ds.times, np.arange(20) / 100.0)
    assert np.bincount(ds.y_test).tolist() == [5, 5]  # stratified
    np.savez(p, Z=X)
    with pytest.raises(ValueError, match="neither"):
        data.load_epochs_npz(p)


def test_mne_epochs_when_installed():
    mne = pytest.importorskip("mne", reason="mne is not installed")
    info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    events = np.array([[i * 50, 0, 1 + i % 2] for i in range(20)])
    epochs = mne.EpochsArray(np.ones((20, 2, 30)) * 1e-6, info, events, event_id={"std": 1, "odd": 2}, verbose=False)
    ds = data.from_mne(epochs)
    assert ds.class_names == ["std", "odd"] and ds.X_train.shape[1:] == (2, 30)
    np.testing.assert_allclose(ds.X_train, 1.0, rtol=1e-5)  # volts -> µV


def test_csv_and_dataframe(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("age,bp,label\n" + "\n".join(f"{i},{100 + i},{'yes' if i % 2 else 'no'}" for i in range(20)))
    ds = data.load_csv(p, target="label", standardize=True)
    assert ds.feature_names == ["age", "bp"] and ds.class_names == ["no", "yes"]
    np.testing.assert_allclose(ds.X_train.mean(0), 0, atol=1e-5)  # training statistics
    np.testing.assert_allclose(ds.X_test * ds.extra["std"] + ds.extra["mean"],
                               ds.X_test * ds.extra["std"] + ds.extra["mean"])
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "colour": ["r", "g", "r", "g"], "y": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match="non-numeric columns"):
        data.from_dataframe(df, "y")
    ds = data.from_dataframe(df, "y", categorical="onehot", standardize=False, test_fraction=0.5)
    assert ds.feature_names == ["a", "colour=g", "colour=r"]
    with pytest.raises(ValueError, match="target column"):
        data.from_dataframe(df, "nope")


def test_bump_series_mask_covers_the_bump():
    ds = data.make_bump_series(n_samples=60, length=64, n_channels=2, width=3.0, noise=0.0, seed=1)
    X = np.concatenate([ds.X_train, ds.X_test])
    m = np.concatenate([ds.mask_train, ds.mask_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    assert not m[y == 0].any() and np.all(X[y == 0] == 0)
    for xi, mi in zip(X[y == 1], m[y == 1]):
        assert mi.sum() == 13  # |t - c| <= 2 * width
        assert xi[mi].sum() / xi.sum() > 0.95  # the mask holds 95% of the bump's area
    assert data.make_bump_series(seed=3).X_train.tobytes() == data.make_bump_series(seed=3).X_train.tobytes()


def test_clever_hans_watermark_only_on_shortcut_class():
    ds = data.make_clever_hans_images(n_samples=200, size=16, shortcut_class=1, test_watermark_rate=0.0, seed=0)
    assert ds.mask_train[ds.y_train == 0].sum() == 0
    assert (ds.mask_train[ds.y_train == 1].reshape(-1, 256).sum(1) == 16).all()  # 4x4 tag on every one
    assert ds.mask_test.sum() == 0  # test rate 0: no watermark
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1
    tag = ds.X_train[ds.y_train == 1][0, 0, 11:15, 11:15]
    np.testing.assert_array_equal(tag > 0.5, data.synthetic.watermark_pattern(4) > 0.5)
    X, mask = data.add_watermark(np.zeros((3, 1, 10, 10)), where=[1], size=3)
    assert mask[1].sum() == 9 and mask[[0, 2]].sum() == 0


def test_erp_deflection_at_latency_on_chosen_channels():
    ds = data.make_erp(n_trials=400, latency=0.3, erp_channels=("Pz",), amplitude=5.0, noise=1.0, seed=0)
    diff = ds.X_train[ds.y_train == 1].mean(0) - ds.X_train[ds.y_train == 0].mean(0)
    pz = ds.feature_names.index("Pz")
    assert abs(ds.times[np.argmax(diff[pz])] - 0.3) <= 0.02
    assert diff[pz].max() > 3 * np.abs(np.delete(diff, pz, axis=0)).max() / 2
    m = ds.mask_train[ds.y_train == 1][0]
    assert m[pz].any() and not np.delete(m, pz, axis=0).any()
    with pytest.raises(ValueError, match="not in ch_names"):
        data.make_erp(erp_channels=("T7",))


def test_real_archives_when_present():
    shared_data("p300_bnci2015003.npz")
    ds = data.load_p300()
    assert ds.X_train.shape[1:] == (8, 231) and ds.sfreq == 256.0 and ds.feature_names[3] == "Pz"
    shared_data("ecg200.npz")
    assert data.load_ecg200().X_train.shape[1:] == (1, 96)
