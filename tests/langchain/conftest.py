"""Fixtures for the LangChain adapter's unit tests (respx-mocked vLLM, sockets disabled)."""

from __future__ import annotations

import importlib.util

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401

# The standard suite needs PyPI's langchain-tests, which the langchain-core 0.3.* matrix
# entry does not install: leave that one file out of collection there (not a skip).
collect_ignore = [] if importlib.util.find_spec("langchain_tests") else ["test_standard.py"]
# ContextualCompressionRetriever moved to langchain-classic, installed with the latest entry.
if not importlib.util.find_spec("langchain_classic"):
    collect_ignore.append("test_rerank_retriever.py")
