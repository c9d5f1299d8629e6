"""What observability costs: the client's hot path before the hooks, with them off, and on.

    python benchmarks/telemetry_bench.py [--rounds 7] [--queries 2000] [--batches 40]

Against the fast fake server (dimension 384, pinned to the last core; every client runs in a
fresh interpreter pinned to the first), in one run, rounds interleaved (and the order
rotated each round) so a loaded machine slows every variant alike:

- ``before``: the client as it was before the telemetry hooks (the parent of the commit
  that added ``vllm_embed/_telemetry.py``, extracted with ``git archive``; ``--before REF``
  picks another);
- ``off``: this tree, ``tracing`` and ``metrics`` off (the default);
- ``metrics``: ``metrics=CollectorRegistry()``;
- ``tracing``: ``tracing=True`` under opentelemetry-sdk's ``TracerProvider`` with one
  ``SimpleSpanProcessor`` into a discarding exporter (spans made and ended, not shipped);
- ``both``.

Workloads: ``embed_query`` of one short text, sequentially (µs per call: where a fixed
per-call cost shows most), and ``embed`` of 256 texts per call (vectors/s). Wall time
includes the server's share (noisy on a shared machine); the client's own CPU time per
call (``time.process_time``; the server is another process) is the cost itself. Each
figure is the median over rounds. Needs opentelemetry-sdk and prometheus-client (``nox -s
telemetry`` has both: run it with that session's python). Prints a table and writes
``benchmarks/results/telemetry.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "telemetry.json"
SRC = ROOT / "packages" / "vllm-embed" / "src"
sys.path.insert(0, str(ROOT / "shared"))

DIM = 384
KEY = "sk-bench-telemetry"
MODEL = "fake-model"
VARIANTS = ("before", "off", "metrics", "tracing", "both")
BATCH = 256


def _cores() -> tuple[int, int]:
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[-1]


def _before_ref() -> str:
    module = str(SRC / "vllm_embed" / "_telemetry.py")
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", module],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise SystemExit("no commit adds vllm_embed/_telemetry.py here; pass --before REF")
    return f"{added[-1]}^"


def _extract(ref: str, into: Path) -> Path:
    """The core package's src/ at ``ref``, extracted under ``into``."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", ref, "packages/vllm-embed/src"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "packages" / "vllm-embed" / "src"


# -- the worker (a fresh interpreter per variant and round) ---------------------------------


def worker(spec: dict[str, Any]) -> dict[str, float]:
    os.sched_setaffinity(0, {spec["core"]})
    import vllm_embed

    assert Path(vllm_embed.__file__).resolve().is_relative_to(Path(spec["src"]).resolve())
    variant = spec["variant"]
    kwargs: dict[str, Any] = {}
    if variant in ("metrics", "both"):
        from prometheus_client import CollectorRegistry

        kwargs["metrics"] = CollectorRegistry()
    if variant in ("tracing", "both"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(Discard()))
        trace.set_tracer_provider(provider)
        kwargs["tracing"] = True
    texts = [f"benchmark text number {i} about vector search" for i in range(BATCH)]
    with vllm_embed.EmbeddingClient(
        spec["base_url"], api_key=KEY, model=MODEL, instructions=None, **kwargs
    ) as client:
        for _ in range(50):  # warm: connections, encoding negotiation, max_model_len
            client.embed_query("warm up")
        client.embed(texts)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(spec["queries"]):
            client.embed_query("what does observability cost?")
        query_us = (time.perf_counter() - started) / spec["queries"] * 1e6
        query_cpu_us = (time.process_time() - cpu) / spec["queries"] * 1e6
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(spec["batches"]):
            client.embed(texts)
        vectors_s = spec["batches"] * BATCH / (time.perf_counter() - started)
        batch_cpu_us = (time.process_time() - cpu) / spec["batches"] * 1e6
    return {
        "query_us": query_us,
        "query_cpu_us": query_cpu_us,
        "vectors_per_s": vectors_s,
        "batch_cpu_us": batch_cpu_us,
    }


# -- the driver -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--before", help="git ref of the 'before' client (default: see doc)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from vllm_embed_testing.fake_server import FakeEmbeddingServer

    client_core, server_core = _cores()
    before_ref = args.before or _before_ref()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeEmbeddingServer(dim=DIM, model=MODEL, api_key=KEY, cpus=[server_core]) as server,
    ):
        before_src = _extract(before_ref, Path(tmp))
        for round_no in range(args.rounds):
            shift = round_no % len(VARIANTS)  # each variant takes every place in the order
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                src = before_src if variant == "before" else SRC
                spec = {
                    "variant": variant,
                    "src": str(src),
                    "core": client_core,
                    "base_url": server.base_url,
                    "queries": args.queries,
                    "batches": args.batches,
                }
                env = {**os.environ, "PYTHONPATH": str(src)}
                env = {k: v for k, v in env.items() if not k.startswith(("VLLM_EMBED_", "OTEL_"))}
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", json.dumps(spec)],
                    env=env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                if out.returncode != 0:
                    raise SystemExit(f"{variant} failed:\n{out.stderr}")
                runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    keys = ("query_us", "query_cpu_us", "vectors_per_s", "batch_cpu_us")
    summary = {v: {k: statistics.median(r[k] for r in runs[v]) for k in keys} for v in VARIANTS}
    base = summary["before"]
    print(f"\nclient hot path, fake server dim {DIM}, median of {args.rounds} rounds")
    print("(wall: includes the server's time; client CPU: this process only, the cost itself)")
    head = ("variant", "query wall µs", "query CPU µs", "vs before", "256: vec/s", "256: CPU µs",
            "vs before")  # fmt: skip
    print(f"{head[0]:<9}" + "".join(f"{h:>14}" for h in head[1:]))
    for v in VARIANTS:
        s = summary[v]
        print(
            f"{v:<9}{s['query_us']:>14.1f}{s['query_cpu_us']:>14.1f}"
            f"{s['query_cpu_us'] / base['query_cpu_us']:>13.3f}x"
            f"{s['vectors_per_s']:>14,.0f}{s['batch_cpu_us']:>14.1f}"
            f"{s['batch_cpu_us'] / base['batch_cpu_us']:>13.3f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "before_ref": before_ref,
                "settings": {"rounds": args.rounds, "queries": args.queries,
                             "batches": args.batches, "batch": BATCH, "dim": DIM},
                "median": summary,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
