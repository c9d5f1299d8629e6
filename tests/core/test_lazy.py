"""LazyClients: built on first use, one async client per event loop, closes what it built,
copies and pickles start empty."""

from __future__ import annotations

import asyncio
import copy
import pickle
from typing import Any

import pytest

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient
from vllm_embed.adapters import LazyClients

KWARGS = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "batch_size": 7}


def test_nothing_is_built_until_used() -> None:
    clients = LazyClients()
    assert clients.built == 0
    assert repr(clients) == "LazyClients(built=0)"


def test_sync_client_is_built_once_from_a_mapping() -> None:
    clients = LazyClients()
    first = clients.sync(KWARGS)
    assert isinstance(first, EmbeddingClient)
    assert first._batch_size == 7
    assert clients.sync(KWARGS) is first
    assert clients.built == 1


def test_callable_kwargs_are_read_when_the_client_is_built() -> None:
    settings: dict[str, Any] = dict(KWARGS)
    calls = []

    def kwargs() -> dict[str, Any]:
        calls.append(1)
        return settings

    clients = LazyClients()
    settings["batch_size"] = 3
    assert clients.sync(kwargs)._batch_size == 3
    clients.sync(kwargs)
    assert len(calls) == 1


def test_close_closes_the_sync_client_and_the_next_use_builds_a_new_one() -> None:
    clients = LazyClients()
    first = clients.sync(KWARGS)
    clients.close()
    assert first._closed
    assert clients.built == 0
    second = clients.sync(KWARGS)
    assert second is not first and not second._closed
    clients.close()
    clients.close()  # closing twice is harmless


def test_one_async_client_per_event_loop() -> None:
    clients = LazyClients()

    async def get() -> AsyncEmbeddingClient:
        client = clients.for_running_loop(KWARGS)
        assert clients.for_running_loop(KWARGS) is client
        return client

    a = asyncio.run(get())
    b = asyncio.run(get())
    assert isinstance(a, AsyncEmbeddingClient)
    assert a is not b


async def test_aclose_closes_the_running_loops_client() -> None:
    clients = LazyClients()
    client = clients.for_running_loop(KWARGS)
    assert clients.built == 1
    await clients.aclose()
    assert client._closed
    assert clients.built == 0
    await clients.aclose()  # nothing left: no error


def test_async_client_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        LazyClients().for_running_loop(KWARGS)


@pytest.mark.parametrize(
    "clone", [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))]
)
def test_copies_and_pickles_are_empty(clone: Any) -> None:
    clients = LazyClients()
    built = clients.sync(KWARGS)
    other = clone(clients)
    assert isinstance(other, LazyClients)
    assert other.built == 0
    assert other.sync(KWARGS) is not built
    assert clients.sync(KWARGS) is built
