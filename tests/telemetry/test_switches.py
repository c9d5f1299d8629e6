"""Off means absent; on by argument, environment or config; missing packages named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry
from telemetry_support import KEY, MODEL

from vllm_embed import ConfigValueError, EmbeddingClient, MissingDependencyError, load_config
from vllm_embed_testing.fake_server import FakeEmbeddingServer


def test_off_imports_nothing_and_records_nothing(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter
) -> None:
    """A fresh interpreter: import + embed (both twins) leave otel and prometheus unimported."""
    code = textwrap.dedent(
        f"""
        import asyncio, json, sys
        import vllm_embed
        with vllm_embed.EmbeddingClient({server.base_url!r}, api_key={KEY!r}) as c:
            c.embed(["a", "b"])
            off = c._telemetry is None
        async def run():
            async with vllm_embed.AsyncEmbeddingClient({server.base_url!r}, api_key={KEY!r}) as a:
                await a.embed(["a"])
        asyncio.run(run())
        optional = ("opentelemetry", "prometheus_client")
        loaded = [m for m in sys.modules if m.split(".")[0] in optional]
        print(json.dumps({{"off": off, "loaded": loaded}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"off": True, "loaded": []}


def test_off_in_process_no_spans_no_metrics(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter
) -> None:
    before = {m.name for m in REGISTRY.collect()}
    with EmbeddingClient(server.base_url, api_key=KEY) as client:
        client.embed(["quiet"])
        assert client._telemetry is None
    assert exporter.get_finished_spans() == ()
    assert {m.name for m in REGISTRY.collect()} == before


def test_environment_turns_them_on(
    server: FakeEmbeddingServer, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_EMBED_TRACING", "1")
    monkeypatch.setenv("VLLM_EMBED_METRICS", "true")
    with EmbeddingClient(server.base_url, api_key=KEY, model=MODEL) as client:
        client.embed(["from env"])
    assert [s.name for s in exporter.get_finished_spans() if s.name.startswith("embeddings")] == [
        f"embeddings {MODEL}"
    ]
    labels = {"endpoint": server.base_url, "model": MODEL}
    assert (REGISTRY.get_sample_value("vllm_embed_vectors_total", labels) or 0) >= 1
    # an explicit argument wins over the environment
    with EmbeddingClient(server.base_url, api_key=KEY, tracing=False, metrics=False) as client:
        assert client._telemetry is None


@pytest.mark.parametrize("var", ["VLLM_EMBED_TRACING", "VLLM_EMBED_METRICS"])
def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "maybe")
    with pytest.raises(ConfigValueError, match=f"{var}.*true or false"):
        EmbeddingClient("http://127.0.0.1:9/v1")


def test_bad_metrics_argument() -> None:
    with pytest.raises(ConfigValueError, match="CollectorRegistry"):
        EmbeddingClient("http://127.0.0.1:9/v1", metrics="yes please")  # type: ignore[arg-type]


def test_config_file_turns_them_on(tmp_path: Path) -> None:
    config = tmp_path / "app.toml"
    config.write_text(
        '[embedding]\nbase_url = "http://127.0.0.1:9/v1"\ntracing = true\nmetrics = false\n'
    )
    loaded = load_config(config)
    assert loaded.tracing is True and loaded.metrics is False
    kwargs = loaded.client_kwargs()
    assert kwargs["tracing"] is True and kwargs["metrics"] is False
    with EmbeddingClient(**kwargs) as client:
        assert client._telemetry is not None and client._telemetry.tracer is not None
        assert client._telemetry.metrics is None


@pytest.mark.parametrize(
    ("module", "setting", "extra"),
    [
        ("opentelemetry", {"tracing": True}, "otel"),
        ("prometheus_client", {"metrics": True}, "metrics"),
    ],
)
def test_missing_package_is_named(
    monkeypatch: pytest.MonkeyPatch, module: str, setting: dict[str, bool], extra: str
) -> None:
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=rf"pip install 'vllm-embed\[{extra}\]'"):
        EmbeddingClient("http://127.0.0.1:9/v1", **setting)


def test_own_registry_leaves_the_default_alone(
    server: FakeEmbeddingServer, registry: CollectorRegistry
) -> None:
    before = REGISTRY.get_sample_value(
        "vllm_embed_vectors_total", {"endpoint": server.base_url, "model": MODEL}
    )
    with EmbeddingClient(server.base_url, api_key=KEY, model=MODEL, metrics=registry) as c:
        c.embed(["mine"])
    after = REGISTRY.get_sample_value(
        "vllm_embed_vectors_total", {"endpoint": server.base_url, "model": MODEL}
    )
    assert before == after
    labels = {"endpoint": server.base_url, "model": MODEL}
    assert registry.get_sample_value("vllm_embed_vectors_total", labels) == 1
