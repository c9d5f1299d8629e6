"""Shared helpers for the config reader and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# Variables the readers look at: cleared so the developer's shell cannot leak into tests.
_READ_VARS = (
    "VLLM_EMBED_BASE_URL",
    "VLLM_EMBED_API_KEY",
    "VLLM_EMBED_MODEL",
    "VLLM_EMBED_DIMENSION",
    "VLLM_EMBED_DIMENSIONS",
    "VLLM_EMBED_TIMEOUT",
    "VLLM_EMBED_RETRIES",
    "VLLM_EMBED_BACKOFF_FACTOR",
    "VLLM_EMBED_BATCH_SIZE",
    "VLLM_EMBED_MAX_CONCURRENCY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "OPENAI_API_KEY",
    "VLLM_API_KEY",
    "DVD_SERVER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _READ_VARS:
        monkeypatch.delenv(name, raising=False)
    # These tests mock httpx with respx: every client here uses the httpx transport.
    monkeypatch.setenv("VLLM_EMBED_LEAN_HTTP", "0")
    return monkeypatch


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """Copy a fixture file into tmp_path (so tests may edit it) and return the new path."""

    def copy(name: str) -> Path:
        target = tmp_path / Path(name).name
        shutil.copy(FIXTURES / name, target)
        return target

    return copy
