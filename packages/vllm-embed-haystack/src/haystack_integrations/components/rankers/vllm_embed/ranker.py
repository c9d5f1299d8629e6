"""``VLLMRanker``: a Haystack ranker component over the core client's ``rerank``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component
from haystack_integrations.components.embedders.vllm_embed._settings import (
    VLLMEmbedderSettings,
)

from vllm_embed import RerankResult

__all__ = ["VLLMRanker"]


@component
class VLLMRanker(VLLMEmbedderSettings):
    """Ranks documents by relevance to a query with your own vLLM server (``/rerank``: a
    cross-encoder such as ``BAAI/bge-reranker-v2-m3``, or an embedding model by cosine).

    Example:
        .. code-block:: python

            from haystack_integrations.components.rankers.vllm_embed import VLLMRanker

            ranker = VLLMRanker(base_url="http://127.0.0.1:8000/v1", top_k=3)
            best = ranker.run(query="What is vLLM?", documents=docs)["documents"]

    Each returned document is a copy with ``score`` set to the reranker's score, best
    first. ``meta_fields_to_embed`` prepends those meta values to the text scored, as
    Haystack's own rankers do. The server's shape (vLLM, Jina, Cohere, TEI) is negotiated
    by the core client, which also batches long lists and retries.
    """

    def __init__(
        self,
        *,
        top_k: int = 10,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        **settings: Any,
    ) -> None:
        # @component rebuilds the class: zero-argument super() would not find it
        VLLMEmbedderSettings.__init__(self, **settings)
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k}")
        self.top_k = top_k
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def _extra_to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "meta_fields_to_embed": self.meta_fields_to_embed,
            "embedding_separator": self.embedding_separator,
        }

    def _text(self, doc: Document) -> str:
        meta = [
            str(doc.meta[field])
            for field in self.meta_fields_to_embed
            if doc.meta.get(field) is not None
        ]
        return self.embedding_separator.join([*meta, doc.content or ""])

    @staticmethod
    def _ranked(documents: list[Document], results: list[RerankResult]) -> list[Document]:
        return [replace(documents[r.index], score=r.score) for r in results]

    def _top(self, top_k: int | None) -> int:
        top = self.top_k if top_k is None else top_k
        if top < 1:
            raise ValueError(f"top_k must be a positive integer, got {top}")
        return top

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """The ``top_k`` documents most relevant to ``query``, best first, with scores."""
        if not documents:
            return {"documents": []}
        texts = [self._text(doc) for doc in documents]
        results = self.client.rerank(query, texts, top_n=self._top(top_k))
        return {"documents": self._ranked(documents, results)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`."""
        if not documents:
            return {"documents": []}
        texts = [self._text(doc) for doc in documents]
        results = await self.async_client.rerank(query, texts, top_n=self._top(top_k))
        return {"documents": self._ranked(documents, results)}
