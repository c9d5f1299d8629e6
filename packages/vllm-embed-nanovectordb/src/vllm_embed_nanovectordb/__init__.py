"""nano-vectordb and LightRAG embedding functions backed by your own vLLM server."""

from vllm_embed.adapters import l2_normalize
from vllm_embed_nanovectordb._db import aopen_db, migrate_command, open_db, stored_dimension
from vllm_embed_nanovectordb._function import VLLMEmbeddingFunction
from vllm_embed_nanovectordb._lightrag import alightrag_embedding_func, lightrag_embedding_func
from vllm_embed_nanovectordb._rerank import VLLMRerankFunction

__version__ = "0.1.0"

__all__ = [
    "VLLMEmbeddingFunction",
    "VLLMRerankFunction",
    "alightrag_embedding_func",
    "aopen_db",
    "l2_normalize",
    "lightrag_embedding_func",
    "migrate_command",
    "open_db",
    "stored_dimension",
]
