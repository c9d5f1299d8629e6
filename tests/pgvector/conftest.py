"""Fixtures for the pgvector migration tests: a REAL Postgres 16 + pgvector (PyPI ``pgserver``,
started once per session, failing with its log if it will not start), a fresh database per
test, the fast fake vLLM in its own process, and the real applications in ``pg_apps.py``
(helpers: ``pgvector_support.py``).
Sockets: loopback only (the nox session passes ``--allow-hosts=127.0.0.1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pgvector_support import NEW_DIM, app

from vllm_embed import EmbeddingClient, RetryPolicy
from vllm_embed_testing.fake_server import FakeEmbeddingServer
from vllm_embed_testing.postgres import db, pg_server
from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse)
from vllm_embed_testing.vllm import vllm_server, vllm_server_pool, vllm_server_python

__all__ = ["db", "pg_server", "vllm_server", "vllm_server_pool", "vllm_server_python"]


@pytest.fixture
def fake() -> Iterator[FakeEmbeddingServer]:
    server = FakeEmbeddingServer(dim=NEW_DIM)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake: FakeEmbeddingServer) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(fake.base_url, retry=RetryPolicy(max_attempts=1), batch_size=32) as c:
        yield c


@pytest.fixture
def run_app() -> Callable[..., Any]:
    return app
