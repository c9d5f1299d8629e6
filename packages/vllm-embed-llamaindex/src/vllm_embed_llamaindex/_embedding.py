"""``VLLMEmbedding``: LlamaIndex's ``BaseEmbedding`` over the vllm-embed core client.

The class only translates. Batching, requests in flight, retries, encodings, truncation
and query/text instructions come from :class:`vllm_embed.EmbeddingClient` /
:class:`vllm_embed.AsyncEmbeddingClient`, built lazily on first use.

LlamaIndex's own batch loop sends ``embed_batch_size`` texts at a time and waits for each
batch before sending the next. :meth:`VLLMEmbedding.get_text_embedding_batch` and its async
twin hand the whole list to the core instead, which splits it by count and token budget
and keeps several requests in flight; callbacks and instrumentation events still fire
(one start/end pair for the whole list).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import llama_index.core.instrumentation as instrument
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)

from vllm_embed.adapters import (
    API_KEY_ENV_VARS,
    LazyClients,
    LazyClientsMixin,
    require_text_list,
)

__all__ = ["VLLMEmbedding"]

dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]


_PASSTHROUGH = (
    "dimensions",
    "client_side_dimensions",
    "max_tokens_per_request",
    "max_concurrency",
    "encoding",
    "embed_dtype",
    "truncate",
    "normalize",
    "cache",
)


def _api_key_from_env() -> SecretStr | None:
    for name in API_KEY_ENV_VARS:
        if os.environ.get(name):
            return SecretStr(os.environ[name])
    return None


class VLLMEmbedding(LazyClientsMixin, BaseEmbedding):
    """Embeddings from your own vLLM (or any OpenAI-compatible) ``/v1/embeddings`` server.

    Example:
        .. code-block:: python

            from llama_index.core import Settings
            from vllm_embed_llamaindex import VLLMEmbedding

            Settings.embed_model = VLLMEmbedding(
                base_url="http://127.0.0.1:8000/v1", model_name="minilm"
            )

    Queries get the model's query instruction and texts its document instruction (the
    core's presets by model name, or ``instructions=...``). ``embed_batch_size`` is the
    number of texts per request sent by the core (default 64), not a loop in this class.
    Fields left at ``None`` take the core client's defaults. The API key falls back to
    ``VLLM_EMBED_API_KEY``, ``VLLM_API_KEY``, ``OPENAI_API_KEY``; the base URL to
    ``VLLM_EMBED_BASE_URL``, ``OPENAI_BASE_URL`` (read by the core).
    """

    model_name: str | None = Field(  # type: ignore[assignment]
        default=None,
        description="Served model name; None uses the single model the server serves.",
    )
    embed_batch_size: int = Field(
        default=64, gt=0, le=2048, description="Texts per request sent by the core client."
    )
    base_url: str | list[str] | None = Field(
        default=None, description="The server's OpenAI-style URL (.../v1), or several."
    )
    api_key: SecretStr | None = Field(
        default_factory=_api_key_from_env,
        exclude=True,  # never serialised (to_dict / to_json); reloaded from the environment
        description="API key; never shown, logged or serialised.",
    )
    headers: dict[str, str] | None = Field(
        default=None, exclude=True, repr=False, description="Extra HTTP headers."
    )
    dimensions: int | None = Field(default=None, description="Matryoshka output dimension.")
    client_side_dimensions: bool | None = None
    max_tokens_per_request: int | None = None
    max_concurrency: int | None = Field(default=None, description="Requests in flight.")
    timeout: float | None = Field(default=None, description="Total seconds per request.")
    max_retries: int | None = Field(default=None, description="Retries after the first try.")
    encoding: Literal["auto", "bytes", "base64", "float"] | None = None
    embed_dtype: Literal["float32", "float16"] | None = None
    truncate: Literal["end", "error"] | None = None
    instructions: Any = Field(
        default="auto",
        description='"auto" (preset by model name), a preset name, Instructions, or None (off).',
    )
    normalize: bool | None = None
    cache: Any = Field(
        default=None,
        description="Per-text embedding cache: a path, sqlite:///path, redis://host:port/db "
        "or a vllm_embed.EmbeddingCache (None: no cache).",
    )
    client_options: dict[str, Any] = Field(
        default_factory=dict, exclude=True, repr=False, description="Other client kwargs."
    )

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    #: Config keys named differently here (read by ``LazyClientsMixin.from_config``).
    _config_renames: ClassVar[Mapping[str, str]] = {
        "model": "model_name",
        "batch_size": "embed_batch_size",
    }

    @classmethod
    def class_name(cls) -> str:
        return "VLLMEmbedding"

    def to_payload(self) -> dict[str, Any]:
        """What callbacks and instrumentation see: no key, no headers."""
        return {
            "class_name": self.class_name(),
            "model_name": self.model_name,
            "embed_batch_size": self.embed_batch_size,
            "base_url": self.base_url,
            "dimensions": self.dimensions,
        }

    # -- clients (client, async_client, close, aclose, from_config: LazyClientsMixin) --

    def _client_settings(self) -> dict[str, Any]:
        """Client keyword arguments beyond the common fields (read by ``LazyClientsMixin``)."""
        return {
            "model": self.model_name,
            "batch_size": self.embed_batch_size,
            **{name: getattr(self, name) for name in _PASSTHROUGH},
        }

    # -- BaseEmbedding hooks ------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.client.embed_query_list(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self.async_client.embed_query_list(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not require_text_list(texts, caller="VLLMEmbedding"):
            return []
        return self.client.embed_documents_list(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not require_text_list(texts, caller="VLLMEmbedding"):
            return []
        return await self.async_client.embed_documents_list(texts)

    # -- whole-list batch methods ---------------------------------------------------------

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed all ``texts`` in one call to the core's pipelined batching.

        The core sends ``embed_batch_size`` texts per request with up to
        ``max_concurrency`` requests in flight (``num_workers`` is not used), and returns
        the vectors in input order. ``show_progress`` is accepted for compatibility; with
        an ``embeddings_cache`` set, LlamaIndex's own cached loop runs instead.
        """
        if getattr(self, "embeddings_cache", None) is not None:  # LlamaIndex's cache path
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        if not require_text_list(texts, caller="VLLMEmbedding"):
            return []
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            limiter = getattr(self, "rate_limiter", None)
            if limiter is not None:
                limiter.acquire()
            embeddings = self._get_text_embeddings(texts)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(_end_event(texts, embeddings))
        return embeddings

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async :meth:`get_text_embedding_batch`."""
        if getattr(self, "embeddings_cache", None) is not None:
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        if not require_text_list(texts, caller="VLLMEmbedding"):
            return []
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            limiter = getattr(self, "rate_limiter", None)
            if limiter is not None:
                await limiter.async_acquire()
            embeddings = await self._aget_text_embeddings(texts)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(_end_event(texts, embeddings))
        return embeddings


def _end_event(texts: list[str], embeddings: list[Embedding]) -> EmbeddingEndEvent:
    """The end event, built without re-validating every float (we made them: they are floats).

    Validating ``embeddings`` element by element was a third of this adapter's CPU per vector.
    """
    return EmbeddingEndEvent.model_construct(chunks=texts, embeddings=embeddings)
