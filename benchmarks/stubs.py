"""A stand-in ``torchvision`` for the benchmarks only.

zennit (ResNet canonizers) and pytorch-grad-cam (box IoU, image transforms) import
torchvision at module level for parts the benchmarks never use; torchvision has no CPU
build here and lumos does not depend on it. The stub provides those modules; any name
used for real fails loudly. All peers share this one stub, so the benchmarks can run in
one process in any order.
"""
from __future__ import annotations

import contextlib
import sys
import types

MODULES = ("torchvision", "torchvision.ops", "torchvision.transforms", "torchvision.transforms.functional",
           "torchvision.models", "torchvision.models.resnet")


def _missing(module: str, attr: str):
    if attr.startswith("__"):
        raise AttributeError(attr)

    def fail(*args, **kwargs):
        raise RuntimeError(f"torchvision stub: {module}.{attr} is not available in the benchmarks")

    return fail


def stub_torchvision() -> None:
    """Install the stub unless a real torchvision is importable."""
    if "torchvision" in sys.modules and getattr(sys.modules["torchvision"], "__lumos_stub__", False):
        return
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    from torch import nn

    mods = {}
    for full in MODULES:
        mod = types.ModuleType(full)
        mod.__path__ = []
        mod.__lumos_stub__ = True
        mod.__getattr__ = lambda attr, _full=full: _missing(_full, attr)
        mods[full] = mod
    for full, mod in mods.items():
        if "." in full:
            parent, child = full.rsplit(".", 1)
            setattr(mods[parent], child, mod)
    resnet = mods["torchvision.models.resnet"]  # isinstance checks in zennit need real classes
    resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
    sys.modules.update(mods)


@contextlib.contextmanager
def torchvision_stub():
    """The stub for the imports inside the block only: the peers imported there keep what they
    bound, and afterwards ``torchvision`` is gone from ``sys.modules`` again, so that a later
    ``importlib.util.find_spec("torchvision")`` (transformers, lightning) finds no torchvision
    instead of raising on a stub without a spec. Tests use this; a benchmark process keeps the stub."""
    before = {name: sys.modules.get(name) for name in MODULES}
    stub_torchvision()
    try:
        yield
    finally:
        for name, module in before.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
