"""Fixtures for the LanceDB and Milvus migration tests (nox session ``lancedb_milvus``):
the respx-mounted fake vLLM, its client and ``failing_after`` (from
vllm_embed_testing.pytest_plugin), one live vLLM server for the session's live tests
(vllm_embed_testing.vllm: a server that will not start fails the run with its log) and
one real Milvus server for the session (vllm_embed_testing.milvus_server: the same).

The store helpers of tests/stores (``listing``, ``embedded_texts``, ``texts``) and the
facts of tests/migrate_live are reused from their folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vllm_embed_testing.milvus_server import milvus_server  # noqa: F401 (fixture)
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

_TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "stores"))
sys.path.insert(0, str(_TESTS / "migrate_live"))

from milvus_server_support import milvus_db, milvus_default  # noqa: E402, F401 (fixtures)
