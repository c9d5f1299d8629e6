"""pydantic-ai embedding model backed by your own vLLM server, via vllm-embed."""

from vllm_embed_pydantic_ai._model import VLLMEmbeddingModel

__version__ = "0.1.0"

__all__ = ["VLLMEmbeddingModel"]
