"""crewAI session: the respx fake vLLM (no sockets) and crewAI's storage in a scratch
directory. crewAI fixes its Chroma directory when imported (``CREWAI_STORAGE_DIR`` under
the user data directory), so the variables are set before any test module imports it."""

from __future__ import annotations

import os
import tempfile

import pytest

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401

#: crewAI's own warnings, ignored in this session only (the root config makes every
#: warning an error): each is raised inside crewAI's modules, nothing to fix on our side.
CREWAI_WARNINGS = (
    # crewai.rag's lazy package __getattr__ trips importlib when `crewai` is imported
    "ignore:Cannot set an attribute on 'crewai.rag' for child module:ImportWarning",
    # KnowledgeStorage calls crewai.rag.factory.create_client, which crewAI deprecated
    "ignore:Use `crewai.utilities.import_utils.import_and_validate_definition` instead"
    ":DeprecationWarning",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in CREWAI_WARNINGS:
        config.addinivalue_line("filterwarnings", line)
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="crewai-data-")
    os.environ["CREWAI_STORAGE_DIR"] = "vllm-embed-tests"
    os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
    os.environ["CREWAI_TRACING_ENABLED"] = "false"
    os.environ["OTEL_SDK_DISABLED"] = "true"
