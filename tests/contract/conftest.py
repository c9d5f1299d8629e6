"""Contract tests: everything here talks to a live vLLM CPU server over HTTP.

The servers come from :mod:`vllm_embed_testing.vllm` (started lazily, once per
session; a start failure fails the run with the server log, it never skips).
Every test here may use sockets, and only to 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from vllm_embed_testing.pytest_plugin import make_async_client, make_client
from vllm_embed_testing.vllm import (
    vllm_matryoshka_server,
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
    vllm_token_embed_server,
)

__all__ = [
    "make_async_client",
    "make_client",
    "vllm_matryoshka_server",
    "vllm_server",
    "vllm_server_pool",
    "vllm_server_python",
    "vllm_token_embed_server",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/contract" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.contract)
            item.add_marker(pytest.mark.enable_socket)


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """The examples run in-process (runpy) set VLLM_EMBED_API_KEY as a user's script would;
    it must not leak into later tests (a doctor test's wrong key would be overridden)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
