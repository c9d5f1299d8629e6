"""Haystack embedder components backed by your own vLLM server, via vllm-embed.

Importable as ``haystack_integrations.components.embedders.vllm_embed`` (the namespace
Haystack's ``Pipeline.loads`` admits by default) and as ``vllm_embed_haystack``.
"""

from .document_embedder import VLLMDocumentEmbedder
from .text_embedder import VLLMTextEmbedder

__all__ = ["VLLMDocumentEmbedder", "VLLMTextEmbedder"]
