"""Keras 3 models, explained as they are (``pip install lumos-xai[keras]``).

With the torch backend (``KERAS_BACKEND=torch``, set before keras is imported) a Keras 3
model computes with torch tensors, so the gradient methods run on it: lumos calls it
through :func:`keras_model`, a torch module that evaluates the model with
``stateless_call`` on detached copies of its variables (``training=False``). The input
gradient flows, the user's variables receive no gradient and are never written.

Keras layers are not called through ``torch.nn.Module.__call__``, so forward hooks never
fire on them: the hook-based methods (LRP, the CAM family, DeepLIFT, guided
backpropagation) are refused up front, as for TorchScript, with the methods that do run.

With another backend (TensorFlow, JAX) the model runs through ``predict`` on numpy
batches: the model-agnostic methods (occlusion, LIME, the Shapley family) work, the
gradient methods ask for the torch backend.

Inputs are given as the model takes them (Keras convolutions are channels-last:
``(N, T, C)`` series and ``(N, H, W, C)`` images unless the model says otherwise).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["KerasModel", "KerasPredict", "keras_model", "load"]

BACKEND_HINT = "set KERAS_BACKEND=torch before keras is imported (and load the model again) for gradient methods"


def _backend() -> str:
    import keras

    return keras.backend.backend()


class KerasModel(torch.nn.Module):
    """A Keras 3 model (torch backend) as a plain torch module without hooks on layers.

    ``forward(x)`` is ``model.stateless_call(trainable, non_trainable, x, training=False)``
    with the variables' values detached: gradients reach ``x`` only.
    """

    lumos_hook_free = "a Keras model"

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "keras_model", model)  # not a registered submodule: lumos never walks or copies it

    def forward(self, x):
        model = self.keras_model
        trainable = [v.value.detach() for v in model.trainable_variables]
        frozen = [v.value.detach() for v in model.non_trainable_variables]
        out, _ = model.stateless_call(trainable, frozen, x, training=False)
        return out

    def train(self, mode: bool = True):
        self.training = mode  # the Keras model's own mode is never changed: forward passes training=False
        return self

    def __repr__(self) -> str:
        return f"KerasModel({type(self.keras_model).__name__} {getattr(self.keras_model, 'name', '')!r})"


class KerasPredict:
    """A Keras model of a non-torch backend as a ``numpy -> scores`` callable (``predict``)."""

    lumos_needs_torch = BACKEND_HINT

    def __init__(self, model):
        self.keras_model = model
        self.__qualname__ = f"{type(model).__name__}.predict"

    def __call__(self, x):
        return np.asarray(self.keras_model.predict(np.asarray(x), verbose=0))

    def __repr__(self) -> str:
        return f"KerasPredict({type(self.keras_model).__name__})"


def keras_model(model):
    """``model`` as lumos runs it: a :class:`KerasModel` under the torch backend, else a
    :class:`KerasPredict` (model-agnostic methods only)."""
    if isinstance(model, (KerasModel, KerasPredict)):
        return model
    if _backend() == "torch":
        return KerasModel(model)
    return KerasPredict(model)


def load(path, *, trust_model: bool = False):
    """A ``.keras`` (or ``.h5``) file with ``keras.saving.load_model``. Deserialising a Keras
    file imports and builds the classes its configuration names, so it needs
    ``trust_model=True`` (on the command line ``--trust-model``); ``safe_mode`` stays on
    (no Python lambdas are read back)."""
    if not trust_model:
        raise ValueError(f"{path} is a Keras file: loading it builds the Python classes its configuration names; "
                         "pass --trust-model (trust_model=True) if you trust the file, or export the model to ONNX")
    try:
        import keras
    except ImportError as err:
        raise ImportError(f"reading {path} needs keras 3 ({err}); pip install lumos-xai[keras]") from None
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - a file Keras cannot read is a bad model file
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read {path} as a Keras model ({text})") from None
    return keras_model(model)
