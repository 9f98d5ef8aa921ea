"""Name -> explainer class. Method families register themselves on import with
:func:`register`; :func:`get` looks a method up by name or alias."""
from __future__ import annotations

import inspect
from typing import Callable

_REGISTRY: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


def register(name: str, *aliases: str) -> Callable[[type], type]:
    """Class decorator: ``@register("integrated_gradients", "ig")``."""

    def deco(cls: type) -> type:
        key = _key(name)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"method name {name!r} is already registered to {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
        cls.name = key
        for alias in aliases:
            _ALIASES[_key(alias)] = key
        return cls

    return deco


def get(name: str) -> type:
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def available() -> dict[str, type]:
    """All registered methods, sorted by name."""
    return dict(sorted(_REGISTRY.items()))


def split_options(cls: type, options: dict) -> tuple[dict, dict]:
    """Split ``options`` into those ``cls``'s constructors accept (configuration) and the
    rest (passed to ``explain()``)."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "model", "kwargs")}
    config = {k: v for k, v in options.items() if k in accepted}
    return config, {k: v for k, v in options.items() if k not in accepted}
