"""Every registered method x every kind of input a user may hand it (#14 item 8).

Each case is *valid* (it must give a finite explanation shaped like the input, or — for a
method that cannot take it, e.g. gradients of uint8 pixels — a clear lumos error) or
*invalid* (it must give a clear lumos error). A clear error is a ``ValueError`` or
``TypeError`` raised by lumos's own code (the innermost frame in ``lumos/``) whose message
does not leak internals (private names, "unexpected keyword argument", raw tensor-shape
messages). Anything else is *unclear*; an invalid case that returns is *silent*.
``test_fuzz_counts`` asserts 0 unclear and 0 silent and prints the counts.
"""
from __future__ import annotations

import os
import re
import traceback

import numpy as np
import pytest
import torch
from torch import nn

import lumos
from lumos.core import registry

LUMOS_SRC = os.path.dirname(lumos.__file__)
LEAKS = re.compile(r"unexpected keyword argument|_explain\(|has no attribute|mat1 and mat2|size mismatch|"
                   r"Expected .* got|object is not subscriptable|NoneType|index \d+ is out of bounds")

FAST = {"integrated_gradients": {"n_steps": 4}, "smoothgrad": {"n_samples": 3}, "lime": {"n_samples": 40},
        "kernel_shap": {"n_samples": 64}, "sampling_shapley": {"n_permutations": 4},
        "permutation_importance": {"n_repeats": 1}, "temporal_ig": {"n_steps": 4}, "rise": {"n_masks": 32},
        "tsr": {"base": "saliency"}}


class TupleOut(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), x.sum()


class DictOut(TupleOut):
    def forward(self, x):
        return {"logits": self.inner(x)}


class DictNoLogits(TupleOut):
    def forward(self, x):
        return {"h": self.inner(x)}


class ArgmaxOut(TupleOut):
    def forward(self, x):
        return self.inner(x).argmax(1)


class WrongRows(TupleOut):
    def forward(self, x):
        return self.inner(x)[:1]


class Raises(TupleOut):
    def forward(self, x):
        raise RuntimeError("the user's model failed")


def setup(name: str):
    """A model, inputs and options the method applies to (as conftest's setup_for_method)."""
    from lumos.models import CNN1d, MLP
    from lumos.models.attention_rnn import AttentionRNN

    torch.manual_seed(0)
    cls = registry.get(name)
    options = dict(FAST.get(name, {}))
    if cls.needs_attention:
        return AttentionRNN(2, 3, hidden=4), np.random.default_rng(1).normal(size=(6, 2, 16)).astype(np.float32), options
    if getattr(cls, "needs_transformer", False):  # a small lumos ViT on (N, 3, 8, 8) images
        from lumos.models.transformer import VisionTransformer

        images = np.random.default_rng(1).normal(size=(6, 3, 8, 8)).astype(np.float32)
        return VisionTransformer(image_size=8, patch=4, dim=8, depth=1, heads=2), images, options
    if cls.needs_layer:
        return CNN1d(2, 3, channels=(4, 4)), np.random.default_rng(1).normal(size=(6, 2, 16)).astype(np.float32), options
    if "tabular" not in cls.layouts:  # series methods; a GRU for those called on every prefix
        from lumos.models.reference import RecurrentClassifier

        series = np.random.default_rng(1).normal(size=(6, 2, 16)).astype(np.float32)
        prefixes = getattr(cls, "needs_prefixes", False)
        model = RecurrentClassifier(2, 3, hidden=4) if prefixes else CNN1d(2, 3, channels=(4, 4))
        if cls.needs_background:
            options["background"] = series[:3]
        return model, series, options
    x = np.random.default_rng(0).normal(size=(6, 12)).astype(np.float32)
    if cls.needs_background:
        options["background"] = x[:3]
        if name == "exact_shapley":
            options["groups"] = np.arange(12) // 3
    return MLP(12, 3, hidden=(8,)), x, options


def _bad_channels(x):
    return np.concatenate([x, x[:, :1]], axis=1)


# kind -> (valid?, transform(model, x, options) -> (model, inputs, target, options))
def _same(model, x, o):
    return model, x, None, o


