"""``VLLMEmbeddings``: LangChain's ``Embeddings`` interface over the vllm-embed core client.

The class only translates. Batching, requests in flight, retries, encodings, truncation
and query/document instructions are all done by :class:`vllm_embed.EmbeddingClient` /
:class:`vllm_embed.AsyncEmbeddingClient`, built lazily on first use (the constructor makes
no network call and builds no client).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from vllm_embed.adapters import (
    API_KEY_ENV_VARS,
    LazyClients,
    LazyClientsMixin,
    require_text_list,
)

__all__ = ["VLLMEmbeddings"]


# Fields copied as-is to the core client when they are set (None = the core's default).
_PASSTHROUGH = (
    "model",
    "dimensions",
    "client_side_dimensions",
    "batch_size",
    "max_tokens_per_request",
    "max_concurrency",
    "encoding",
    "embed_dtype",
    "truncate",
    "normalize",
    "cache",
)


class VLLMEmbeddings(LazyClientsMixin, BaseModel, Embeddings):
    """Embeddings from your own vLLM (or any OpenAI-compatible) ``/v1/embeddings`` server.

    Example:
        .. code-block:: python

            from vllm_embed_langchain import VLLMEmbeddings

            emb = VLLMEmbeddings(base_url="http://127.0.0.1:8000/v1", model="minilm")
            vectors = emb.embed_documents(["first text", "second text"])
            query = emb.embed_query("what is the first text about?")

    Every field left at ``None`` takes the core client's default (batch 256, 8 requests in
    flight, 5 attempts with backoff, 60 s timeout, best encoding the server offers).
    The API key falls back to ``VLLM_EMBED_API_KEY``, ``VLLM_API_KEY``, ``OPENAI_API_KEY``;
    the base URL to ``VLLM_EMBED_BASE_URL``, ``OPENAI_BASE_URL`` (read by the core).
    """

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        populate_by_name=True,
        protected_namespaces=(),
    )

    base_url: str | list[str] | None = None
    """The server's OpenAI-style URL (``.../v1``), or several for failover."""
    model: str | None = None
    """Served model name; ``None`` uses the single model the server serves."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(API_KEY_ENV_VARS, default=None)
    )
    """API key (``--api-key`` of ``vllm serve``). Never shown in reprs or errors."""
    headers: dict[str, str] | None = Field(default=None, repr=False, exclude=True)
    """Extra HTTP headers (an explicit ``Authorization`` wins over ``api_key``)."""
    dimensions: int | None = None
    """Matryoshka output dimension sent to the server."""
    client_side_dimensions: bool | None = None
    """If the server refuses ``dimensions``: truncate and renormalise locally."""
    batch_size: int | None = None
    """Texts per request."""
    max_tokens_per_request: int | None = None
    """Estimated-token budget per request."""
    max_concurrency: int | None = None
    """Requests in flight at once (sync calls use threads)."""
    timeout: float | None = None
    """Total seconds per request."""
    max_retries: int | None = None
    """Retries after the first attempt on 429 / 5xx / connection errors."""
    encoding: Literal["auto", "bytes", "base64", "float"] | None = None
    """Response encoding; ``auto`` negotiates bytes > base64 > float."""
    embed_dtype: Literal["float32", "float16"] | None = None
    """Transfer dtype asked of vLLM."""
    truncate: Literal["end", "error"] | None = None
    """``end``: inputs longer than the model's context are cut; ``error``: raise."""
    instructions: Any = "auto"
    """Query/document instructions: ``"auto"`` (preset by model name), a preset name
    (``"e5"``, ``"qwen3"``, ...), a :class:`vllm_embed.Instructions`, or ``None`` (off)."""
    normalize: bool | None = None
    """L2-normalise vectors client-side."""
    cache: Any = None
    """Per-text embedding cache: a path / ``sqlite:///path``, ``redis://host:port/db``, or a
    :class:`vllm_embed.EmbeddingCache`; keyed on model, role, instruction and settings, so
    queries and documents never share vectors. ``None``: no cache."""
    client_options: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    """Any other keyword argument of :class:`vllm_embed.EmbeddingClient` (e.g. ``retry``);
    the fields above win over it."""

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    # -- clients (client, async_client, close, aclose, from_config: LazyClientsMixin) --

    def _client_settings(self) -> dict[str, Any]:
        """Client keyword arguments beyond the common fields (read by ``LazyClientsMixin``)."""
        return {name: getattr(self, name) for name in _PASSTHROUGH}

    # -- Embeddings interface ----------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (document instruction applied), one list of floats each."""
        if not require_text_list(texts, caller="embed_documents", alternative="embed_query"):
            return []
        return self.client.embed_documents_list(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (query instruction applied)."""
        return self.client.embed_query_list(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        if not require_text_list(texts, caller="embed_documents", alternative="embed_query"):
            return []
        return await self.async_client.embed_documents_list(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return await self.async_client.embed_query_list(text)
