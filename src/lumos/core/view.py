"""A private view of the user's model for one explanation call.

Explaining needs a model in eval mode, without parameter gradients, with hooks, rule
swaps, in-place activations turned off and batch norms folded (LRP). Doing that to the
user's own module object is what made explanations unsafe: two threads explaining one
model removed each other's hooks, a training loop in another thread ran in eval mode,
folded weights were written into the user's parameters.

:func:`model_view` therefore hands each call its own *view*: a structural copy of the
module tree whose modules are new objects (own ``training`` flag, own hook dictionaries,
own ``inplace`` flags) and whose parameters are detached tensors **sharing the user's
storage** (no copy of the weights, ``requires_grad=False``). Whatever one call does to its
view (``eval()``, hooks, assigning folded weights) is invisible to the user and to every
other call; the user's module tree, flags, hooks and parameter storage are never written.

Modules that cannot be viewed (TorchScript, modules whose structure cannot be copied)
are explained in place under :func:`lumos.core.guard.model_guard`,
serialised on a per-model lock so that concurrent calls cannot corrupt each other.
With ``device=``, the view's parameters and buffers are copies on that device and the
user's model stays where it is.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Iterator

import torch
from torch import nn

from lumos.core.guard import _STOCHASTIC, model_guard

_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises in-place explanations of ``model`` (one per model)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def _shadow_tensor(t: torch.Tensor, device) -> torch.Tensor:
    t = t.detach()
    return t if device is None or t.device == device else t.to(device)


def _copy_module(module: nn.Module, memo: dict, device) -> nn.Module:
    if id(module) in memo:
        return memo[id(module)]
    new = object.__new__(module.__class__)  # not cls.__new__: torch.fx's GraphModule makes a new class there
    memo[id(module)] = new
    state = dict(module.__dict__)
    for key, value in state.items():  # hook dictionaries and other private containers: the view's own
        if key[0] == "_" and type(value) in _CONTAINERS:
            state[key] = value.copy()
    params = state["_parameters"] = type(module._parameters)()
    for name, p in module._parameters.items():
        if p is None:
            params[name] = None
        elif id(p) in memo:
            params[name] = memo[id(p)]
        else:
            params[name] = memo[id(p)] = nn.Parameter(_shadow_tensor(p, device), requires_grad=False)
    if device is not None:
        state["_buffers"] = type(module._buffers)(
            (name, None if b is None else memo.setdefault(id(b), _shadow_tensor(b, device)))
            for name, b in module._buffers.items())
    state["_modules"] = type(module._modules)(
        (name, None if m is None else _copy_module(m, memo, device)) for name, m in module._modules.items())
    state["training"] = False  # the view is in eval mode
    if type(state.get("inplace")) is bool:
        state["inplace"] = False  # in-place activations overwrite what hooks must keep
    new.__dict__.update(state)
    return new


_CONTAINERS = (dict, OrderedDict, set, list)


def make_view(model: nn.Module, device: torch.device | None = None) -> nn.Module:
    """A structural copy of ``model`` in eval mode with frozen parameters sharing the
    user's storage (on ``device``: copies there), fresh hook dictionaries of its own, and
    in-place activations turned off (hooks must see the values they are given)."""
    return _copy_module(model, {}, device)


def inspect_model(model: nn.Module) -> tuple[bool, list[str], bool]:
    """One pass over the modules: ``(viewable, dropout/batch-norm layers in training mode,
    parameters or buffers on the meta device)``."""
    viewable, busy, meta = True, [], False
    for name, m in model.named_modules():
        if isinstance(m, torch.jit.ScriptModule):
            viewable = False
            continue
        if m.training and isinstance(m, _STOCHASTIC):
            busy.append(name or type(m).__name__)
        for t in (*m._parameters.values(), *m._buffers.values()):
            if t is not None and t.is_meta:
                meta = True
    return viewable, busy, meta


def _check_device(device) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device ({err}); use 'cpu', 'cuda' or 'cuda:1'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but torch sees no CUDA GPU; use device=None or 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for but MPS is not available; use device=None or 'cpu'")
    return dev


def _warn_training(busy: list[str]) -> None:
    if busy:
        warnings.warn(
            f"the model has dropout/batch-norm layers in training mode ({', '.join(busy[:4])}"
            f"{'...' if len(busy) > 4 else ''}); lumos explains it in eval mode (your model is not changed)",
            stacklevel=4,
        )


@contextlib.contextmanager
def model_view(model, device=None, warn_training: bool = True) -> Iterator:
    """The model one explanation call works on (see the module docstring).

    Yields a private view for ``nn.Module`` objects, the model itself (guarded and locked) for
    TorchScript and other modules that cannot be viewed, and any non-torch callable as it is.
    """
    dev = _check_device(device)
    if not isinstance(model, nn.Module):
        if dev is not None and dev.type != "cpu":
            raise ValueError(f"device={device!r} applies to torch models; this model is a {type(model).__name__}")
        yield model
        return
    can_view, busy, meta = inspect_model(model)
    if meta:
        raise ValueError("the model's parameters are on the meta device (shapes without values): load its weights "
                         "first, e.g. model.to_empty(device='cpu') followed by model.load_state_dict(...)")
    if warn_training:
        _warn_training(busy)
    if can_view:
        try:
            view = make_view(model, dev)
        except Exception as err:  # noqa: BLE001  an exotic module: fall back to the guarded model
            warnings.warn(f"lumos could not make a private view of {type(model).__name__} ({err}); explaining it "
                          "in place, one call at a time", stacklevel=3)
        else:
            yield view
            return
    with model_lock(model), model_guard(model, warn_training=False):
        if dev is not None:
            places = {t.device for t in list(model.parameters()) + list(model.buffers())}
            if places and places != {dev}:
                raise ValueError(f"device={device!r}: this {type(model).__name__} cannot be copied to another "
                                 f"device by lumos; move it there yourself (it is on {sorted(map(str, places))})")
        yield model
