"""Building blocks for integration authors (framework adapters): ``vllm_embed.adapters``.

Framework adapters (LangChain, LlamaIndex, nano-vectordb) hold their settings, not a
client: the client is built the first time it is needed. This public module gives them
everything such a wrapper needs, so no adapter imports a private ``vllm_embed._*`` name:

- :class:`LazyClients`: one sync :class:`~vllm_embed.EmbeddingClient`, built once
  (thread-safe); one :class:`~vllm_embed.AsyncEmbeddingClient` per event loop (its
  connection pool belongs to the loop that first used it, so two ``asyncio.run(...)``
  calls must not share one; the entry goes away with its loop). Copying or pickling the
  holder gives an empty one: the copy builds its own clients, so framework objects that
  are deep-copied or sent to worker processes keep working.
- :class:`LazyClientsMixin`: the ``client`` / ``async_client`` properties,
  ``close`` / ``aclose`` and ``from_config`` for a settings class over a ``LazyClients``.
- :func:`adapter_client_kwargs` (settings fields -> client keyword arguments),
  :func:`adapter_fields_from_config` (config file -> fields + ``client_options``) and
  :func:`require_text_list` (raise on a non-list, return the texts; the check before a
  batch call).
- :data:`API_KEY_ENV_VARS` / :data:`BASE_URL_ENV_VARS`: the environment variables the
  core reads for the key and the URL, in order (for an adapter's own field defaults).
- :func:`vectors_to_arrow` (vectors -> Arrow fixed-shape tensor column) and
  :func:`bad_row_error` (the named error for a row without usable text): what the
  ``vllm-embed embed`` job uses, for dataset integrations (Ray Data). pyarrow is imported
  when ``vectors_to_arrow`` is called, never by importing this module.

Example::

    from vllm_embed.adapters import LazyClients, require_text_list

    class MyEmbeddings:
        def __init__(self, **client_kwargs):
            self._kwargs = client_kwargs
            self._clients = LazyClients()

        def embed(self, texts):
            if not require_text_list(texts, caller="MyEmbeddings.embed"):
                return []
            return self._clients.sync(self._kwargs).embed(texts)

        async def aembed(self, texts):
            return await self._clients.for_running_loop(self._kwargs).embed(texts)
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, cast

from vllm_embed._async_client import AsyncEmbeddingClient
from vllm_embed._client import EmbeddingClient
from vllm_embed._embed_job import bad_row_error, vectors_to_arrow
from vllm_embed._errors import InvalidInputError
from vllm_embed._settings import API_KEY_ENV_VARS, BASE_URL_ENV_VARS
from vllm_embed._types import RetryPolicy
from vllm_embed._vectors import l2_normalize

__all__ = [
    "API_KEY_ENV_VARS",
    "BASE_URL_ENV_VARS",
    "ClientKwargs",
    "LazyClients",
    "LazyClientsMixin",
    "adapter_client_kwargs",
    "adapter_fields_from_config",
    "bad_row_error",
    "l2_normalize",
    "require_text_list",
    "vectors_to_arrow",
]

#: The client's keyword arguments, or a function returning them (read at build time,
#: so an object whose settings may still change can pass a bound method).
ClientKwargs = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def _resolve(kwargs: ClientKwargs) -> dict[str, Any]:
    return dict(kwargs() if callable(kwargs) else kwargs)


class LazyClients:
    """Builds the core clients from keyword arguments when they are first needed.

    The holder owns what it builds: :meth:`close` / :meth:`aclose` close them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: EmbeddingClient | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEmbeddingClient] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def built(self) -> int:
        """How many clients exist right now (sync + async)."""
        return (self._sync is not None) + len(self._async)

    def sync(self, kwargs: ClientKwargs) -> EmbeddingClient:
        """The sync client, built from ``kwargs`` on the first call."""
        with self._lock:
            if self._sync is None:
                self._sync = EmbeddingClient(**_resolve(kwargs))
            return self._sync

    def for_running_loop(self, kwargs: ClientKwargs) -> AsyncEmbeddingClient:
        """The running event loop's async client, built on the first call in that loop.

        Raises:
            RuntimeError: no event loop is running (call it from a coroutine).
        """
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = AsyncEmbeddingClient(**_resolve(kwargs))
        return client

    def close(self) -> None:
        """Close and forget the sync client (the next :meth:`sync` builds a new one)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close and forget the running loop's async client."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return f"LazyClients(built={self.built})"

    def __copy__(self) -> LazyClients:
        return LazyClients()

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyClients:
        return LazyClients()

    def __reduce__(self) -> tuple[type[LazyClients], tuple[()]]:
        return (LazyClients, ())


class LazyClientsMixin:
    """``client``, ``async_client``, ``close``, ``aclose`` and ``from_config`` for an
    adapter's settings class.

    The class using it has a ``_clients`` :class:`LazyClients` (e.g. a pydantic private
    attribute), the settings fields ``client_options``, ``instructions``, ``base_url``,
    ``api_key``, ``headers``, ``timeout`` and ``max_retries`` (see
    :func:`adapter_client_kwargs`), and a ``_client_settings()`` method giving its other
    client keyword arguments (``model``, ``dimensions``, ...; ``None`` = not set).
    :meth:`from_config` fills the class's fields (its pydantic ``model_fields``, else its
    constructor's parameters); a class whose fields are named differently from the
    config's keys sets ``_config_renames`` (a ``ClassVar``, e.g.
    ``{"model": "model_name"}``). The mixin declares no other attributes at run time,
    so frameworks that read class annotations (pydantic) see only the class's own fields.
    """

    if TYPE_CHECKING:
        _clients: LazyClients
        client_options: Mapping[str, Any]
        instructions: Any
        base_url: str | Sequence[str] | None
        api_key: _SecretValue | None
        headers: Mapping[str, str] | None
        timeout: float | None
        max_retries: int | None

        def _client_settings(self) -> Mapping[str, Any]: ...

    _config_renames: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str], *, section: str | None = None, **overrides: Any
    ) -> Self:
        """Build from a config file or module (TOML / JSON / Python / env, see the core).

        Keyword overrides win over the file, which wins over defaults; config keys that
        are not fields of this class go to ``client_options``.
        """
        fields = getattr(cls, "model_fields", None) or inspect.signature(cls).parameters
        return cls(
            **adapter_fields_from_config(
                source,
                section=section,
                fields=fields,
                overrides=overrides,
                renames=cls._config_renames,
            )
        )

    def _client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the core client, from the fields that are set."""
        return adapter_client_kwargs(
            client_options=self.client_options,
            instructions=self.instructions,
            base_url=self.base_url,
            api_key=self.api_key,
            headers=self.headers,
            timeout=self.timeout,
            max_retries=self.max_retries,
            **self._client_settings(),
        )

    @property
    def client(self) -> EmbeddingClient:
        """The core sync client (built on first use)."""
        return self._clients.sync(self._client_kwargs)

    @property
    def async_client(self) -> AsyncEmbeddingClient:
        """The core async client of the running event loop (one per loop, built on use)."""
        return self._clients.for_running_loop(self._client_kwargs)

    def close(self) -> None:
        """Close the sync client's connections (the object stays usable)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the running loop's async client (the object stays usable)."""
        await self._clients.aclose()


