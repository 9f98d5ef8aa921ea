"""Attention family: the attention weights of a model as its explanation, with the
diagnostics of Jain & Wallace (2019) and Wiegreffe & Pinter (2019)."""
from lumos.methods.attention.diagnostics import compare_uniform_attention, kendall_tau_rows, total_variation
from lumos.methods.attention.weights import AttentionWeights

__all__ = ["AttentionWeights", "compare_uniform_attention", "kendall_tau_rows", "total_variation"]
