"""Fixtures for the Chroma adapter's tests: the respx-mounted fake vLLM (no sockets) and,
for the reopen-in-another-process test, the out-of-process fake over HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Python 3.13 reports sqlite3 connections collected unclosed; chromadb's own
    # PersistentClient keeps its sysdb connections until the garbage collector ends them
    # (seen in the migrate tests, which open and drop clients as apps do). Not ours: the
    # migration's own connection is closed (contextlib.closing).
    mark = pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <sqlite3.Connection:pytest.PytestUnraisableExceptionWarning"
    )
    for item in items:
        item.add_marker(mark)
