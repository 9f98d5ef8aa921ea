"""ONNX models (``pip install lumos-xai[onnx]``): a ``.onnx`` file, an ``onnx.ModelProto``
or an ``onnxruntime.InferenceSession``.

- Methods that need a torch module (gradients, hooks: saliency, IG, LRP, Grad-CAM...)
  run on the graph converted by ``onnx2torch`` (:func:`to_torch`); its layers are real
  ``torch.nn`` modules, so the hook-based methods work too.
- Model-agnostic methods (occlusion, LIME, the Shapley family, permutation importance)
  run the file itself on ``onnxruntime`` (:class:`OnnxScores`): the scores are those the
  deployed model gives.

Reading an ONNX file runs no code from it (a protobuf of operators and weights).
onnx2torch imports torchvision (for its NonMaxSuppression converter) when it is imported;
without torchvision, :func:`to_torch` says so and what still works.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["OnnxModel", "OnnxScores", "load_proto", "onnx_model", "to_torch"]

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_proto(model):
    """``model`` (a path, bytes or an ``onnx.ModelProto``) as an ``onnx.ModelProto``."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"ONNX models need the onnx package ({err}); pip install lumos-xai[onnx]") from None
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        return onnx.load(path)
    except Exception as err:  # noqa: BLE001 - a file onnx cannot parse is a bad model file
        raise ValueError(f"cannot read {path} as an ONNX model ({_first_line(err)})") from None


class OnnxScores:
    """An ONNX model on onnxruntime as a ``numpy -> scores`` callable (its first output).
    Inputs are cast to the dtype of the model's first input."""

    lumos_needs_torch = ("this ONNX model runs on onnxruntime; the gradient methods convert it with onnx2torch "
                         "(lumos does so for them when onnx2torch imports)")

    def __init__(self, model):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"model-agnostic methods on an ONNX model need onnxruntime ({err}); "
                              "pip install lumos-xai[onnx]") from None
        if type(model).__name__ == "InferenceSession":
            self.session = model
        else:
            proto = load_proto(model)
            options = ort.SessionOptions()
            import torch

            options.intra_op_num_threads = torch.get_num_threads()  # the threads torch was told to use
            self.session = ort.InferenceSession(proto.SerializeToString(), options,
                                                providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"the ONNX model takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                             "lumos explains models with one input")
        self.input_name = inputs[0].name
        self.dtype = _ORT_TYPES.get(inputs[0].type, np.float32)
        self.__qualname__ = "OnnxScores"

    def __call__(self, x):
        arr = np.ascontiguousarray(np.asarray(x), dtype=self.dtype)
        return self.session.run(None, {self.input_name: arr})[0]

    def __repr__(self) -> str:
        return f"OnnxScores({self.input_name!r})"


def to_torch(model):
    """The ONNX model converted to a ``torch.nn.Module`` by ``onnx2torch`` (eval mode)."""
    proto = load_proto(model)
    try:
        from onnx2torch import convert
    except ImportError as err:
        hint = (" (onnx2torch imports torchvision for its NonMaxSuppression converter: pip install torchvision)"
                if "torchvision" in str(err) else "; pip install lumos-xai[onnx]")
        raise ImportError(f"gradient and hook-based methods on an ONNX model need onnx2torch, which cannot be "
                          f"imported: {_first_line(err)}{hint}; the model-agnostic methods (occlusion, lime, "
                          "kernel_shap, sampling_shapley) run the ONNX file on onnxruntime without it") from None
    try:
        module = convert(proto)
    except Exception as err:  # noqa: BLE001 - an operator onnx2torch does not know
        raise ValueError(f"onnx2torch cannot convert this ONNX model ({_first_line(err)}); the model-agnostic "
                         "methods (occlusion, lime, kernel_shap) run it on onnxruntime") from None
    return module.eval()


class OnnxModel:
    """An ONNX model read once, run both ways: :meth:`lumos_torch_module` (onnx2torch,
    converted once) for methods that need a torch module, :meth:`runtime` (onnxruntime)
    for the others. ``lumos.explain(OnnxModel("model.onnx"), x, ...)`` or the path itself."""

    def __init__(self, model):
        self.proto = load_proto(model)
        self._torch = self._runtime = None

    def lumos_torch_module(self):
        if self._torch is None:
            self._torch = to_torch(self.proto)
        return self._torch

    def runtime(self) -> OnnxScores:
        if self._runtime is None:
            self._runtime = OnnxScores(self.proto)
        return self._runtime

    def __repr__(self) -> str:
        return f"OnnxModel({self.proto.graph.name!r})"


def onnx_model(model, *, torch_module: bool = False):
    """``model`` as lumos runs it: converted to torch (``torch_module``) or on onnxruntime."""
    if isinstance(model, OnnxModel):
        return model.lumos_torch_module() if torch_module else model.runtime()
    if torch_module:
        if type(model).__name__ == "InferenceSession":
            raise TypeError("an onnxruntime.InferenceSession cannot be converted to torch: pass the .onnx file or "
                            "its onnx.ModelProto for gradient methods")
        return to_torch(model)
    return OnnxScores(model)
