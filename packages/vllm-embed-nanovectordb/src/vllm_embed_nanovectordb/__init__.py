"""nano-vectordb and LightRAG embedding functions backed by your own vLLM server."""

from vllm_embed_nanovectordb._db import aopen_db, migrate_command, open_db, stored_dimension
from vllm_embed_nanovectordb._function import VLLMEmbeddingFunction, l2_normalize

__all__ = [
    "VLLMEmbeddingFunction",
    "aopen_db",
    "l2_normalize",
    "migrate_command",
    "open_db",
    "stored_dimension",
]
