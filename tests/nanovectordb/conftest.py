"""Fixtures for this adapter's unit tests (respx-mocked vLLM, sockets disabled)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from vllm_embed_testing.respx_vllm import mount


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their key and URL explicitly; the developer's environment must not leak in."""
    for name in (
        "VLLM_EMBED_API_KEY",
        "VLLM_API_KEY",
        "OPENAI_API_KEY",
        "VLLM_EMBED_BASE_URL",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[respx.Route]:
    """A fake vLLM at respx_vllm.BASE_URL (API key required); the route records calls."""
    with respx.mock(assert_all_called=False) as router:
        yield mount(router)
