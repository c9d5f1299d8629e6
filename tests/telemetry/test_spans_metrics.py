"""Spans (read back from opentelemetry-sdk's in-memory exporter) and Prometheus metrics
(read back from a CollectorRegistry) of real clients against fake vLLM servers over HTTP."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    server_attributes,
    url_attributes,
)
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from telemetry_support import DIM, KEY, MODEL

from vllm_embed import (
    AsyncEmbeddingClient,
    EmbeddingClient,
    RetryPolicy,
    ServerError,
)
from vllm_embed_testing.fake_server import FakeEmbeddingServer

NO_WAIT = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0, jitter=0.0)


def _by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def _dead_url() -> str:
    """A loopback URL nobody listens on (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("lean", ["1", "0"], ids=["lean", "httpx"])
def test_embed_call_span_with_request_children(
    server: FakeEmbeddingServer,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    lean: str,
) -> None:
    monkeypatch.setenv("VLLM_EMBED_LEAN_HTTP", lean)
    texts = [f"text number {i}" for i in range(10)]
    with EmbeddingClient(
        server.base_url, api_key=KEY, tracing=True, batch_size=4, max_concurrency=3
    ) as client:
        result = client.embed_with_info(texts)
    spans = exporter.get_finished_spans()
    (call,) = _by_name(spans, "embeddings")
    posts = _by_name(spans, "POST")
    gets = _by_name(spans, "GET")
    assert len(posts) == 3  # 10 texts in batches of 4
    assert [s.attributes[url_attributes.URL_FULL] for s in gets] == [server.base_url + "/models"]
    # every request, in the worker threads too, is a child of the call's span
    for child in posts + gets:
        assert child.parent is not None and child.parent.span_id == call.context.span_id
        assert child.context.trace_id == call.context.trace_id
        assert child.kind is SpanKind.CLIENT
    host, port = _host_port(server.base_url)
    attrs = call.attributes
    assert call.name == f"embeddings {MODEL}"  # model discovered during the call
    assert call.kind is SpanKind.CLIENT
    assert attrs[GA.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[GA.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[GA.GEN_AI_RESPONSE_MODEL] == MODEL
    assert attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == result.prompt_tokens > 0
    assert attrs[GA.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == DIM
    assert attrs[GA.GEN_AI_REQUEST_ENCODING_FORMATS] == ("bytes",)
    assert attrs[GA.GEN_AI_PROVIDER_NAME] == "vllm"
    assert attrs[server_attributes.SERVER_ADDRESS] == host
    assert attrs[server_attributes.SERVER_PORT] == port
    assert attrs["vllm_embed.inputs"] == 10
    assert call.status.status_code is StatusCode.UNSET
    for post in posts:
        assert post.attributes[http_attributes.HTTP_REQUEST_METHOD] == "POST"
        assert post.attributes[http_attributes.HTTP_RESPONSE_STATUS_CODE] == 200
        assert post.attributes[url_attributes.URL_FULL] == server.base_url + "/embeddings"
        assert post.attributes[server_attributes.SERVER_PORT] == port
        assert error_attributes.ERROR_TYPE not in post.attributes


def test_model_given_names_the_span_from_the_start(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter
) -> None:
    with EmbeddingClient(server.base_url, api_key=KEY, model=MODEL, tracing=True) as client:
        vector = client.embed_query("what is a span?")
    assert vector.shape == (DIM,)
    spans = exporter.get_finished_spans()
    (call,) = _by_name(spans, "embeddings")
    assert call.name == f"embeddings {MODEL}"
    assert call.attributes["vllm_embed.kind"] == "query"
    # the model was given; max_model_len is still discovered, inside the call
    (models,) = _by_name(spans, "GET")
    assert models.attributes[url_attributes.URL_FULL] == server.base_url + "/models"
    assert len(_by_name(spans, "POST")) == 1
    assert all(s.parent and s.parent.span_id == call.context.span_id for s in spans if s != call)


def test_async_client_spans_and_metrics(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    async def run() -> Any:
        async with AsyncEmbeddingClient(
            server.base_url,
            api_key=KEY,
            tracing=True,
            metrics=registry,
            batch_size=2,
            max_concurrency=2,
        ) as client:
            await client.embed_query("one query")
            return await client.embed_with_info(["a", "b", "c", "d", "e"])

    result = asyncio.run(run())
    labels = {"endpoint": server.base_url, "model": MODEL}
    assert _sample(registry, "vllm_embed_vectors_total", **labels) == 6
    ok = _sample(registry, "vllm_embed_requests_total", **labels, route="embeddings", status="200")
    assert ok == 4
    for kind in ("query", "raw"):
        count = _sample(registry, "vllm_embed_embed_duration_seconds_count", model=MODEL, kind=kind)
        assert count == 1, kind
    spans = exporter.get_finished_spans()
    calls = _by_name(spans, "embeddings")
    assert sorted(c.attributes["vllm_embed.kind"] for c in calls) == ["query", "raw"]
    (call,) = [c for c in calls if c.attributes["vllm_embed.kind"] == "raw"]
    posts = [p for p in _by_name(spans, "POST") if p.parent.span_id == call.context.span_id]
    assert len(posts) == 3
    assert all(p.parent and p.parent.span_id == call.context.span_id for p in posts)
    assert call.attributes[GA.GEN_AI_USAGE_INPUT_TOKENS] == result.prompt_tokens > 0
    assert call.attributes[GA.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == DIM


def test_failed_call_error_spans_retries_counted(
    exporter: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    with (
        FakeEmbeddingServer(dim=DIM, model=MODEL, fail_after=0, fail_mode=503) as bad,
        EmbeddingClient(
            bad.base_url, model=MODEL, tracing=True, metrics=registry, retry=NO_WAIT
        ) as client,
    ):
        with pytest.raises(ServerError):
            client.embed(["doomed"])
        # /models (max_model_len, given up on after its retries) and /embeddings: 2 each
        assert client.stats.retries == 4
    spans = exporter.get_finished_spans()
    (call,) = _by_name(spans, "embeddings")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes[error_attributes.ERROR_TYPE] == "ServerError"
    assert any(e.name == "exception" for e in call.events)
    posts = _by_name(spans, "POST")
    assert len(posts) == 3  # three attempts
    for post in posts:
        assert post.status.status_code is StatusCode.ERROR
        assert post.attributes[http_attributes.HTTP_RESPONSE_STATUS_CODE] == 503
        assert post.attributes[error_attributes.ERROR_TYPE] == "503"
    ep = bad.base_url
    labels = {"endpoint": ep, "model": MODEL}
    assert _sample(registry, "vllm_embed_retries_total", **labels) == 4
    assert (
        _sample(registry, "vllm_embed_requests_total", **labels, route="models", status="503") == 3
    )
    assert (
        _sample(registry, "vllm_embed_requests_total", **labels, route="embeddings", status="503")
        == 3
    )
    assert _sample(registry, "vllm_embed_vectors_total", **labels) == 0
    assert (
        _sample(registry, "vllm_embed_embed_duration_seconds_count", model=MODEL, kind="raw") == 0
    )


def test_metrics_per_endpoint_and_failover(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    dead = _dead_url()
    texts = [f"doc {i}" for i in range(12)]
    with EmbeddingClient(
        [dead, server.base_url],
        api_key=KEY,
        model=MODEL,
        metrics=registry,
        tracing=True,
        batch_size=4,
        max_concurrency=1,
        retry=NO_WAIT,
    ) as client:
        result = client.embed_with_info(texts)
    live = {"endpoint": server.base_url, "model": MODEL}
    assert _sample(registry, "vllm_embed_failovers_total", endpoint=dead, model=MODEL) >= 1
    assert _sample(registry, "vllm_embed_failovers_total", **live) == 0
    assert _sample(registry, "vllm_embed_vectors_total", **live) == 12
    assert _sample(registry, "vllm_embed_input_tokens_total", **live) == result.prompt_tokens > 0
    ok = _sample(registry, "vllm_embed_requests_total", **live, route="embeddings", status="200")
    assert ok == 3
    assert (
        _sample(registry, "vllm_embed_request_duration_seconds_count", **live, route="embeddings")
        == 3
    )
    assert (
        _sample(registry, "vllm_embed_embed_duration_seconds_count", model=MODEL, kind="raw") == 1
    )
    # the first request (GET /models, for max_model_len) found the dead one first
    refused = [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.CLIENT
        and str(s.attributes.get(url_attributes.URL_FULL, "")).startswith(dead)
    ]
    assert refused, "the refused request has its own span"
    route = str(refused[0].attributes[url_attributes.URL_FULL]).rsplit("/", 1)[1]
    assert refused[0].status.status_code is StatusCode.ERROR
    error_type = refused[0].attributes[error_attributes.ERROR_TYPE]
    assert "Connect" in error_type  # httpx.ConnectError (the transport's error, by class)
    assert (
        _sample(
            registry,
            "vllm_embed_requests_total",
            endpoint=dead,
            model=MODEL,
            route=route,
            status=error_type,
        )
        >= 1
    )


def test_cache_hits_and_misses(
    server: FakeEmbeddingServer, registry: CollectorRegistry, tmp_path: Path
) -> None:
    with EmbeddingClient(
        server.base_url, api_key=KEY, metrics=registry, cache=tmp_path / "cache.sqlite"
    ) as client:
        client.embed(["alpha", "beta", "beta"])
        client.embed(["alpha", "gamma", "delta"])
        stats = client.stats
    assert stats.cache_hits == 1 and stats.cache_misses == 4
    assert _sample(registry, "vllm_embed_cache_hits_total", model=MODEL) == stats.cache_hits
    assert _sample(registry, "vllm_embed_cache_misses_total", model=MODEL) == stats.cache_misses


def test_clients_share_a_registry(server: FakeEmbeddingServer, registry: CollectorRegistry) -> None:
    for _ in range(2):  # a second client must not register the metrics again (duplicate error)
        with EmbeddingClient(server.base_url, api_key=KEY, model=MODEL, metrics=registry) as c:
            c.embed(["x", "y"])
    labels = {"endpoint": server.base_url, "model": MODEL}
    assert _sample(registry, "vllm_embed_vectors_total", **labels) == 4


def test_secrets_never_in_attributes_or_labels(
    exporter: InMemorySpanExporter, registry: CollectorRegistry
) -> None:
    password = "pw-in-url-81c2"
    with FakeEmbeddingServer(dim=DIM, model=MODEL) as server:  # the URL's credentials: ignored
        url = server.base_url.replace("http://", f"http://user:{password}@")
        with EmbeddingClient(
            url,
            api_key=KEY,
            headers={"X-Gateway-Token": "gw-token-7a1e"},
            tracing=True,
            metrics=registry,
        ) as client:
            client.embed(["secret-free?"])
    secrets = (KEY, password, "gw-token-7a1e", "user:")
    spans = exporter.get_finished_spans()
    assert spans
    for span in spans:
        shown = repr(dict(span.attributes or {})) + span.name
        assert not any(s in shown for s in secrets), shown
    samples = [s for metric in registry.collect() for s in metric.samples]
    assert samples
    for sample in samples:
        assert not any(s in repr(sample.labels) for s in secrets), sample
    endpoints = {s.labels.get("endpoint") for s in samples} - {None}
    assert endpoints == {server.base_url}
