"""Live migrations: stores written by their real libraries, migrated on the live vLLM CPU
server, then queried through the real library (nox session ``migrate_live``).

Servers come from :mod:`vllm_embed_testing.vllm` (a start failure fails the run with the
server log; nothing skips). Sockets are allowed, to 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vllm_embed import EmbeddingClient
from vllm_embed_testing.vllm import (  # noqa: F401 (fixtures)
    LiveServer,
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)

# the store makers of the unit suites
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stores"))


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
