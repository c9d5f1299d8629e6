"""Fixtures for the migration tests: a respx-mounted fake vLLM (sockets stay closed).

The stores themselves are made by the real libraries in ``migrate_support.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from vllm_embed_testing.pytest_plugin import (  # noqa: F401 (fixtures; clean_env: autouse)
    clean_env,
    failing_after,
    fake_vllm,
)
from vllm_embed_testing.pytest_plugin import fake_vllm_client as client  # noqa: F401
from vllm_embed_testing.respx_vllm import mount


@pytest.fixture
def old_vllm() -> Iterator[respx.Route]:
    """Like vLLM before 0.11: no ``bytes`` encoding, so the client negotiates down to base64."""
    with respx.mock(assert_all_called=False) as router:
        yield mount(router, encodings=["float", "base64"])
