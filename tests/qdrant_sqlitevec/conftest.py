"""Fixtures for the Qdrant and sqlite-vec migration tests (nox session ``qdrant_sqlitevec``):
the respx-mounted fake vLLM, its client and ``failing_after`` (from
vllm_embed_testing.pytest_plugin); the live tests' ``vllm_server`` (one server for the
session, started on first use, never skipped).

Separate from tests/stores because these tests need qdrant-client, langchain-qdrant,
llama-index-vector-stores-qdrant, langchain-community and sqlite-vec.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vllm_embed_testing.pytest_plugin import (  # noqa: F401 (fixtures; clean_env: autouse)
    clean_env,
    failing_after,
    fake_vllm,
    make_client,
)
from vllm_embed_testing.pytest_plugin import fake_vllm_client as client  # noqa: F401
from vllm_embed_testing.vllm import (  # noqa: F401 (fixtures)
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)

# the store helpers of the Chroma / kano suite (texts, listing, embedded_texts) and the
# live suite's facts (FACTS, QUESTION, ANSWER)
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("stores", "migrate_live")]
