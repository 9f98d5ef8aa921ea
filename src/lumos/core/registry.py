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
        hint = closest(key, list(_REGISTRY) + list(_ALIASES))
        raise ValueError(f"unknown method {name!r}{hint}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def available() -> dict[str, type]:
    """All registered methods, sorted by name."""
    return dict(sorted(_REGISTRY.items()))


def split_options(cls: type, options: dict) -> tuple[dict, dict]:
    """Split ``options`` into those ``cls``'s constructors accept (configuration) and the
    rest (passed to ``explain()``)."""
    accepted = {name for name, option in options_of(cls).items() if option.where == "config"}
    config = {k: v for k, v in options.items() if k in accepted}
    return config, {k: v for k, v in options.items() if k not in accepted}


class Option:
    """One public option of a method: its name, where it goes (``"config"``: the
    constructor; ``"call"``: ``explain()``) and its default (``Option.REQUIRED`` if none)."""

    REQUIRED = inspect.Parameter.empty
    __slots__ = ("name", "where", "default")

    def __init__(self, name: str, where: str, default):
        self.name, self.where, self.default = name, where, default

    def __repr__(self) -> str:
        d = "required" if self.default is Option.REQUIRED else repr(self.default)
        return f"Option({self.name!r}, {self.where}, default={d})"


_HIDDEN = {"self", "model", "inputs", "x", "target", "scores", "kwargs", "options", "state", "call"}


def _signature_options(fn, where: str) -> dict[str, Option]:
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in _HIDDEN:
            continue
        out[p.name] = Option(p.name, where, p.default)
    return out


def options_of(method) -> dict[str, Option]:
    """The public options of a method (a registered name or an explainer class):
    constructor options first (``where="config"``), then the options ``explain()`` takes
    (``where="call"``, declared by the class as ``call_options``)."""
    cls = get(method) if isinstance(method, str) else method
    found: dict[str, Option] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass) and klass is not object:
            found.update(_signature_options(vars(klass)["__init__"], "config"))
    declared = getattr(cls, "call_options", None)
    if declared is not None:
        for name, default in dict(declared).items():
            found.setdefault(name, Option(name, "call", default))
    else:  # classes not (yet) declaring call_options: read explain()/_explain()
        for klass in reversed(cls.__mro__):
            for attr in ("explain", "_explain"):
                fn = vars(klass).get(attr)
                if fn is not None:
                    for k, v in _signature_options(fn, "call").items():
                        found.setdefault(k, v)
    return found


def closest(name: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``; a name that is
    one word of several choices (``"shap"``: ``kernel_shap``, ``gradient_shap``...) gets up
    to three of them."""
    import difflib

    choices = list(choices)
    word = _key(str(name))
    having = sorted((c for c in choices if word and word != c and word in c.split("_")), key=len)[:3]
    if len(having) > 1:
        return f" (did you mean {', '.join(repr(c) for c in having[:-1])} or {having[-1]!r}?)"
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or having
    return f" (did you mean {match[0]!r}?)" if match else ""
