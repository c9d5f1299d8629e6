"""Fixtures for the core client's unit tests (respx; sockets are disabled)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from _vllm_fakes import FakeServer


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's environment out of the tests."""
    for name in (
        "VLLM_EMBED_BASE_URL",
        "OPENAI_BASE_URL",
        "VLLM_EMBED_API_KEY",
        "VLLM_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as r:
        yield r


@pytest.fixture
def server(router: respx.MockRouter) -> FakeServer:
    return FakeServer(router)
