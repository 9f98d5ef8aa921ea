"""Explanation methods, one family per sub-package. Importing this package registers
every family's explainers in :mod:`lumos.core.registry`."""
import importlib

from lumos.methods.base import Explainer

FAMILIES = ("gradient", "relevance", "agnostic", "cam", "attention", "temporal", "transformer")

for _family in FAMILIES:
    try:
        importlib.import_module(f"lumos.methods.{_family}")
    except ModuleNotFoundError as _err:  # a family not written yet
        if _err.name != f"lumos.methods.{_family}":
            raise

__all__ = ["Explainer", "FAMILIES"]
