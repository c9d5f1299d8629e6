"""``LazyClients``: core clients built on first use, for objects that wrap the client.

Framework adapters (LangChain, LlamaIndex, nano-vectordb) hold their settings, not a
client: the client is built the first time it is needed. This module gives them one
holder with the rules such a wrapper needs:

- one sync :class:`~vllm_embed.EmbeddingClient`, built once (thread-safe);
- one :class:`~vllm_embed.AsyncEmbeddingClient` per event loop: its connection pool
  belongs to the loop that first used it, so two ``asyncio.run(...)`` calls must not
  share one (the entry goes away with its loop);
- copying or pickling the holder gives an empty one: the copy builds its own clients,
  so framework objects that are deep-copied or sent to worker processes keep working.

Example::

    class MyEmbeddings:
        def __init__(self, **client_kwargs):
            self._kwargs = client_kwargs
            self._clients = LazyClients()

        def embed(self, texts):
            return self._clients.sync(self._kwargs).embed(texts)

        async def aembed(self, texts):
            return await self._clients.for_running_loop(self._kwargs).embed(texts)
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from vllm_embed._async_client import AsyncEmbeddingClient
from vllm_embed._client import EmbeddingClient

__all__ = ["ClientKwargs", "LazyClients"]

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
