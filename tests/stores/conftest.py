"""Fixtures for the Chroma and kano migration tests: the respx-mounted fake vLLM, its
client and ``failing_after`` (shared with tests/migrate, from vllm_embed_testing.pytest_plugin).

Separate from tests/migrate because these tests need chromadb, langchain-chroma,
llama-index-vector-stores-chroma and sqlite-vec (nox session ``stores``).
"""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import (  # noqa: F401 (fixtures; clean_env: autouse)
    clean_env,
    failing_after,
    fake_vllm,
)
from vllm_embed_testing.pytest_plugin import fake_vllm_client as client  # noqa: F401
