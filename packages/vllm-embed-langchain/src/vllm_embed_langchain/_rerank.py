"""``VLLMRerank``: LangChain's ``BaseDocumentCompressor`` over the core client's ``rerank``.

Drops into ``ContextualCompressionRetriever`` (``langchain_classic.retrievers`` /
``langchain.retrievers``): the base retriever fetches candidates, this reorders them by the
reranker's score and keeps ``top_n``, each with ``metadata["relevance_score"]``. Batching,
retries, failover and the server's rerank shape are the core client's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.utils import secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from vllm_embed import RerankResult
from vllm_embed.adapters import API_KEY_ENV_VARS, LazyClients, LazyClientsMixin

__all__ = ["VLLMRerank"]


class VLLMRerank(LazyClientsMixin, BaseDocumentCompressor):
    """Rerank documents with your own vLLM server (``/rerank``; a cross-encoder such as
    ``BAAI/bge-reranker-v2-m3``, or an embedding model scored by cosine).

    Example:
        .. code-block:: python

            from vllm_embed_langchain import VLLMRerank

            rerank = VLLMRerank(base_url="http://127.0.0.1:8000/v1", top_n=3)
            best = rerank.compress_documents(docs, "what is vLLM?")
    """

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, populate_by_name=True, protected_namespaces=()
    )

    base_url: str | list[str] | None = None
    """The server's OpenAI-style URL (``.../v1``), or several for failover."""
    model: str | None = None
    """Served reranker name; ``None`` uses the single model the server serves."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(API_KEY_ENV_VARS, default=None)
    )
    """API key. Never shown in reprs or errors."""
    headers: dict[str, str] | None = Field(default=None, repr=False, exclude=True)
    """Extra HTTP headers (a gateway's own header)."""
    top_n: int | None = 3
    """Documents to keep (``None``: all, reordered)."""
    batch_size: int | None = None
    """Documents per request (long lists are split; default 256)."""
    max_concurrency: int | None = None
    """Requests in flight at once."""
    timeout: float | None = None
    """Total seconds per request."""
    max_retries: int | None = None
    """Retries after the first attempt on 429 / 5xx / connection errors."""
    instructions: Any = None
    """Unused for reranking (kept for the shared settings)."""
    client_options: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    """Any other keyword argument of :class:`vllm_embed.EmbeddingClient`."""

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    def _client_settings(self) -> dict[str, Any]:
        names = ("model", "batch_size", "max_concurrency")
        return {name: getattr(self, name) for name in names}

    @staticmethod
    def _documents(documents: Sequence[Document], results: list[RerankResult]) -> list[Document]:
        out = []
        for result in results:
            doc = documents[result.index]
            metadata = {**doc.metadata, "relevance_score": result.score}
            out.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The ``top_n`` documents most relevant to ``query``, best first."""
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        return self._documents(documents, self.client.rerank(query, texts, top_n=self.top_n))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`."""
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        results = await self.async_client.rerank(query, texts, top_n=self.top_n)
        return self._documents(documents, results)
