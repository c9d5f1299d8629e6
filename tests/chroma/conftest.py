"""Fixtures for the Chroma adapter's tests: the respx-mounted fake vLLM (no sockets) and,
for the reopen-in-another-process test, the out-of-process fake over HTTP on 127.0.0.1."""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401