class _SecretValue(Protocol):
    """A secret that gives its value on request (pydantic's ``SecretStr`` is one)."""

    def get_secret_value(self) -> str: ...


def adapter_client_kwargs(
    *,
    client_options: Mapping[str, Any],
    instructions: Any,
    base_url: str | Sequence[str] | None = None,
    api_key: str | _SecretValue | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The core client's keyword arguments from an adapter's settings fields.

    ``client_options`` (any other client keyword argument) comes first; the named
    settings win over it. ``None`` means "not set" (the core's default applies), and so
    does an empty ``headers``. ``api_key`` may be a string or a secret object with
    ``get_secret_value()``; ``max_retries`` (retries after the first attempt) becomes
    ``retry=RetryPolicy(max_attempts=max_retries + 1)``, keeping the other fields of a
    ``retry`` given in ``client_options``. ``settings`` are other client keyword
    arguments (``model``, ``dimensions``, ``batch_size``, ...), copied when not ``None``.
    """
    kwargs: dict[str, Any] = {**client_options, "instructions": instructions}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if api_key is not None:
        kwargs["api_key"] = api_key if isinstance(api_key, str) else api_key.get_secret_value()
    if headers:
        kwargs["headers"] = dict(headers)
    if timeout is not None:
        kwargs["timeout"] = timeout
    if max_retries is not None:
        base = client_options.get("retry") or RetryPolicy()
        kwargs["retry"] = dataclasses.replace(base, max_attempts=max_retries + 1)
    kwargs.update((name, value) for name, value in settings.items() if value is not None)
    return kwargs


def adapter_fields_from_config(
    source: str | os.PathLike[str],
    *,
    section: str | None,
    fields: Collection[str],
    overrides: Mapping[str, Any],
    renames: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An adapter's constructor arguments from a config file or module.

    Each of the config's client keyword arguments goes to the adapter field of that name
    (after ``renames``, e.g. ``{"model": "model_name"}``) when ``fields`` has it, else
    into ``client_options``. ``overrides`` win over the file, and an override
    ``client_options`` is merged over the file's other options.
    """
    from vllm_embed._config import load_config

    renames = renames or {}
    config = load_config(source, section=section)
    chosen: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in config.client_kwargs().items():
        name = renames.get(key, key)
        if name in fields and name != "client_options":
            chosen[name] = value
        else:
            options[key] = value
    chosen.update(overrides)
    options.update(chosen.pop("client_options", None) or {})
    return {**chosen, "client_options": options}


def require_text_list(texts: Any, *, caller: str, alternative: str | None = None) -> Sequence[str]:
    """Return ``texts`` when it is a list of texts (possibly empty); raise otherwise.

    The check an adapter's batch method makes first: an empty result means "answer it
    locally, no request" (``if not require_text_list(texts, caller=...): return []``).
    Items are checked by the core client (which names a bad item's index).

    Raises:
        InvalidInputError: ``texts`` is ``None``, a single string, bytes or a mapping;
            the message names ``caller`` (e.g. ``"embed_documents"``) and, when given,
            the ``alternative`` for a single text (e.g. ``"embed_query"``).
    """
    if texts is None or isinstance(texts, (str, bytes, Mapping)):
        hint = f" or use {alternative}" if alternative else ""
        raise InvalidInputError(
            f"{caller} expects a list of strings, got {type(texts).__name__}; "
            f"wrap a single text in a list{hint}."
        )
    return cast("Sequence[str]", texts)
