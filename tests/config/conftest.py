"""Shared helpers for the config reader and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vllm_embed._settings import ENV_VAR_NAMES

FIXTURES = Path(__file__).parent / "fixtures"

# Variables the readers look at (the core's settings table) plus one the fixtures use:
# cleared so the developer's shell cannot leak into tests.
_READ_VARS = (*ENV_VAR_NAMES, "DVD_SERVER")


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
