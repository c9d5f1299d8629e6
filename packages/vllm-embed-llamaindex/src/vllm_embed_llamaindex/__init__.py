"""LlamaIndex embeddings backed by your own vLLM server, via vllm-embed."""

from vllm_embed_llamaindex._embedding import VLLMEmbedding
from vllm_embed_llamaindex._rerank import VLLMRerank

__version__ = "0.1.0"

__all__ = ["VLLMEmbedding", "VLLMRerank"]
