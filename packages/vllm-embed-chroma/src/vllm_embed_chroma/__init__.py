"""A Chroma embedding function backed by your own vLLM server, via vllm-embed.

Importing this package registers :class:`VLLMEmbeddingFunction` with chromadb's
embedding-function registry (name ``"vllm-embed"``).
"""

from vllm_embed_chroma._function import NAME, VLLMEmbeddingFunction

__version__ = "0.1.0"

__all__ = ["NAME", "VLLMEmbeddingFunction"]
