"""models.cache: reproducible training, weights cached and reused, any change retrains."""
from __future__ import annotations

import numpy as np
import torch

from lumos.models.cache import cache_dir, cached_fit, train_reference
from lumos.models.reference import MLP


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LUMOS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "lumos"


def test_fit_is_reproducible_and_cached(tmp_path):
    X, y = _data()
    a = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=3, directory=tmp_path, progress=False)
    torch.manual_seed(123)  # the global RNG state must not matter
    b = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=3, directory=tmp_path, cache=False, progress=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    assert not a.lumos_cache["hit"] and len(list(tmp_path.glob("*.pt"))) == 1
    c = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=3, directory=tmp_path, progress=False)
    assert c.lumos_cache["hit"] and not c.training
    for p, q in zip(a.state_dict().values(), c.state_dict().values()):
        assert torch.equal(p, q)
    d = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=4, directory=tmp_path, progress=False)  # new config
    e = cached_fit(MLP(4, 2, hidden=(8,)), X, 1 - y, epochs=3, directory=tmp_path, progress=False)  # new data
    assert not d.lumos_cache["hit"] and not e.lumos_cache["hit"] and len(list(tmp_path.glob("*.pt"))) == 3


def test_corrupt_cache_entry_retrains(tmp_path):
    X, y = _data()
    a = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=2, directory=tmp_path, progress=False)
    path = a.lumos_cache["path"]
    open(path, "wb").write(b"garbage")
    b = cached_fit(MLP(4, 2, hidden=(8,)), X, y, epochs=2, directory=tmp_path, progress=False)
    assert not b.lumos_cache["hit"]


def test_train_reference_picks_model_by_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path))
    from lumos.data import load_breast_cancer

    model, acc = train_reference(load_breast_cancer(), epochs=10, progress=False)
    assert isinstance(model, MLP) and acc > 0.9
