"""Fixtures for the core client's unit tests (respx; sockets are disabled).

``make_client`` is parametrised over both twins: every behaviour test written against it
runs once with :class:`EmbeddingClient` and once with :class:`AsyncEmbeddingClient` (whose
coroutines are driven on a private event loop), so the twins cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient
from vllm_embed._settings import ENV_VAR_NAMES
from vllm_embed_testing.respx_vllm import FakeServer


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's environment out of the tests."""
    for name in ENV_VAR_NAMES:
        monkeypatch.delenv(name, raising=False)
    # The tests here mock httpx with respx: they pick the httpx transport (the lean one has
    # its own tests against a real local server, test_lean_transport.py).
    monkeypatch.setenv("VLLM_EMBED_LEAN_HTTP", "0")


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as r:
        yield r


@pytest.fixture
def server(router: respx.MockRouter) -> FakeServer:
    return FakeServer(router)


class Twin:
    """Calls either twin synchronously: async methods run on a private loop."""

    def __init__(
        self, client: EmbeddingClient | AsyncEmbeddingClient, loop: asyncio.AbstractEventLoop | None
    ):
        self.client = client
        self.loop = loop
        self.sleeps: list[float] = []
        if loop is None:
            client._sleep = self.sleeps.append  # type: ignore[assignment]
        else:

            async def fake_sleep(seconds: float) -> None:
                self.sleeps.append(seconds)

            client._sleep = fake_sleep  # type: ignore[assignment]

    @property
    def is_async(self) -> bool:
        return self.loop is not None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr) or self.loop is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                assert self.loop is not None
                return self.loop.run_until_complete(result)
            return result

        return call

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())  # type: ignore[union-attr]


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., Twin]]:
    """``make_client(base_url, **settings) -> Twin`` for the twin under test."""
    made: list[Twin] = []
    loop = asyncio.new_event_loop() if request.param == "async" else None
    cls = AsyncEmbeddingClient if request.param == "async" else EmbeddingClient

    def make(*args: Any, **kwargs: Any) -> Twin:
        kwargs.setdefault("retry", None)
        twin = Twin(cls(*args, **kwargs), loop)
        made.append(twin)
        return twin

    yield make
    for twin in made:
        twin.close()
    if loop is not None:
        loop.close()
