"""Benchmark slow replicas: hedged ``embed_query`` and batch throughput, hedging off vs on.

    python benchmarks/replicas_bench.py [--queries 600] [--rounds 3] [--quick]

Four fake vLLM servers (``vllm_embed_testing.fake_server``, dimension 384, every one pinned
to the last core; this process runs on the first). Each answers after ``--base-delay``
seconds (default 5 ms: a small embedding model's forward pass plus vLLM's API server on a
GPU; the fake alone answers in a fraction of a millisecond); one of them also stalls for
``--stall`` seconds (default 2) on ``--stall-rate`` (default 5 %) of its requests.

1. **embed_query**: ``--queries`` queries one after another through one
   :class:`~vllm_embed.EmbeddingClient` (sync) and one ``AsyncEmbeddingClient``, with
   ``hedge=False`` and ``hedge=True`` (learned delay); p50 / p90 / p99 / max latency and
   the hedges sent and won; the off and on clients take turns, 50 queries each. Target:
   p99 within 2x of p50 with hedging on. The same with only the three healthy replicas
   (``healthy_only_*``) shows what the machine itself allows.
2. **batch**: ``embed`` of ``--n`` texts (default batch size and concurrency) with hedging
   off and on, interleaved round by round, each run with a fresh stalling replica of the
   same seed (the same of its requests stall); median vectors/s. Target: no loss with
   hedging on (at least 0.9x: batches are never hedged).

Prints a table and writes ``benchmarks/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FAKE_MODEL, RESULTS_DIR, cores, machine, pin

from vllm_embed_testing.fake_server import FakeEmbeddingServer

DIM = 384
TARGET_P99_OVER_P50 = 2.0
TARGET_BATCH_RATIO = 0.9


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=600, help="embed_query calls per run")
    parser.add_argument("--n", type=int, default=65_536, help="texts per batch run")
    parser.add_argument("--rounds", type=int, default=3, help="batch runs per setting")
    parser.add_argument("--base-delay", type=float, default=0.005, help="server seconds")
    parser.add_argument("--stall", type=float, default=2.0, help="stall seconds")
    parser.add_argument("--stall-rate", type=float, default=0.05, help="share stalled")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer calls")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "replicas.json")
    return parser.parse_args(argv)


def _latencies(seconds: list[float], stats: Any) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(seconds) * 1000
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return {
        "calls": len(seconds),
        "p50_ms": round(p50, 3),
        "p90_ms": round(p90, 3),
        "p99_ms": round(p99, 3),
        "max_ms": round(float(ms.max()), 3),
        "p99_over_p50": round(p99 / p50, 2),
        "hedges": stats.hedges,
        "hedges_won": stats.hedges_won,
    }


BLOCK = 50  # queries per client in turn: a loaded machine slows both settings alike


def _queries_sync(urls: list[str], n: int) -> dict[str, dict[str, float]]:
    from vllm_embed import EmbeddingClient

    with (
        EmbeddingClient(urls, model=FAKE_MODEL, hedge=False) as off,
        EmbeddingClient(urls, model=FAKE_MODEL, hedge=True) as on,
    ):
        clients = {"off": off, "on": on}
        took: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(40):  # connections, discovery, a learned delay
            for client in clients.values():
                client.embed_query(f"warm-up query {i}")
        for block in range(0, n, BLOCK):
            for name, client in clients.items():
                for i in range(block, min(n, block + BLOCK)):
                    started = time.perf_counter()
                    client.embed_query(f"what is query number {i} about?")
                    took[name].append(time.perf_counter() - started)
        return {name: _latencies(took[name], clients[name].stats) for name in clients}


def _queries_async(urls: list[str], n: int) -> dict[str, dict[str, float]]:
    from vllm_embed import AsyncEmbeddingClient

    async def run() -> dict[str, dict[str, float]]:
        async with (
            AsyncEmbeddingClient(urls, model=FAKE_MODEL, hedge=False) as off,
            AsyncEmbeddingClient(urls, model=FAKE_MODEL, hedge=True) as on,
        ):
            clients = {"off": off, "on": on}
            took: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(40):
                for client in clients.values():
                    await client.embed_query(f"warm-up query {i}")
            for block in range(0, n, BLOCK):
                for name, client in clients.items():
                    for i in range(block, min(n, block + BLOCK)):
                        started = time.perf_counter()
                        await client.embed_query(f"what is query number {i} about?")
                        took[name].append(time.perf_counter() - started)
            return {name: _latencies(took[name], clients[name].stats) for name in clients}

    return asyncio.run(run())


def _batches(
    healthy: list[str], stalling: Callable[[], FakeEmbeddingServer], n: int, rounds: int
) -> dict[str, Any]:
    """Each run gets a fresh stalling replica with the same seed: the same requests of it
    stall in every run, so runs compare."""
    from vllm_embed import EmbeddingClient

    texts = [f"document {i}: a short passage about topic {i % 97}" for i in range(n)]
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name, hedge in (("off", False), ("on", True)):
            with (
                stalling() as slow,
                EmbeddingClient([slow.base_url, *healthy], model=FAKE_MODEL, hedge=hedge) as client,
            ):
                client.model_name()
                started = time.perf_counter()
                out = client.embed(texts)
                rates[name].append(n / (time.perf_counter() - started))
                assert out.shape == (n, DIM)
                assert client.stats.hedges == 0
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    return {
        "texts": n,
        "rounds": rounds,
        "vectors_per_s_off": round(off),
        "vectors_per_s_on": round(on),
        "all_off": [round(r) for r in rates["off"]],
        "all_on": [round(r) for r in rates["on"]],
        "on_over_off": round(on / off, 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.quick:
        args.queries, args.n, args.rounds = 200, 8192, 2

    client_core, server_core = cores()
    started = time.perf_counter()

    def server(stalls: bool) -> FakeEmbeddingServer:
        extra: dict[str, Any] = {}
        if stalls:
            extra = {"stall": args.stall, "stall_rate": args.stall_rate, "stall_seed": 1}
        return FakeEmbeddingServer(dim=DIM, delay=args.base_delay, cpus=[server_core], **extra)

    pin(client_core)
    with ExitStack() as stack:
        servers = [stack.enter_context(server(i == 0)) for i in range(4)]
        urls = [s.base_url for s in servers]
        queries: dict[str, dict[str, float]] = {}
        for twin, run in (("sync", _queries_sync), ("async", _queries_async)):
            for name, row in run(urls, args.queries).items():
                queries[f"{twin}_hedge_{name}"] = row
        stalls = servers[0].stats()["stalls"]
        # The floor: the three replicas that never stall, so p99/p50 shows the machine's own
        # spread (a loaded machine alone can put p99 beyond 2x p50).
        for name, row in _queries_sync(urls[1:], args.queries).items():
            queries[f"healthy_only_sync_hedge_{name}"] = row
        batch = _batches(urls[1:], lambda: server(True), args.n, args.rounds)
    checks = {
        f"{twin}_p99_within_2x_p50": queries[f"{twin}_hedge_on"]["p99_over_p50"]
        <= TARGET_P99_OVER_P50
        for twin in ("sync", "async")
    }
    checks["environment_p99_within_2x_p50"] = (
        queries["healthy_only_sync_hedge_off"]["p99_over_p50"] <= TARGET_P99_OVER_P50
    )
    checks["batch_no_loss"] = batch["on_over_off"] >= TARGET_BATCH_RATIO
    results = {
        "command": "python benchmarks/replicas_bench.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "replicas": 4,
            "dim": DIM,
            "base_delay_s": args.base_delay,
            "stalling_replicas": 1,
            "stall_s": args.stall,
            "stall_rate": args.stall_rate,
            "stalls_served": stalls,
        },
        "embed_query": queries,
        "batch": batch,
        "targets": {"p99_over_p50": TARGET_P99_OVER_P50, "batch_on_over_off": TARGET_BATCH_RATIO},
        "checks": checks,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _print(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _print(results: dict[str, Any]) -> None:
    setup = results["setup"]
    print(
        f"\n4 fake replicas answering in {setup['base_delay_s'] * 1000:g} ms, one stalling "
        f"{setup['stall_s']:g} s on {setup['stall_rate']:.0%} of its requests "
        f"({setup['stalls_served']} stalls served in all)\n"
    )
    print("| embed_query | p50 ms | p90 ms | p99 ms | max ms | p99/p50 | hedges (won) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in results["embed_query"].items():
        print(
            f"| {name} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['max_ms']:.1f} | {row['p99_over_p50']:.2f} | "
            f"{row['hedges']} ({row['hedges_won']}) |"
        )
    batch = results["batch"]
    print(f"\n| batch embed ({batch['texts']} texts, median of {batch['rounds']}) | vectors/s |")
    print("|---|---:|")
    print(f"| hedge off | {batch['vectors_per_s_off']:,} |")
    print(f"| hedge on | {batch['vectors_per_s_on']:,} |")
    print(f"| on / off | {batch['on_over_off']:.3f} |")
    print()
    for check, ok in results["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {check}")


if __name__ == "__main__":
    sys.exit(main())
