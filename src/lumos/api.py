"""``lumos.explain``: one call for any registered method."""
from __future__ import annotations

from lumos.core import registry
from lumos.core.explanation import Explanation


def explain(model, inputs, method: str = "integrated_gradients", target=None, **options) -> Explanation:
    """Explain ``inputs`` with the method registered as ``method``.

    Options that the method's constructor accepts configure it; the rest are passed to
    ``explain()``. Example: ``lumos.explain(model, x, "ig", n_steps=100, baseline=0.5)``.
    """
    import lumos.methods  # noqa: F401  (registers the families)

    cls = registry.get(method)
    config, call = registry.split_options(cls, options)
    return cls(model, **config).explain(inputs, target=target, **call)


def list_methods() -> dict[str, type]:
    """Registered methods: name -> explainer class."""
    import lumos.methods  # noqa: F401

    return registry.available()
