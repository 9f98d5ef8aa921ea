"""Leave the user's model exactly as it was found.

:func:`model_guard` is entered by every explainer. Inside it the model is in eval mode
and its parameters do not require gradients (lumos only ever needs gradients with respect
to inputs or activations). On exit, also when an exception is raised, it restores each
module's training flag, each parameter's ``requires_grad``, each module's ``inplace``
flag, and removes every forward/backward hook that was added meanwhile.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)

_STOCHASTIC = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


def _hook_keys(module: torch.nn.Module) -> dict[str, set]:
    return {name: set(getattr(module, name, {}).keys()) for name in _HOOK_DICTS}


def training_layers(model: torch.nn.Module) -> list[str]:
    """Names of dropout and batch-norm modules that are in training mode."""
    return [name or type(m).__name__ for name, m in model.named_modules() if isinstance(m, _STOCHASTIC) and m.training]


@contextlib.contextmanager
def model_guard(model, warn_training: bool = True) -> Iterator[None]:
    """Put ``model`` in eval mode for the duration and restore it exactly afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    if warn_training:
        busy = training_layers(model)
        if busy:
            warnings.warn(
                f"the model has dropout/batch-norm layers in training mode ({', '.join(busy[:4])}"
                f"{'...' if len(busy) > 4 else ''}); lumos explains it in eval mode and restores "
                "training mode afterwards",
                stacklevel=3,
            )
    modules = list(model.modules())
    params = list(model.parameters())
    modes = [m.training for m in modules]
    grads = [p.requires_grad for p in params]
    hooks = [_hook_keys(m) for m in modules]
    inplace = [(m, m.inplace) for m in modules if isinstance(getattr(m, "inplace", None), bool)
               and not isinstance(m, torch.jit.ScriptModule)]  # TorchScript freezes `inplace` as a constant
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        for m, _ in inplace:  # in-place activations overwrite what hooks must keep
            m.inplace = False
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
        for p, g in zip(params, grads):
            p.requires_grad_(g)
        for m, flag in inplace:
            m.inplace = flag
        for m, before in zip(modules, hooks):
            for name, keys in before.items():
                d = getattr(m, name, None)
                if d is None:
                    continue
                for key in set(d.keys()) - keys:
                    del d[key]
