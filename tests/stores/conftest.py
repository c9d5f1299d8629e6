"""Fixtures for the Chroma and kano migration tests: the respx-mounted fake vLLM.

Separate from tests/migrate because these tests need chromadb, langchain-chroma,
llama-index-vector-stores-chroma and sqlite-vec (nox session ``stores``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import respx

from vllm_embed import EmbeddingClient, RetryPolicy
from vllm_embed_testing.pytest_plugin import clean_env, fake_vllm  # noqa: F401 (clean_env: autouse)
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL


@pytest.fixture
def failing_after() -> Callable[[respx.Route, int], None]:
    """Make ``route`` refuse connections once it has embedded ``n`` texts (answered 200)."""

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


@pytest.fixture
def client() -> Iterator[EmbeddingClient]:
    """A client for the fake server; no retries so fault tests stay fast."""
    with EmbeddingClient(BASE_URL, api_key=API_KEY, retry=RetryPolicy(max_attempts=1)) as c:
        yield c
