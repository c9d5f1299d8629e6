"""Multi-vector and rerank: the client against what users write today, in one run.

    python benchmarks/pooling_bench.py [--quick]

Against the fake vLLM (``vllm_embed_testing.fake_server``, dimension 384, pinned to the last
core; this process on the first; repeated request bodies are answered from the fake's
cache, so the figures are the client's):

1. **multi-vector**: ``embed_multivector`` of texts of 128 tokens (126 words + [CLS], [SEP])
   through the binary path (``bytes``: one ``np.frombuffer`` per text) against the same
   requests taken as JSON floats (``encoding="float"``: what Haystack's vLLM multi-vector
   embedder does). Target: at least 10x the rate.
2. **rerank**: ``client.rerank(query, 1000 documents)`` against raw httpx posting the same
   batches to ``/rerank`` and reading the scores (client CPU, ``time.process_time``).
   Target: under 1 ms of client time per 100 documents over raw httpx.

Each figure is the median over rounds, the kinds interleaved round by round. Prints a table
and writes ``benchmarks/results/pooling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import RESULTS_DIR, cores, machine, pin

from vllm_embed import EmbeddingClient
from vllm_embed_testing.fake_server import FakeEmbeddingServer

DIM = 384
MODEL = "fake-model"


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def multivector(n: int, rounds: int, server_core: int) -> dict[str, Any]:
    words = " ".join(f"w{i}" for i in range(125))
    texts = [f"doc{t} {words}" for t in range(n)]
    runs: dict[str, list[tuple[float, float]]] = {"bytes": [], "float": []}
    with FakeEmbeddingServer(
        dim=DIM, model=MODEL, cpus=[server_core], pooling_task="token_embed"
    ) as server:
        clients = {
            "bytes": EmbeddingClient(server.base_url, model=MODEL),
            "float": EmbeddingClient(server.base_url, model=MODEL, encoding="float"),
        }
        try:
            for client in clients.values():
                rows = client.embed_multivector(texts)  # warm: connections, the fake's cache
                assert rows[0].shape == (128, DIM), rows[0].shape
            for _ in range(rounds):
                for name, client in clients.items():
                    runs[name].append(_timed(lambda c=client: c.embed_multivector(texts)))
            encodings = {name: dict(c.stats.encodings) for name, c in clients.items()}
        finally:
            for client in clients.values():
                client.close()
    out: dict[str, Any] = {"texts": n, "tokens_per_text": 128, "dim": DIM, "rows": {}}
    for name, timings in runs.items():
        wall = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings)
        out["rows"][name] = {"texts_per_s": n / wall, "cpu_ms_per_text": cpu / n * 1e3}
    out["ratio"] = out["rows"]["bytes"]["texts_per_s"] / out["rows"]["float"]["texts_per_s"]
    out["pass"] = out["ratio"] >= 10
    out["encodings_seen"] = encodings
    return out


def rerank(n_docs: int, rounds: int, server_core: int) -> dict[str, Any]:
    docs = [f"document {i} about topic {i % 17} and other words" for i in range(n_docs)]
    query = "which document is about topic 3?"
    cpus: dict[str, list[float]] = {"client.rerank": [], "raw httpx": []}
    with FakeEmbeddingServer(dim=DIM, model=MODEL, cpus=[server_core]) as server:
        client = EmbeddingClient(server.base_url, model=MODEL, max_concurrency=1)
        http = httpx.Client(timeout=60)
        batch = 256

        def raw() -> list[tuple[int, float]]:
            scored: list[tuple[int, float]] = []
            for start in range(0, n_docs, batch):
                body = {"model": MODEL, "query": query, "documents": docs[start : start + batch]}
                reply = http.post(f"{server.root_url}/rerank", json=body)
                reply.raise_for_status()
                for item in reply.json()["results"]:
                    scored.append((start + item["index"], item["relevance_score"]))
            scored.sort(key=lambda pair: -pair[1])
            return scored

        try:
            assert [r.index for r in client.rerank(query, docs)] == [i for i, _ in raw()]
            for _ in range(rounds):
                cpus["client.rerank"].append(_timed(lambda: client.rerank(query, docs))[1])
                cpus["raw httpx"].append(_timed(raw)[1])
        finally:
            client.close()
            http.close()
    ours = statistics.median(cpus["client.rerank"])
    theirs = statistics.median(cpus["raw httpx"])
    extra_ms_per_100 = (ours - theirs) * 1e3 / (n_docs / 100)
    return {
        "documents": n_docs,
        "cpu_ms": {"client.rerank": ours * 1e3, "raw httpx": theirs * 1e3},
        "extra_ms_per_100_documents": extra_ms_per_100,
        "pass": extra_ms_per_100 < 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer texts, 1 round")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "pooling.json")
    args = parser.parse_args(argv)
    client_core, server_core = cores()
    pin(client_core)
    started = time.perf_counter()
    n, rounds = (64, 1) if args.quick else (512, 5)
    results: dict[str, Any] = {
        "command": "python benchmarks/pooling_bench.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "multivector": multivector(n, rounds, server_core),
        "rerank": rerank(1000, 3 if args.quick else 9, server_core),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    mv, rr = results["multivector"], results["rerank"]
    print("\n| multi-vector (128 tokens x 384 per text) | texts/s | client CPU ms/text |")
    print("| --- | ---: | ---: |")
    for name, row in mv["rows"].items():
        label = "binary (bytes)" if name == "bytes" else "JSON floats"
        print(f"| {label} | {row['texts_per_s']:,.0f} | {row['cpu_ms_per_text']:.3f} |")
    verdict = "PASS" if mv["pass"] else "FAIL"
    print(f"\nbinary / JSON floats: {mv['ratio']:.1f}x (target >= 10x): {verdict}")
    print(f"\n| rerank of {rr['documents']} documents | client CPU ms |")
    print("| --- | ---: |")
    for name, value in rr["cpu_ms"].items():
        print(f"| {name} | {value:.2f} |")
    verdict = "PASS" if rr["pass"] else "FAIL"
    extra = rr["extra_ms_per_100_documents"]
    print(f"\nextra client time per 100 documents: {extra:.3f} ms (target < 1 ms): {verdict}")
    print(f"Results written to {args.out} ({results['seconds']} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
