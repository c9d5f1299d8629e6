"""Fixtures for the ``vllm-embed doctor`` tests: one file per store family or server kind,
each run by the nox session that installs its libraries (test_cli.py: unit; test_live.py:
contract; test_file_stores.py: migrate; test_chroma_kano.py: stores; test_qdrant_sqlitevec.py:
qdrant_sqlitevec; test_lancedb_milvus.py: lancedb_milvus; test_live_faiss.py: migrate_live;
test_pgvector.py: pgvector).

Here only fixtures whose modules need nothing beyond the core: the respx-mounted fake
vLLM, its client (``client``) and ``clean_env`` (autouse) from
vllm_embed_testing.pytest_plugin; the live vLLM servers (vllm_embed_testing.vllm) and
Postgres (vllm_embed_testing.postgres: ``pg_server``, a fresh database ``db``), started
only by the tests that ask, once per pytest session (the session's own folder and this
one share the instance). The store makers are the ``<suite>_support.py`` modules of the
store suites' folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vllm_embed_testing.postgres import db, pg_server  # noqa: F401 (fixtures)
from vllm_embed_testing.pytest_plugin import (  # noqa: F401 (fixtures; clean_env: autouse)
    clean_env,
    fake_vllm,
)
from vllm_embed_testing.pytest_plugin import fake_vllm_client as client  # noqa: F401
from vllm_embed_testing.vllm import (  # noqa: F401 (fixtures)
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)

# the store makers of the suites whose stores are judged here (appended: a test module of
# those folders never shadows one of this folder)
_TESTS = Path(__file__).resolve().parents[1]
sys.path.extend(
    str(_TESTS / name)
    for name in (
        "stores",
        "migrate",
        "qdrant_sqlitevec",
        "stores_lancedb_milvus",
        "migrate_live",
        "pgvector",
    )
)
