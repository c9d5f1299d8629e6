"""LangChain embeddings backed by your own vLLM server, via vllm-embed."""

from vllm_embed_langchain._embeddings import VLLMEmbeddings

__version__ = "0.1.0"

__all__ = ["VLLMEmbeddings"]
