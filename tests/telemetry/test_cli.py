"""``vllm-embed embed`` / ``migrate`` with ``--metrics-port`` and ``--otel``: the installed
command in its own process (its own global tracer provider and registry)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from telemetry_support import DIM, KEY, MODEL

from vllm_embed_testing.fake_server import FakeEmbeddingServer

CLI = str(Path(sys.executable).parent / "vllm-embed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_EMBED_", "OTEL_"))}
    return {**env, "VLLM_EMBED_API_KEY": KEY, **extra}


def _jsonl(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(n)))
    return path


def test_embed_serves_metrics_while_running(tmp_path: Path) -> None:
    port = _free_port()
    rows = 8
    # slow enough (0.25 s per one-row request, one at a time) to be scraped mid-run
    with FakeEmbeddingServer(dim=DIM, model=MODEL, api_key=KEY, delay=0.25) as slow:
        proc = subprocess.Popen(
            [
                CLI, "embed", str(_jsonl(tmp_path / "in.jsonl", rows)), str(tmp_path / "out"),
                "--base-url", slow.base_url, "--batch-size", "1", "--max-concurrency", "1",
                "--metrics-port", str(port), "--quiet",
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        scraped = ""
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if 'route="embeddings"' in scraped:
                    break
                time.sleep(0.05)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"metrics on http://127.0.0.1:{port}/metrics" in stderr
    line = next(
        ln for ln in scraped.splitlines() if ln.startswith("vllm_embed_requests_total{")
        and 'route="embeddings"' in ln
    )  # fmt: skip
    assert f'endpoint="{slow.base_url}"' in line and f'model="{MODEL}"' in line
    assert 'status="200"' in line and float(line.rsplit(" ", 1)[1]) >= 1
    assert KEY not in scraped
    # the server is gone with the run
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the metrics server outlived the run")


def _console_spans(stdout: str) -> list[dict[str, object]]:
    """The spans ConsoleSpanExporter printed (one JSON object each, among other output)."""
    decoder = json.JSONDecoder()
    spans, i = [], 0
    while (i := stdout.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(stdout, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            spans.append(obj)
        i = end
    return spans


def test_embed_otel_exports_spans(server: FakeEmbeddingServer, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            CLI, "embed", str(_jsonl(tmp_path / "in.jsonl", 5)), str(tmp_path / "out"),
            "--base-url", server.base_url, "--batch-size", "2", "--otel", "--quiet",
        ],
        env=_env(OTEL_TRACES_EXPORTER="console"),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    spans = _console_spans(out.stdout)
    calls = [s for s in spans if s["name"] == f"embeddings {MODEL}"]
    assert calls, out.stdout[:2000]
    call = calls[0]
    assert call["attributes"]["gen_ai.operation.name"] == "embeddings"  # type: ignore[index]
    assert call["resource"]["attributes"]["service.name"] == "vllm-embed"  # type: ignore[index]
    posts = [s for s in spans if s["name"] == "POST"]
    call_ids = {c["context"]["span_id"] for c in calls}  # type: ignore[index]
    assert posts and all(p["parent_id"] in call_ids for p in posts)
    assert sum(c["attributes"]["vllm_embed.inputs"] for c in calls) == 5  # type: ignore[index,misc]


def test_migrate_otel_exports_spans(server: FakeEmbeddingServer, tmp_path: Path) -> None:
    import numpy as np
    from nano_vectordb import NanoVectorDB

    store = tmp_path / "database.json"
    db = NanoVectorDB(8, storage_file=str(store))
    rng = np.random.default_rng(0)
    db.upsert(
        [
            {
                "__id__": f"c{i}",
                "__vector__": rng.random(8, dtype=np.float32),
                "caption": f"clip {i}",
            }
            for i in range(6)
        ]
    )
    db.save()
    out = subprocess.run(
        [CLI, "migrate", str(store), "--base-url", server.base_url, "--yes", "--otel"],
        env=_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="my-migration"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    spans = _console_spans(out.stdout)
    calls = [s for s in spans if s["name"] == f"embeddings {MODEL}"]
    assert calls, out.stdout[:2000]
    assert calls[0]["resource"]["attributes"]["service.name"] == "my-migration"  # type: ignore[index]
    assert calls[0]["attributes"]["gen_ai.embeddings.dimension.count"] == DIM  # type: ignore[index]
    assert json.loads(store.read_text())["embedding_dim"] == DIM  # migrated for real


def test_otel_without_exporter_names_the_package(
    server: FakeEmbeddingServer, tmp_path: Path
) -> None:
    out = subprocess.run(
        [
            CLI, "embed", str(_jsonl(tmp_path / "in.jsonl", 2)), str(tmp_path / "out"),
            "--base-url", server.base_url, "--otel", "--quiet",
        ],
        env=_env(OTEL_TRACES_EXPORTER="otlp"),  # opentelemetry-exporter-otlp: not installed
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert "pip install opentelemetry-exporter-otlp" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
