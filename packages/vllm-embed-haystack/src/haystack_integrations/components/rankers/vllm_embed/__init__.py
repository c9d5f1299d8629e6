"""A Haystack ranker backed by your own vLLM server's ``/rerank``, via vllm-embed.

Importable as ``haystack_integrations.components.rankers.vllm_embed`` (the namespace
Haystack's ``Pipeline.loads`` admits by default) and as ``vllm_embed_haystack``.
"""

from .ranker import VLLMRanker

__all__ = ["VLLMRanker"]
