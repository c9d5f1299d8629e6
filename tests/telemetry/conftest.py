"""Fixtures for the telemetry tests: the real OpenTelemetry SDK with its in-memory span
exporter, fresh Prometheus registries, and fake vLLM servers over real HTTP.

The SDK's tracer provider is process-global and can be set once: it is set for the whole
session and each test reads (and clears) the exporter.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from telemetry_support import DIM, KEY, MODEL

from vllm_embed._settings import ENV_VAR_NAMES
from vllm_embed_testing.fake_server import FakeEmbeddingServer

_EXPORTER = InMemorySpanExporter()


def pytest_configure(config: pytest.Config) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VAR_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP", raising=False)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """The session's in-memory exporter, empty at the start of the test."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of this test's own."""
    return CollectorRegistry()


@pytest.fixture(scope="session")
def server() -> Iterator[FakeEmbeddingServer]:
    """A well-behaved fake vLLM (API key required), shared by the session."""
    with FakeEmbeddingServer(dim=DIM, model=MODEL, api_key=KEY) as s:
        yield s
