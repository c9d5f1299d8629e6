"""Fixtures for this adapter's unit tests (respx-mocked vLLM, sockets disabled)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic_ai._utils import get_event_loop

from vllm_embed_pydantic_ai import VLLMEmbeddingModel
from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401


@pytest.fixture
def sync_models() -> Iterator[list[VLLMEmbeddingModel]]:
    """For tests of pydantic-ai's ``*_sync`` methods: they run on an event loop pydantic-ai
    creates, sets as the thread's loop and leaves open. The test appends the models it used;
    their clients on that loop are closed here, then the loop itself."""
    models: list[VLLMEmbeddingModel] = []
    yield models
    loop = get_event_loop()
    for model in models:
        loop.run_until_complete(model.aclose())
    loop.close()
    asyncio.set_event_loop(None)
