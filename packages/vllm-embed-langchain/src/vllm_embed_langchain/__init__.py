"""LangChain embeddings backed by your own vLLM server, via vllm-embed."""

from vllm_embed_langchain._embeddings import VLLMEmbeddings

__all__ = ["VLLMEmbeddings"]
