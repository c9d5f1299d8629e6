"""DSPy embedder backed by your own vLLM server, via vllm-embed."""

from vllm_embed_dspy._embedder import VLLMEmbedder, embeddings_retriever

__version__ = "0.1.0"

__all__ = ["VLLMEmbedder", "embeddings_retriever"]
