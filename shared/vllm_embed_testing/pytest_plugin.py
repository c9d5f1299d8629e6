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
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from vllm_embed._settings import ENV_VAR_NAMES
from vllm_embed_testing.respx_vllm import mount

__all__ = ["ENV_VARS", "clean_env", "fake_vllm"]

#: Every environment variable the core and the adapters read for a setting (the core's
#: settings table, so a new variable is cleared here without anyone listing it).
ENV_VARS = ENV_VAR_NAMES


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
