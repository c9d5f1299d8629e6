"""Contract tests: everything here talks to a live vLLM CPU server over HTTP.

The servers come from :mod:`vllm_embed_testing.vllm` (started lazily, once per
session; a start failure fails the run with the server log, it never skips).
Every test here may use sockets, and only to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient
from vllm_embed_testing.vllm import (
    LiveServer,
    vllm_matryoshka_server,
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)

__all__ = [
    "vllm_matryoshka_server",
    "vllm_server",
    "vllm_server_pool",
    "vllm_server_python",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/contract" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.contract)
            item.add_marker(pytest.mark.enable_socket)


@pytest.fixture
def make_client() -> Iterator[Callable[..., EmbeddingClient]]:
    """``make_client(server, **settings)``: an EmbeddingClient closed after the test."""
    made: list[EmbeddingClient] = []

    def factory(server: LiveServer, **kwargs: Any) -> EmbeddingClient:
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("instructions", None)
        client = EmbeddingClient(kwargs.pop("base_url", server.base_url), **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
async def make_async_client() -> Any:
    """``make_async_client(server, **settings)``: an AsyncEmbeddingClient, closed after."""
    made: list[AsyncEmbeddingClient] = []

    def factory(server: LiveServer, **kwargs: Any) -> AsyncEmbeddingClient:
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("instructions", None)
        client = AsyncEmbeddingClient(kwargs.pop("base_url", server.base_url), **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()
