"""lumos core: the Explanation result, the model adapter, the guard, hooks, validation,
batching and the method registry. Knows no method, no plot, no CLI."""
from lumos.core.explanation import Explanation, stack
from lumos.core.guard import model_guard
from lumos.core.model import ModelAdapter
from lumos.core.registry import available, get, register

__all__ = ["Explanation", "stack", "model_guard", "ModelAdapter", "available", "get", "register"]
