"""LangChain embeddings backed by your own vLLM server, via vllm-embed."""

from vllm_embed_langchain._embeddings import VLLMEmbeddings
from vllm_embed_langchain._rerank import VLLMRerank

__version__ = "0.1.0"

__all__ = ["VLLMEmbeddings", "VLLMRerank"]
