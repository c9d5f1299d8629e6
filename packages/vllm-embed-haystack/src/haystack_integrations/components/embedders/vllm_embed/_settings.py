"""The settings both embedders share: fields, the core clients, ``to_dict`` / ``from_dict``.

The components only translate: batching, requests in flight, retries, encodings,
truncation, the cache and query/document instructions are the core client's
(:class:`vllm_embed.EmbeddingClient` / :class:`vllm_embed.AsyncEmbeddingClient`, built on
first use by :class:`vllm_embed.adapters.LazyClients`).

The API key is a Haystack :class:`~haystack.utils.Secret`: by default
``Secret.from_env_var([VLLM_EMBED_API_KEY, VLLM_API_KEY, OPENAI_API_KEY], strict=False)``,
which serialises as the variables' names, never the value. A key given as a string is a
token secret, which Haystack refuses to serialise. A URL or cache URL carrying a password
is refused by ``to_dict`` too (nothing secret lands in a pipeline's YAML).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from haystack.core.errors import SerializationError
from haystack.core.serialization import default_from_dict, default_to_dict
from haystack.utils import Secret

from vllm_embed import Instructions
from vllm_embed.adapters import (
    API_KEY_ENV_VARS,
    LazyClients,
    LazyClientsMixin,
    adapter_client_kwargs,
    adapter_fields_from_config,
)

__all__ = ["VLLMEmbedderSettings", "default_api_key"]


def default_api_key() -> Secret:
    """The key from the environment (the core's variables, in order; none set: no key)."""
    return Secret.from_env_var(list(API_KEY_ENV_VARS), strict=False)


#: Settings passed to the core client unchanged (``None``: the core's default).
_PASSTHROUGH = (
    "dimensions",
    "client_side_dimensions",
    "batch_size",
    "max_tokens_per_request",
    "max_concurrency",
    "encoding",
    "embed_dtype",
    "truncate",
    "normalize",
)


def _refuse_password(value: Any, what: str) -> None:
    urls = value if isinstance(value, list) else [value]
    for url in urls:
        if isinstance(url, str) and "://" in url and urlsplit(url).password:
            raise SerializationError(
                f"{what} carries a password; it would be written into the pipeline. "
                "Give the URL without credentials (and the key as api_key, read from the "
                "environment) to save this component."
            )


class VLLMEmbedderSettings(LazyClientsMixin):
    """What the text and document embedders have in common (not a component itself)."""

    #: Keyword arguments of ``__init__`` that ``to_dict`` writes (the rest are not saved).
    _SAVED: ClassVar[tuple[str, ...]] = (
        "base_url",
        "model",
        "prefix",
        "suffix",
        "instructions",
        "timeout",
        "max_retries",
        "cache",
        *_PASSTHROUGH,
    )

    def __init__(
        self,
        *,
        base_url: str | list[str] | None = None,
        model: str | None = None,
        api_key: Secret | str | None = None,
        prefix: str = "",
        suffix: str = "",
        instructions: Instructions | Mapping[str, str] | str | None = "auto",
        dimensions: int | None = None,
        client_side_dimensions: bool | None = None,
        batch_size: int | None = None,
        max_tokens_per_request: int | None = None,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        encoding: Literal["auto", "bytes", "base64", "float"] | None = None,
        embed_dtype: Literal["float32", "float16"] | None = None,
        truncate: Literal["end", "error"] | None = None,
        normalize: bool | None = None,
        cache: Any = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        if api_key is None:
            api_key = default_api_key()
        elif isinstance(api_key, str):
            api_key = Secret.from_token(api_key)
        # a Haystack Secret, not the mixin's get_secret_value kind (see _client_kwargs)
        self.api_key: Secret = api_key  # type: ignore[assignment]
        self.prefix = prefix
        self.suffix = suffix
        if isinstance(instructions, Mapping):  # as to_dict writes an Instructions
            instructions = Instructions(
                query=instructions.get("query", ""), document=instructions.get("document", "")
            )
        self.instructions = instructions
        self.dimensions = dimensions
        self.client_side_dimensions = client_side_dimensions
        self.batch_size = batch_size
        self.max_tokens_per_request = max_tokens_per_request
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.encoding = encoding
        self.embed_dtype = embed_dtype
        self.truncate = truncate
        self.normalize = normalize
        self.cache = cache
        self.headers: Mapping[str, str] | None = None
        self.client_options: Mapping[str, Any] = dict(client_options or {})
        self._clients = LazyClients()

    # -- the core clients (client, async_client, close, aclose: LazyClientsMixin) --------

    def _client_settings(self) -> dict[str, Any]:
        settings = {name: getattr(self, name) for name in _PASSTHROUGH}
        return {"model": self.model, "cache": self.cache, **settings}

    def _client_kwargs(self) -> dict[str, Any]:
        return adapter_client_kwargs(
            client_options=self.client_options,
            instructions=self.instructions,
            base_url=self.base_url,
            api_key=self.api_key.resolve_value(),
            timeout=self.timeout,
            max_retries=self.max_retries,
            **self._client_settings(),
        )

    def warm_up(self) -> None:
        """Build the sync core client (no request is sent; the model is found on first use)."""
        _ = self.client

    async def warm_up_async(self) -> None:
        """Build the running event loop's async core client."""
        _ = self.async_client

    async def close_async(self) -> None:
        """Close the running loop's async client (Haystack's name for ``aclose``)."""
        await self.aclose()

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self.model}

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str], *, section: str | None = None, **overrides: Any
    ) -> Self:
        """Build from an app's config file or module (TOML / JSON / Python, see the core).

        Keyword overrides win over the file; config keys that are not settings here go
        to ``client_options``.
        """
        fields = {
            *inspect.signature(VLLMEmbedderSettings.__init__).parameters,
            *inspect.signature(cls.__init__).parameters,
        } - {"self", "settings"}
        return cls(
            **adapter_fields_from_config(
                source, section=section, fields=fields, overrides=overrides
            )
        )

    # -- serialisation ----------------------------------------------------------------------

    def _extra_to_dict(self) -> dict[str, Any]:
        """The subclass's own ``__init__`` arguments to save."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Serialise for a pipeline: the key as its variables' names, never its value.

        Raises:
            SerializationError: the key was given as a string, ``cache`` is an object
                rather than a path / URL, ``client_options`` is set, or a URL carries a
                password.
        """
        _refuse_password(self.base_url, "base_url")
        _refuse_password(self.cache, "cache")
        if self.cache is not None and not isinstance(self.cache, str):
            raise SerializationError(
                f"cache={self.cache!r} cannot be saved in a pipeline; give its path or URL "
                "(a string) instead of the object."
            )
        if self.client_options:
            raise SerializationError(
                "client_options cannot be saved in a pipeline (they may hold objects or "
                "secrets); use the named settings, or VLLM_EMBED_* environment variables."
            )
        saved = {name: getattr(self, name) for name in self._SAVED}
        if isinstance(self.instructions, Instructions):
            saved["instructions"] = {
                "query": self.instructions.query,
                "document": self.instructions.document,
            }
        return default_to_dict(self, api_key=self.api_key, **saved, **self._extra_to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from :meth:`to_dict`'s output (the key is read from the environment)."""
        return default_from_dict(cls, data)
