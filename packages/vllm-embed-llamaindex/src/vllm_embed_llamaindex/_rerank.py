"""``VLLMRerank``: a LlamaIndex node postprocessor over the core client's ``rerank``.

Use it in a query engine (``index.as_query_engine(node_postprocessors=[VLLMRerank(...)])``)
or on retrieved nodes directly: nodes are reordered by the reranker's score (which
replaces ``NodeWithScore.score``) and cut to ``top_n``. The text scored is the text
LlamaIndex embeds (``MetadataMode.EMBED``), as LlamaIndex's own rerankers do.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from vllm_embed import RerankResult
from vllm_embed.adapters import LazyClients, LazyClientsMixin

from ._embedding import _api_key_from_env

__all__ = ["VLLMRerank"]


class VLLMRerank(LazyClientsMixin, BaseNodePostprocessor):
    """Rerank nodes with your own vLLM server (``/rerank``; a cross-encoder such as
    ``BAAI/bge-reranker-v2-m3``, or an embedding model scored by cosine).

    Example:
        .. code-block:: python

            from vllm_embed_llamaindex import VLLMRerank

            rerank = VLLMRerank(base_url="http://127.0.0.1:8000/v1", top_n=3)
            engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[rerank])
    """

    base_url: str | list[str] | None = Field(default=None, description="Server URL(s) (.../v1).")
    model: str | None = Field(default=None, description="Served reranker name.")
    api_key: SecretStr | None = Field(default_factory=_api_key_from_env, exclude=True, repr=False)
    headers: dict[str, str] | None = Field(default=None, exclude=True, repr=False)
    top_n: int | None = Field(default=3, description="Nodes to keep (None: all, reordered).")
    batch_size: int | None = Field(default=None, description="Documents per request.")
    max_concurrency: int | None = Field(default=None, description="Requests in flight.")
    timeout: float | None = Field(default=None, description="Seconds per request.")
    max_retries: int | None = Field(default=None, description="Retries on 429 / 5xx.")
    instructions: Any = Field(default=None, exclude=True)
    client_options: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    @classmethod
    def class_name(cls) -> str:
        return "VLLMRerank"

    def _client_settings(self) -> dict[str, Any]:
        names = ("model", "batch_size", "max_concurrency")
        return {name: getattr(self, name) for name in names}

    @staticmethod
    def _texts(nodes: list[NodeWithScore]) -> list[str]:
        return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    @staticmethod
    def _ranked(nodes: list[NodeWithScore], results: list[RerankResult]) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in results]

    @staticmethod
    def _query(query_bundle: QueryBundle | None) -> str:
        if query_bundle is None:
            raise ValueError("VLLMRerank needs the query: pass query_str / query_bundle.")
        return query_bundle.query_str

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        results = self.client.rerank(
            self._query(query_bundle), self._texts(nodes), top_n=self.top_n
        )
        return self._ranked(nodes, results)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        results = await self.async_client.rerank(
            self._query(query_bundle), self._texts(nodes), top_n=self.top_n
        )
        return self._ranked(nodes, results)

    if not hasattr(BaseNodePostprocessor, "apostprocess_nodes"):  # llama-index-core < 0.12.?

        async def apostprocess_nodes(
            self,
            nodes: list[NodeWithScore],
            query_bundle: QueryBundle | None = None,
            query_str: str | None = None,
        ) -> list[NodeWithScore]:
            """Async ``postprocess_nodes`` (newer llama-index-core has its own)."""
            if query_str is not None:
                query_bundle = QueryBundle(query_str)
            return await self._apostprocess_nodes(nodes, query_bundle)
