"""``VLLMEmbeddingModel``: pydantic-ai's ``EmbeddingModel`` over the vllm-embed core client.

The class only translates. ``input_type="query"`` gets the model's query instruction and
``"document"`` its document instruction (the core's presets by model name, or
``instructions=...``); batching, requests in flight, retries, encodings, truncation and the
embedding cache (``cache=``) are :class:`vllm_embed.AsyncEmbeddingClient`'s, built lazily,
one per event loop (pydantic-ai's ``*_sync`` methods run each call on a loop of their own).

pydantic-ai's per-call :class:`~pydantic_ai.embeddings.EmbeddingSettings`: ``dimensions``
(Matryoshka), ``truncate`` (``True``: cut at the context length, ``False``: raise
:class:`vllm_embed.ContextLengthError`) and ``extra_headers`` give a client of their own,
built once per distinct value; ``extra_body`` has no meaning here and is refused.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_ai.embeddings import EmbeddingModel, EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType
from pydantic_ai.models import check_allow_model_requests
from pydantic_ai.usage import RequestUsage

from vllm_embed import AsyncEmbeddingClient, ConfigValueError, load_config
from vllm_embed.adapters import LazyClients

__all__ = ["VLLMEmbeddingModel"]

#: The name pydantic-ai shows as the provider (``EmbeddingResult.provider_name``, spans).
SYSTEM = "vllm"

#: A per-call client variant: (dimensions, truncate, extra headers).
_Variant = tuple[int | None, str | None, tuple[tuple[str, str], ...]]
_DEFAULT: _Variant = (None, None, ())
_SUPPORTED_SETTINGS = frozenset({"dimensions", "truncate", "extra_headers"})


class VLLMEmbeddingModel(EmbeddingModel):
    """Embeddings from your own vLLM (or any OpenAI-compatible) ``/v1/embeddings`` server.

    Example:
        .. code-block:: python

            from pydantic_ai import Embedder
            from vllm_embed_pydantic_ai import VLLMEmbeddingModel

            embedder = Embedder(VLLMEmbeddingModel("http://127.0.0.1:8000/v1", model="minilm"))
            result = await embedder.embed_query("biggest planet?")

    Args:
        base_url: the server's OpenAI-style URL (``.../v1``), or several; ``None`` reads
            ``VLLM_EMBED_BASE_URL`` / ``OPENAI_BASE_URL`` (the core's settings).
        model: the served model name; ``None`` uses the single model the server serves.
        client: an :class:`~vllm_embed.AsyncEmbeddingClient` to use (the caller owns it;
            no client keyword arguments then, and per-call settings are refused).
        settings: pydantic-ai default settings for this model (see the module docstring).
        **client_kwargs: the core client's other keyword arguments: ``api_key`` (else
            ``VLLM_EMBED_API_KEY``, ``VLLM_API_KEY``, ``OPENAI_API_KEY``; never shown),
            ``cache``, ``dimensions``, ``instructions``, ``batch_size``, ``truncate``, ...
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        model: str | None = None,
        client: AsyncEmbeddingClient | None = None,
        settings: EmbeddingSettings | None = None,
        **client_kwargs: Any,
    ) -> None:
        if client is not None and (client_kwargs or base_url is not None or model is not None):
            given = sorted([*client_kwargs, *(["base_url"] if base_url else [])])
            raise ConfigValueError(
                "pass either client= or the client's settings, not both "
                f"(got client= and {given or ['model']}); configure the client you pass."
            )
        super().__init__(settings=settings)
        self._client = client
        self._kwargs: dict[str, Any] = dict(client_kwargs)
        if base_url is not None:
            self._kwargs["base_url"] = base_url
        if model is not None:
            self._kwargs["model"] = model
        self._model = model
        self._served_model: str | None = None
        self._variants: dict[_Variant, LazyClients] = {}

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str],
        *,
        section: str | None = None,
        settings: EmbeddingSettings | None = None,
        **overrides: Any,
    ) -> VLLMEmbeddingModel:
        """Build from a config file or module (TOML / JSON / Python / env, see the core);
        keyword overrides win over the file."""
        config = load_config(source, section=section)
        return cls(settings=settings, **{**config.client_kwargs(), **overrides})

    def __repr__(self) -> str:
        model = self._model or self._served_model
        return f"{type(self).__name__}(model={model!r}, base_url={self.base_url!r})"

    # -- EmbeddingModel's properties ---------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model given, else the served one once a call has discovered it, else ``""``."""
        return self._model or self._served_model or ""

    @property
    def system(self) -> str:
        return SYSTEM

    @property
    def base_url(self) -> str | None:
        """The first base URL, credentials removed (``None`` when none is set yet)."""
        if self._client is not None:
            return self._client.base_urls[0]
        url = self._kwargs.get("base_url")
        if url is None:
            return None
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            return None
        return _without_credentials(str(urls[0]))

    # -- clients -----------------------------------------------------------------------

    def _variant(self, settings: Mapping[str, Any]) -> _Variant:
        unknown = sorted(set(settings) - _SUPPORTED_SETTINGS)
        if unknown:
            raise ConfigValueError(
                f"VLLMEmbeddingModel does not support the embedding setting(s) {unknown}: "
                f"use {sorted(_SUPPORTED_SETTINGS)}, or pass other client options "
                "(e.g. headers=, client_options) when building the model."
            )
        truncate = settings.get("truncate")
        headers = settings.get("extra_headers") or {}
        variant: _Variant = (
            settings.get("dimensions"),
            None if truncate is None else ("end" if truncate else "error"),
            tuple(sorted(dict(headers).items())),
        )
        if variant != _DEFAULT and self._client is not None:
            raise ConfigValueError(
                "per-call embedding settings need a client built by VLLMEmbeddingModel; "
                "this one wraps the client you passed: configure that client instead."
            )
        return variant

    def _client_for(self, variant: _Variant) -> AsyncEmbeddingClient:
        if self._client is not None:
            return self._client
        clients = self._variants.get(variant)
        if clients is None:
            clients = self._variants[variant] = LazyClients()
        dimensions, truncate, headers = variant
        kwargs = dict(self._kwargs)
        if dimensions is not None:
            kwargs["dimensions"] = dimensions
        if truncate is not None:
            kwargs["truncate"] = truncate
        if headers:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **dict(headers)}
        return clients.for_running_loop(kwargs)

    @property
    def async_client(self) -> AsyncEmbeddingClient:
        """The running event loop's core client for the default settings."""
        return self._client_for(_DEFAULT)

    async def aclose(self) -> None:
        """Close the running loop's clients that this model built (it stays usable)."""
        for clients in self._variants.values():
            await clients.aclose()

    # -- EmbeddingModel's methods ------------------------------------------------------

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        input_type: EmbedInputType,
        settings: EmbeddingSettings | None = None,
    ) -> EmbeddingResult:
        """Embed ``inputs`` as queries or documents (with that side's instruction)."""
        texts, merged = self.prepare_embed(inputs, settings)
        if input_type not in ("query", "document"):
            raise ConfigValueError(f"input_type must be 'query' or 'document', got {input_type!r}.")
        client = self._client_for(self._variant(merged))
        check_allow_model_requests()
        if not texts:
            return EmbeddingResult(
                [], inputs=[], input_type=input_type, model_name=self.model_name,
                provider_name=SYSTEM,
            )  # fmt: skip
        result = await client.embed_with_info(texts, kind=input_type)
        self._served_model = result.model
        details = (
            {"truncated": result.truncated, "truncated_indices": result.truncated_indices}
            if result.truncated
            else None
        )
        return EmbeddingResult(
            result.vectors.tolist(),
            inputs=texts,
            input_type=input_type,
            model_name=result.model,
            provider_name=SYSTEM,
            usage=RequestUsage(input_tokens=result.prompt_tokens),
            provider_details=details,
        )

    async def max_input_tokens(self) -> int | None:
        """The server's ``max_model_len`` for the model (``None`` when it does not say)."""
        check_allow_model_requests()
        return await self.async_client.max_model_len()


def _without_credentials(url: str) -> str:
    """``url`` without ``user:password@`` (shown in reprs and spans, never the secret)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