KINDS = {
    # shapes
    "one sample without batch axis": (False, lambda m, x, o: (m, x[0], None, o)),
    "scalar": (False, lambda m, x, o: (m, np.float32(1.0), None, o)),
    "extra axis": (False, lambda m, x, o: (m, x[:, None], None, o)),
    "wrong channels / features": (False, lambda m, x, o: (m, _bad_channels(x), None, o)),
    "empty batch": (False, lambda m, x, o: (m, x[:0], None, o)),
    "batch of 1": (True, lambda m, x, o: (m, x[:1], None, o)),
    "ragged list": (False, lambda m, x, o: (m, [list(x[0].ravel()), list(x[1].ravel()[:-1])], None, o)),
    "python list": (True, lambda m, x, o: (m, x.tolist(), None, o)),
    # values and dtypes
    "NaN": (False, lambda m, x, o: (m, np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), None, o)),
    "+inf": (False, lambda m, x, o: (m, np.where(np.arange(x.size).reshape(x.shape) == 3, np.inf, x), None, o)),
    "float64": (True, lambda m, x, o: (m, x.astype(np.float64), None, o)),
    "float16": (True, lambda m, x, o: (m, x.astype(np.float16), None, o)),
    "uint8": (True, lambda m, x, o: (m, (np.abs(x) * 40).astype(np.uint8), None, o)),
    "int64": (True, lambda m, x, o: (m, (x * 3).astype(np.int64), None, o)),
    "bool": (True, lambda m, x, o: (m, x > 0, None, o)),
    "complex": (False, lambda m, x, o: (m, x.astype(np.complex64), None, o)),
    "object array": (False, lambda m, x, o: (m, np.array([object()] * len(x)), None, o)),
    "strings": (False, lambda m, x, o: (m, np.full(x.shape, "a"), None, o)),
    # tensors
    "tensor": (True, lambda m, x, o: (m, torch.as_tensor(x), None, o)),
    "tensor requiring grad": (True, lambda m, x, o: (m, torch.as_tensor(x).requires_grad_(True), None, o)),
    "non-contiguous tensor": (True, lambda m, x, o: (m, torch.as_tensor(np.ascontiguousarray(np.flip(x, -1))).flip(-1),
                                                     None, o)),
    "channels-last / transposed tensor": (True, lambda m, x, o: (m, torch.as_tensor(x.T.copy()).T, None, o)),
    "read-only memmap-like array": (True, lambda m, x, o: (m, np.lib.stride_tricks.as_strided(x, writeable=False),
                                                           None, o)),
    # targets
    "target out of range": (False, lambda m, x, o: (m, x, 3, o)),
    "target negative": (False, lambda m, x, o: (m, x, -1, o)),
    "target float": (False, lambda m, x, o: (m, x, 1.5, o)),
    "target whole float": (True, lambda m, x, o: (m, x, 1.0, o)),
    "target string": (False, lambda m, x, o: (m, x, "cat", o)),
    "targets wrong length": (False, lambda m, x, o: (m, x, np.zeros(len(x) + 1, dtype=int), o)),
    "targets 2-D": (False, lambda m, x, o: (m, x, np.zeros((len(x), 2), dtype=int), o)),
    "targets per row": (True, lambda m, x, o: (m, x, np.arange(len(x)) % 3, o)),
    "targets tensor": (True, lambda m, x, o: (m, x, torch.arange(len(x)) % 3, o)),
    "targets with None inside": (False, lambda m, x, o: (m, x, [0, None] + [0] * (len(x) - 2), o)),
    # options
    "misspelled option": (False, lambda m, x, o: (m, x, None, {**o, "n_sample": 3})),
    "unknown option": (False, lambda m, x, o: (m, x, None, {**o, "colour": "red"})),
    "missing layer": (False, lambda m, x, o: (m, x, None, {**o, "layer": "no_such_layer"})),
    # models
    "model returning a tuple": (True, lambda m, x, o: (TupleOut(m), x, None, o)),
    "model returning a dict with logits": (True, lambda m, x, o: (DictOut(m), x, None, o)),
    "model returning a dict without logits": (False, lambda m, x, o: (DictNoLogits(m), x, None, o)),
    "model returning an argmax": (False, lambda m, x, o: (ArgmaxOut(m), x, None, o)),
    "model returning too few rows": (False, lambda m, x, o: (WrongRows(m), x, None, o)),
    "model raising": (False, lambda m, x, o: (Raises(m), x, None, o)),
    "model in training mode": (True, lambda m, x, o: (m.train(), x, None, o)),
    "model in float64": (True, lambda m, x, o: (m.double(), x, None, o)),
    "numpy callable instead of a module": (True, lambda m, x, o: (
        (lambda z: m(torch.as_tensor(np.asarray(z, dtype=np.float32))).detach().numpy()), x, None, o)),
    "model is not callable": (False, lambda m, x, o: (42, x, None, o)),
    "model on the meta device": (False, lambda m, x, o: (m.to("meta"), x, None, o)),
    "inputs as a meta tensor": (False, lambda m, x, o: (m, torch.empty(x.shape, device="meta"), None, o)),
}

