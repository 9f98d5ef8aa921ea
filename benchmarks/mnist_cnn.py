"""The MNIST CNN and test images shared by the metrics benchmark and the Samek ordering
script: a LeNet-style 2-D CNN (conv5x5 16 - ReLU - maxpool - conv5x5 32 - ReLU - maxpool -
dense 64 - ReLU - dense 10, as Samek et al.'s MNIST network: conv, ReLU, pooling and dense
layers) trained with Adam for 3 epochs on the stratified 10k training subset (seed 0),
cached in the temp folder (never in the repo). (lumos's GAP ``CNN2d`` reached only ~0.8
test accuracy with this budget.)"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from lumos.data import find_data_dir
from lumos.models.train import accuracy, fit

EPOCHS, SEED = 3, 0


def load_mnist(n_test: int = 1000):
    """``(X_train, y_train, X_test, y_test)``: the 10k training subset and the first
    ``n_test`` images of the stratified test subset, as (N, 1, 28, 28) floats in [0, 1]."""
    with np.load(find_data_dir("mnist.npz") / "mnist.npz") as d:
        tr, te = d["subset_train_idx"], d["subset_test_idx"][:n_test]
        X_train = (d["X_train"][tr, None] / 255.0).astype(np.float32)
        X_test = (d["X_test"][te, None] / 255.0).astype(np.float32)
        return X_train, d["y_train"][tr].astype(np.int64), X_test, d["y_test"][te].astype(np.int64)


def lenet() -> torch.nn.Sequential:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def vgg() -> torch.nn.Sequential:
    """A deeper VGG-style CNN (six 3x3 convolutions in three blocks, max pooling, two dense
    layers): the depth at which gradients of ReLU networks start to shatter (Balduzzi et
    al. 2017), as in the ImageNet networks of Samek et al."""
    nn = torch.nn

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), nn.Flatten(),
                         nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, 10))


NETWORKS = {"lenet": (lenet, "lenet-16-32-64"), "vgg": (vgg, "vgg-16-32-64-128")}


def trained_cnn(verbose: bool = True, network: str = "lenet") -> torch.nn.Module:
    X_train, y_train, X_test, y_test = load_mnist()
    build, tag = NETWORKS[network]
    key = hashlib.sha1(f"{tag}-{EPOCHS}-{SEED}-{torch.__version__}".encode()).hexdigest()[:10]
    cache = Path(os.environ.get("LUMOS_CACHE", tempfile.gettempdir())) / f"lumos-mnist-cnn-{key}.pt"
    torch.manual_seed(SEED)
    model = build()
    if cache.exists():
        model.load_state_dict(torch.load(cache))
        model.eval()
    else:
        fit(model, X_train, y_train, epochs=EPOCHS, lr=1e-3, seed=SEED)
        torch.save(model.state_dict(), cache)
    if verbose:
        print(f"MNIST CNN test accuracy on {len(X_test)} images: {accuracy(model, X_test, y_test):.3f} ({cache})")
    return model
