"""``lumos.explain``: one call for any registered method."""
from __future__ import annotations

import inspect

from lumos.core import registry
from lumos.core.explanation import Explanation


def _init_params(cls) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "model", "kwargs")}
    return names


def explain(model, inputs, method: str = "integrated_gradients", target=None, **options) -> Explanation:
    """Explain ``inputs`` with the method registered as ``method``.

    Options that the method's constructor accepts configure it; the rest are passed to
    ``explain()``. Example: ``lumos.explain(model, x, "ig", n_steps=100, baseline=0.5)``.
    """
    import lumos.methods  # noqa: F401  (registers the families)

    cls = registry.get(method)
    accepted = _init_params(cls)
    config = {k: v for k, v in options.items() if k in accepted}
    call = {k: v for k, v in options.items() if k not in accepted}
    return cls(model, **config).explain(inputs, target=target, **call)


def list_methods() -> dict[str, type]:
    """Registered methods: name -> explainer class."""
    import lumos.methods  # noqa: F401

    return registry.available()
