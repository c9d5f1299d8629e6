"""Haystack embedder and ranker components backed by your own vLLM server, via vllm-embed.

The components live in ``haystack_integrations.components.embedders.vllm_embed`` and
``haystack_integrations.components.rankers.vllm_embed`` (so a saved pipeline loads with
Haystack's default deserialisation allowlist); this module re-exports them.
"""

from haystack_integrations.components.embedders.vllm_embed import (
    VLLMDocumentEmbedder,
    VLLMTextEmbedder,
)
from haystack_integrations.components.rankers.vllm_embed import VLLMRanker

__version__ = "0.1.0"

__all__ = ["VLLMDocumentEmbedder", "VLLMRanker", "VLLMTextEmbedder"]
