"""Clients and adapter holders nobody closes release their sockets when collected.

LangChain / LlamaIndex users never close an Embeddings object, so a client dropped
without ``close()`` must close its connections itself (a ``weakref.finalize`` on the
transport) instead of leaving the sockets to the garbage collector, which would raise a
``ResourceWarning`` (an error under the test suite's warnings-as-errors). Each test uses a
client against the fake server (real sockets, the lean transport), drops it unclosed,
forces a collection and checks that every socket it opened is closed and that no
``ResourceWarning`` was raised.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Callable, Iterator

import pytest

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient
from vllm_embed._transports._lean import _Common
from vllm_embed.adapters import LazyClients
from vllm_embed_testing.fake_server import FakeEmbeddingServer

pytestmark = pytest.mark.enable_socket


@pytest.fixture(autouse=True)
def _lean_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean transport holds the sockets here: undo conftest's choice of httpx."""
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP")


@pytest.fixture(scope="module")
def srv() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(dim=8) as server:
        yield server


def _sockets(client: EmbeddingClient | AsyncEmbeddingClient) -> list[socket.socket]:
    lean = client._lean
    assert isinstance(lean, _Common)
    return [conn.sock for conn in lean._all]


def _dropped_unclosed(use: Callable[[], list[socket.socket]]) -> None:
    """Run ``use`` (returns the sockets of a client it leaves unclosed), collect, check."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        socks = use()
        assert socks, "the client opened no connection: nothing was tested"
        gc.collect()
        assert [s.fileno() for s in socks] == [-1] * len(socks), "a socket was left open"
        del socks
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


def test_sync_client_dropped_unclosed(srv: FakeEmbeddingServer) -> None:
    def use() -> list[socket.socket]:
        client = EmbeddingClient(srv.base_url, max_concurrency=2, batch_size=4)
        assert client.embed([f"t{i}" for i in range(16)]).shape == (16, 8)
        return _sockets(client)

    _dropped_unclosed(use)


def test_async_client_dropped_unclosed(srv: FakeEmbeddingServer) -> None:
    def use() -> list[socket.socket]:
        client = AsyncEmbeddingClient(srv.base_url, max_concurrency=2, batch_size=4)

        async def main() -> None:
            out = await client.embed([f"t{i}" for i in range(16)])
            assert out.shape == (16, 8)

        asyncio.run(main())
        return _sockets(client)

    _dropped_unclosed(use)


def test_adapter_holder_dropped_unclosed(srv: FakeEmbeddingServer) -> None:
    """An adapter's LazyClients (sync client plus one async client per loop)."""

    class Embeddings:  # what an adapter object holds: settings and a LazyClients
        def __init__(self) -> None:
            self._clients = LazyClients()
            self._kwargs = {"base_url": srv.base_url}
            self.me = self  # a reference cycle, as framework objects often have

    def use() -> list[socket.socket]:
        emb = Embeddings()
        sync = emb._clients.sync(emb._kwargs)
        assert sync.embed(["a", "b"]).shape == (2, 8)

        async def main() -> list[socket.socket]:
            client = emb._clients.for_running_loop(emb._kwargs)
            assert (await client.embed(["c"])).shape == (1, 8)
            return _sockets(client)

        return _sockets(sync) + asyncio.run(main())

    _dropped_unclosed(use)
