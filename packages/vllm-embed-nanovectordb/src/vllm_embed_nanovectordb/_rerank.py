"""A LightRAG ``rerank_model_func`` over the core client's ``rerank``.

LightRAG 1.5 calls ``await rerank_model_func(query=..., documents=[...], top_n=...)`` and
wants ``[{"index": i, "relevance_score": s}, ...]`` back, best first::

    from vllm_embed_nanovectordb import VLLMRerankFunction

    rag = LightRAG(..., embedding_func=..., rerank_model_func=VLLMRerankFunction(
        base_url="http://127.0.0.1:8000/v1", model="bge-reranker"))

One async client per event loop (LightRAG runs its own), built on first use; batching,
retries, failover and the server's rerank shape are the core client's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vllm_embed import AsyncEmbeddingClient
from vllm_embed.adapters import LazyClients

__all__ = ["VLLMRerankFunction"]


class VLLMRerankFunction:
    """``async (query, documents, top_n=None) -> [{"index", "relevance_score"}, ...]``.

    Args:
        client: an :class:`~vllm_embed.AsyncEmbeddingClient` to use (its loop's only);
            else one is built per event loop from ``options``.
        options: the core client's keyword arguments (``base_url``, ``api_key``,
            ``model``, ``batch_size``, ...).
    """

    def __init__(self, client: AsyncEmbeddingClient | None = None, **options: Any) -> None:
        if client is not None and options:
            raise TypeError("pass either client= or the client's options, not both")
        self._client = client
        self._options = dict(options)
        self._clients = LazyClients()

    def __repr__(self) -> str:
        return f"VLLMRerankFunction(base_url={self._options.get('base_url')!r})"

    def _async(self) -> AsyncEmbeddingClient:
        if self._client is not None:
            return self._client
        return self._clients.for_running_loop(self._options)

    async def __call__(
        self, query: str, documents: Sequence[str], top_n: int | None = None, **_: Any
    ) -> list[dict[str, Any]]:
        results = await self._async().rerank(query, list(documents), top_n=top_n)
        return [{"index": r.index, "relevance_score": r.score} for r in results]

    async def aclose(self) -> None:
        """Close the running loop's client (the function stays usable)."""
        await self._clients.aclose()
