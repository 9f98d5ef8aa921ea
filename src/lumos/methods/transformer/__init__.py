"""Transformer family: attention rollout and flow (Abnar & Zuidema 2020), gradient-weighted
attention relevance (Chefer, Gur & Wolf 2021) and AttnLRP (Achtibat et al. 2024), for
lumos reference transformers, ``nn.MultiheadAttention`` models and Hugging Face models."""
from lumos.methods.transformer.attnlrp import (AttnLRP, EmbeddingInput, LayerNormIdentity, Share, SoftmaxTaylor,
                                               UniformMatMul, attnlrp_composite)
from lumos.methods.transformer.capture import attention_hooks, forward_attentions, model_kind
from lumos.methods.transformer.chefer import CheferRelevance, chefer_relevance
from lumos.methods.transformer.rollout import (AttentionFlow, AttentionRollout, attention_flow, attention_rollout,
                                               max_flow, residual_attention)
from lumos.methods.transformer.tokens import spread_patches, square_grid, tokens_to_grid

__all__ = ["AttentionRollout", "AttentionFlow", "CheferRelevance", "AttnLRP", "attention_rollout", "attention_flow",
           "max_flow", "residual_attention", "chefer_relevance", "attnlrp_composite", "UniformMatMul", "SoftmaxTaylor",
           "LayerNormIdentity", "Share", "EmbeddingInput", "attention_hooks", "forward_attentions", "model_kind",
           "tokens_to_grid", "square_grid", "spread_patches"]
