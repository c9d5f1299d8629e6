"""The core clients an adapter object uses, built on first use.

One sync :class:`~vllm_embed.EmbeddingClient`, and one
:class:`~vllm_embed.AsyncEmbeddingClient` per event loop (its connection pool belongs to
the loop that first used it, so ``asyncio.run(...)`` twice must not share one). Copying
or pickling the holder gives an empty one: the copy builds its own clients, so framework
objects that are deep-copied or sent to worker processes keep working.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient

__all__ = ["LazyClients"]


class LazyClients:
    """Builds the core clients from ``kwargs()`` when they are first needed."""

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

    def sync(self, kwargs: Callable[[], dict[str, Any]]) -> EmbeddingClient:
        """The sync client (built on first call)."""
        with self._lock:
            if self._sync is None:
                self._sync = EmbeddingClient(**kwargs())
            return self._sync

    def for_running_loop(self, kwargs: Callable[[], dict[str, Any]]) -> AsyncEmbeddingClient:
        """The async client of the running event loop (built on first call in that loop)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = AsyncEmbeddingClient(**kwargs())
        return client

    def close(self) -> None:
        """Close and forget the sync client."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close and forget the running loop's async client."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __copy__(self) -> LazyClients:
        return LazyClients()

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyClients:
        return LazyClients()

    def __reduce__(self) -> tuple[type[LazyClients], tuple[()]]:
        return (LazyClients, ())
