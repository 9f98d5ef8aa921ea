"""Temporal family: methods written for time series (N, C, T) — learned perturbation masks,
temporal IG, augmented occlusion, temporal saliency rescaling, RISE. Each module registers
its explainers on import."""
import importlib as _importlib

MODULES: tuple[str, ...] = ("masks", "temporal_ig", "temporal_occlusion", "tsr", "rise")
"""The family's modules, imported in this order (each adds its explainers to the registry)."""

for _name in MODULES:
    _importlib.import_module(f"lumos.methods.temporal.{_name}")
