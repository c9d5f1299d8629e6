"""crewAI's custom embedder over :class:`~vllm_embed_chroma.VLLMEmbeddingFunction`.

crewAI (1.x) keeps its knowledge and memory in chromadb and takes a custom embedder as
a ``CustomProvider(embedding_callable=cls, **settings)``, where ``cls`` must subclass
crewAI's own ``CustomEmbeddingFunction`` (its dict form ``{"provider": "custom",
"config": {...}}`` keeps only ``embedding_callable``: the settings would be dropped).
:func:`crewai_embedder` builds that provider around the Chroma function (crewAI is
imported when it is called, never by importing this package)::

    from crewai.knowledge.storage.knowledge_storage import KnowledgeStorage
    from vllm_embed_chroma.crewai import crewai_embedder

    storage = KnowledgeStorage(
        collection_name="docs",
        embedder=crewai_embedder(base_url="http://127.0.0.1:8000/v1", model="minilm"),
    )
"""

from __future__ import annotations

import functools
from typing import Any

from vllm_embed_chroma._function import VLLMEmbeddingFunction

__all__ = ["crewai_embedder", "crewai_function_class"]


@functools.cache
def crewai_function_class() -> type[VLLMEmbeddingFunction]:
    """``VLLMEmbeddingFunction`` as a subclass of crewAI's ``CustomEmbeddingFunction``
    (same behaviour, same chromadb record name)."""
    from crewai.rag.embeddings.providers.custom.embedding_callable import (
        CustomEmbeddingFunction,
    )

    class VLLMCrewAIEmbeddingFunction(VLLMEmbeddingFunction, CustomEmbeddingFunction):  # type: ignore[misc]
        """:class:`~vllm_embed_chroma.VLLMEmbeddingFunction` that crewAI accepts."""

    return VLLMCrewAIEmbeddingFunction


def crewai_embedder(**settings: Any) -> Any:
    """crewAI's embedder (for ``Agent``, ``Crew``, ``Knowledge``, ``KnowledgeStorage``
    ``embedder=``): a ``CustomProvider`` building
    :class:`~vllm_embed_chroma.VLLMEmbeddingFunction` with ``settings`` (``base_url``,
    ``model``, ``api_key_env_var``, ``instructions``, ...).

    Raises:
        ImportError: crewAI is not installed.
    """
    from crewai.rag.embeddings.providers.custom.custom_provider import CustomProvider

    return CustomProvider(embedding_callable=crewai_function_class(), **settings)
