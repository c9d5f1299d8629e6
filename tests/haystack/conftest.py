"""Fixtures for this adapter's unit tests (respx-mocked vLLM, sockets disabled)."""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401