# kinds a method may refuse although they are valid input in general (with a clear error)
MAY_REFUSE = {"uint8", "int64", "bool", "numpy callable instead of a module", "model returning a dict with logits",
              "model returning a tuple", "float16", "batch of 1"}
# kinds that only apply to some methods
ONLY = {"missing layer": lambda cls: cls.needs_layer}
TARGET_KINDS = {k for k in KINDS if k.startswith("target")}


def classify(name: str, kind: str) -> tuple[str, str]:
    """``(outcome, detail)``: outcome is ``ok``, ``clear``, ``unclear`` or ``silent``."""
    import warnings

    valid, make = KINDS[kind]
    cls = registry.get(name)
    model, x, options = setup(name)
    if cls.needs_labels and kind in TARGET_KINDS:
        return "ok", "labels, not class targets"
    model, inputs, target, options = make(model, x, options)
    if cls.needs_labels and target is None and hasattr(inputs, "__len__"):
        target = np.arange(len(inputs)) % 3
    if kind == "model returning an argmax" and not cls.needs_gradients:
        valid = True  # a hard-label output (clf.predict) is a model-agnostic method's legitimate object
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exp = lumos.explain(model, inputs, name, target=target, **options)
    except (ValueError, TypeError) as err:
        frames = traceback.extract_tb(err.__traceback__)
        inner = frames[-1].filename if frames else ""
        message = str(err)
        own_words = message.split("the model could not process inputs")[0]  # the model's words are quoted
        if not inner.startswith(LUMOS_SRC) or LEAKS.search(own_words):
            return "unclear", f"{type(err).__name__} at {os.path.basename(inner)}: {message[:200]}"
        if valid and kind not in MAY_REFUSE:
            return "unclear", f"a valid input was refused: {message[:200]}"
        return "clear", message[:120]
    except Exception as err:  # noqa: BLE001
        return "unclear", f"{type(err).__name__}: {str(err)[:200]}"
    if not valid:
        return "silent", f"returned {exp!r}"
    if cls.scope == "local":
        n = len(inputs)
        if exp.values.shape[0] != n or not np.isfinite(exp.values.astype(np.float64)).all():
            return "silent", f"values of shape {exp.values.shape} with non-finite entries or wrong rows"
    return "ok", ""


def cases():
    import lumos.methods  # noqa: F401

    for name, cls in registry.available().items():
        for kind in KINDS:
            if kind in ONLY and not ONLY[kind](cls):
                continue
            yield name, kind


CASES = list(cases())
OUTCOMES: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_input(name, kind):
    outcome, detail = classify(name, kind)
    OUTCOMES[name, kind] = outcome
    assert outcome in ("ok", "clear"), f"{outcome}: {detail}"


def test_fuzz_counts(capsys):
    """Runs after the cases above (reusing their outcomes) and prints the counts."""
    counts = {"ok": 0, "clear": 0, "unclear": 0, "silent": 0}
    for case in CASES:
        counts[OUTCOMES[case] if case in OUTCOMES else classify(*case)[0]] += 1
    with capsys.disabled():
        print(f"\nfuzz: {len(CASES)} cases over {len({n for n, _ in CASES})} methods x {len(KINDS)} kinds: "
              f"{counts['ok']} explained, {counts['clear']} clear errors, {counts['unclear']} unclear, "
              f"{counts['silent']} silent")
    assert counts["unclear"] == 0 and counts["silent"] == 0
