"""Fixtures shared by the adapter and migration unit tests (respx-mounted fake vLLM).

Nothing here is registered globally, so nothing is autouse outside the suites that ask:
a suite's ``conftest.py`` imports the fixtures it wants, and imported fixtures apply to
that directory only::

    from vllm_embed_testing.pytest_plugin import clean_env, fake_vllm  # noqa: F401
    from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401  (renamed)

- ``clean_env`` (autouse where imported): the developer's ``VLLM_EMBED_*`` / OpenAI
  variables are removed, so tests choose their key, URL and settings explicitly; and
  clients use the httpx transport (``VLLM_EMBED_LEAN_HTTP=0``), the one respx mocks.
- ``fake_vllm``: the project's fake vLLM (:func:`vllm_embed_testing.respx_vllm.mount`
  defaults: ``BASE_URL``, ``DIM``, ``MODEL``, API key required); the route records calls.
- ``fake_vllm_client``: an :class:`~vllm_embed.EmbeddingClient` for that fake (its key,
  no retries so fault tests stay fast), closed after the test (the migration suites
  import it as ``client``).
- ``failing_after``: ``failing_after(route, n)`` makes a respx route refuse connections
  once it has embedded ``n`` texts (interrupted-migration tests).
- ``fake_servers``: fake servers in their own processes (real HTTP on 127.0.0.1, dim 16);
  ``@pytest.mark.servers(n, **options)`` (a marker of the root pytest config) sets how many
  (the `vllm-embed embed` and Ray suites).
- ``make_client`` / ``make_async_client``: ``make_client(server, **settings)`` builds a
  client for a live server (:class:`vllm_embed_testing.vllm.LiveServer`: its URL and key,
  no instructions unless given), closed after the test (contract and live suites).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient, RetryPolicy
from vllm_embed._settings import ENV_VAR_NAMES
from vllm_embed_testing.fake_server import FakeEmbeddingServer
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, mount

if TYPE_CHECKING:
    from vllm_embed_testing.vllm import LiveServer

__all__ = [
    "ENV_VARS",
    "clean_env",
    "failing_after",
    "fake_servers",
    "fake_vllm",
    "fake_vllm_client",
    "make_async_client",
    "make_client",
]

#: Every environment variable the core and the adapters read for a setting (the core's
#: settings table, so a new variable is cleared here without anyone listing it).
ENV_VARS = ENV_VAR_NAMES
#: The dimension of the ``fake_servers`` fixture's servers.
FAKE_SERVERS_DIM = 16


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their key and URL explicitly; the developer's environment must not leak in."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLLM_EMBED_LEAN_HTTP", "0")  # respx mocks httpx: use that transport


@pytest.fixture
def fake_vllm() -> Iterator[respx.Route]:
    """A fake vLLM at respx_vllm.BASE_URL (bytes/base64/float, API key required); the route
    records the calls."""
    with respx.mock(assert_all_called=False) as router:
        yield mount(router)


@pytest.fixture
def fake_vllm_client() -> Iterator[EmbeddingClient]:
    """A client for the respx fake at ``BASE_URL``; no retries so fault tests stay fast."""
    with EmbeddingClient(BASE_URL, api_key=API_KEY, retry=RetryPolicy(max_attempts=1)) as c:
        yield c


@pytest.fixture
def failing_after() -> Callable[[respx.Route, int], None]:
    """Make ``route`` refuse connections once it has embedded ``n`` texts (answered 200);
    the original answer stays reachable as ``route.side_effect.answer``."""

    def install(route: respx.Route, n: int) -> None:
        answer = route.side_effect
        assert callable(answer)
        sent = {"texts": 0}

        def side_effect(request: httpx.Request) -> httpx.Response:
            embeddings = request.url.path.endswith("/embeddings")
            batch = json.loads(request.content)["input"] if embeddings else []
            if sent["texts"] + len(batch) > n:
                raise httpx.ConnectError("connection refused", request=request)
            response: httpx.Response = answer(request)
            if response.status_code == 200:
                sent["texts"] += len(batch)
            return response

        side_effect.answer = answer  # type: ignore[attr-defined]
        route.side_effect = side_effect

    return install


def _live_kwargs(server: LiveServer, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kwargs.setdefault("api_key", server.api_key)
    kwargs.setdefault("instructions", None)
    return kwargs.pop("base_url", server.base_url), kwargs


@pytest.fixture
def make_client() -> Iterator[Callable[..., EmbeddingClient]]:
    """``make_client(server, **settings)``: an EmbeddingClient closed after the test."""
    made: list[EmbeddingClient] = []

    def factory(server: LiveServer, **kwargs: Any) -> EmbeddingClient:
        base_url, settings = _live_kwargs(server, kwargs)
        client = EmbeddingClient(base_url, **settings)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
async def make_async_client() -> AsyncIterator[Callable[..., AsyncEmbeddingClient]]:
    """``make_async_client(server, **settings)``: an AsyncEmbeddingClient, closed after."""
    made: list[AsyncEmbeddingClient] = []

    def factory(server: LiveServer, **kwargs: Any) -> AsyncEmbeddingClient:
        base_url, settings = _live_kwargs(server, kwargs)
        client = AsyncEmbeddingClient(base_url, **settings)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


@pytest.fixture
def fake_servers(request: pytest.FixtureRequest) -> Iterator[list[FakeEmbeddingServer]]:
    """Fake servers (dim 16) in their own processes over HTTP on 127.0.0.1;
    ``@pytest.mark.servers(n, rate_limit=...)`` sets how many (default 2) and their options."""
    marker = request.node.get_closest_marker("servers")
    count = marker.args[0] if marker and marker.args else 2
    options = dict(marker.kwargs) if marker else {}
    servers = [FakeEmbeddingServer(dim=FAKE_SERVERS_DIM, **options) for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
