"""Benchmark the embedding cache (``cache=...``) against LangChain's CacheBackedEmbeddings.

    python benchmarks/cache_bench.py [--n 4096] [--rounds 5] [--quick]

Against the fast fake server (``vllm_embed_testing.fake_server``, dimension 1024, pinned to
the last core; this process runs on the first) and a real ``redis-server`` started here:

1. **hits**: vectors/s of a fully cached batch of ``n`` texts through our SQLite cache and
   our Redis cache, and through LangChain's ``CacheBackedEmbeddings`` over its
   ``LocalFileStore`` and over ``RedisStore`` (the same texts, its underlying embeddings
   being our own LangChain adapter), plus our cache through that adapter
   (``VLLMEmbeddings(cache=...)``, lists out like LangChain). Client CPU per hit is
   ``time.process_time()`` (this process only: the server and redis-server are others).
2. **misses**: an all-miss batch (new texts every round) with the SQLite cache on vs off.
3. **half hits**: a batch whose first half was cached beforehand vs an all-miss batch
   without the cache.

Each figure is the median over ``rounds``; runs of different kinds are interleaved round by
round, so a loaded machine slows them alike: compare ratios within one run. Prints a table
and writes ``benchmarks/results/cache.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cache.json"
sys.path.insert(0, str(ROOT / "shared"))

DIM = 1024
KEY = "sk-bench-cache"
MODEL = "fake-model"
TARGETS = {
    "hits_vs_langchain": 10.0,
    "sqlite_cpu_us_per_hit": 10.0,
    "half_hits_vs_all_miss": 0.6,
    "all_miss_cache_on_vs_off": 1.15,
}


def texts(n: int, tag: str) -> list[str]:
    return [f"{tag} passage {i}: embeddings of short texts about topic {i % 97}" for i in range(n)]


def _pin_client() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run(n: int, rounds: int) -> dict[str, Any]:
    import numpy as np
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.storage import RedisStore

    from vllm_embed import EmbeddingCache, EmbeddingClient
    from vllm_embed_langchain import VLLMEmbeddings
    from vllm_embed_testing.fake_server import FakeEmbeddingServer
    from vllm_embed_testing.redis_server import RedisServer

    cpus = os.cpu_count() or 1
    server_cpus = [cpus - 1] if cpus > 1 else None
    tmp = Path(tempfile.mkdtemp(prefix="vllm-embed-cache-bench-"))
    redis = RedisServer(tmp).start()
    server = FakeEmbeddingServer(dim=DIM, api_key=KEY, model=MODEL, cpus=server_cpus)
    _pin_client()
    common = {"api_key": KEY, "model": MODEL, "instructions": None}
    made: list[Any] = []

    def client(cache: Any = None) -> EmbeddingClient:
        c = EmbeddingClient(server.base_url, cache=cache, **common)
        made.append(c)
        return c

    try:
        hot = texts(n, "hot")
        sqlite_cache = EmbeddingCache(tmp / "ours.sqlite")
        redis_cache = EmbeddingCache(redis.url, namespace="ours")
        ours_sqlite, ours_redis = client(sqlite_cache), client(redis_cache)
        plain = client()
        lc_under = VLLMEmbeddings(base_url=server.base_url, **common)
        lc_file = CacheBackedEmbeddings.from_bytes_store(
            lc_under, LocalFileStore(str(tmp / "lc-files")), namespace=MODEL
        )
        lc_redis = CacheBackedEmbeddings.from_bytes_store(
            lc_under, RedisStore(redis_url=redis.url, namespace="lc"), namespace=MODEL
        )
        ours_lc = VLLMEmbeddings(base_url=server.base_url, cache=tmp / "adapter.sqlite", **common)
        hitters: dict[str, Callable[[], Any]] = {
            "ours sqlite (EmbeddingClient)": lambda: ours_sqlite.embed_documents(hot),
            "ours redis (EmbeddingClient)": lambda: ours_redis.embed_documents(hot),
            "ours sqlite (VLLMEmbeddings, lists)": lambda: ours_lc.embed_documents(hot),
            "langchain CacheBacked + LocalFileStore": lambda: lc_file.embed_documents(hot),
            "langchain CacheBacked + RedisStore": lambda: lc_redis.embed_documents(hot),
        }
        # fill every cache once (not timed), and check they agree with the server
        reference = plain.embed_documents(hot)
        for name, fn in hitters.items():
            got = np.asarray(fn(), dtype=np.float32)
            assert np.allclose(got, reference, atol=1e-6), name
        sqlite_cache.flush()
        redis_cache.flush()
        ours_lc.client._cache.cache.flush()  # type: ignore[union-attr]
        before = server.requests_served
        hit_wall: dict[str, list[float]] = {k: [] for k in hitters}
        hit_cpu: dict[str, list[float]] = {k: [] for k in hitters}
        for _ in range(rounds):
            for name, fn in hitters.items():
                wall, cpu = _timed(fn)
                hit_wall[name].append(wall)
                hit_cpu[name].append(cpu)
        hit_requests = server.requests_served - before

        # misses and half hits: new texts every round, cache on / off interleaved
        miss_off: list[float] = []
        miss_on: list[float] = []
        half_on: list[float] = []
        cold_cache = EmbeddingCache(tmp / "cold.sqlite")
        cold = client(cold_cache)
        plain.embed_documents(texts(64, "warm-up"))
        cold.embed_documents(texts(64, "warm-up"))
        for r in range(rounds):
            off_texts, on_texts, half_texts = (texts(n, f"r{r}-{k}") for k in "abc")
            miss_off.append(_timed(lambda t=off_texts: plain.embed_documents(t))[0])
            miss_on.append(_timed(lambda t=on_texts: cold.embed_documents(t))[0])
            cold.embed_documents(half_texts[: n // 2])  # cache the first half (not timed)
            cold_cache.flush()
            half_on.append(_timed(lambda t=half_texts: cold.embed_documents(t))[0])
            cold_cache.flush()  # writes of this round are not left to the next
    finally:
        for c in made:
            c.close()
        server.stop()
        redis.stop()

    rows = []
    for name in hitters:
        wall, cpu = _median(hit_wall[name]), _median(hit_cpu[name])
        rows.append(
            {
                "case": f"hits: {name}",
                "vectors_per_s": n / wall,
                "cpu_us_per_vector": cpu / n * 1e6,
                "wall_ms": wall * 1e3,
            }
        )
    for name, series in (
        ("all-miss, no cache", miss_off),
        ("all-miss, sqlite cache", miss_on),
        ("half hits, sqlite cache", half_on),
    ):
        wall = _median(series)
        rows.append({"case": name, "vectors_per_s": n / wall, "wall_ms": wall * 1e3})
    by = {r["case"]: r for r in rows}

    def rate(name: str) -> float:
        return float(by[f"hits: {name}"]["vectors_per_s"])

    ratios = {
        "sqlite hits vs langchain LocalFileStore": rate("ours sqlite (EmbeddingClient)")
        / rate("langchain CacheBacked + LocalFileStore"),
        "redis hits vs langchain RedisStore": rate("ours redis (EmbeddingClient)")
        / rate("langchain CacheBacked + RedisStore"),
        "adapter (lists) sqlite hits vs langchain LocalFileStore": rate(
            "ours sqlite (VLLMEmbeddings, lists)"
        )
        / rate("langchain CacheBacked + LocalFileStore"),
        "sqlite client CPU per hit (us)": by["hits: ours sqlite (EmbeddingClient)"][
            "cpu_us_per_vector"
        ],
        "half hits / all-miss (no cache)": _median(half_on) / _median(miss_off),
        "all-miss cache on / off": _median(miss_on) / _median(miss_off),
    }
    verdicts = {
        "sqlite hits vs langchain LocalFileStore": ratios["sqlite hits vs langchain LocalFileStore"]
        >= TARGETS["hits_vs_langchain"],
        "redis hits vs langchain RedisStore": ratios["redis hits vs langchain RedisStore"]
        >= TARGETS["hits_vs_langchain"],
        "sqlite client CPU per hit (us)": ratios["sqlite client CPU per hit (us)"]
        <= TARGETS["sqlite_cpu_us_per_hit"],
        "half hits / all-miss (no cache)": ratios["half hits / all-miss (no cache)"]
        <= TARGETS["half_hits_vs_all_miss"],
        "all-miss cache on / off": ratios["all-miss cache on / off"]
        <= TARGETS["all_miss_cache_on_vs_off"],
    }
    return {
        "rows": rows,
        "ratios": ratios,
        "targets": TARGETS,
        "pass": verdicts,
        "server_requests_during_hit_rounds": hit_requests,
    }


def _print(result: dict[str, Any], n: int, rounds: int) -> None:
    print(f"\n### Embedding cache, n={n} texts, dim {DIM}, median of {rounds} rounds\n")
    print("| case | vectors/s | client CPU µs/vector | wall ms |")
    print("| --- | ---: | ---: | ---: |")
    for r in result["rows"]:
        cpu = f"{r['cpu_us_per_vector']:.1f}" if "cpu_us_per_vector" in r else ""
        print(f"| {r['case']} | {r['vectors_per_s']:,.0f} | {cpu} | {r['wall_ms']:.1f} |")
    print("\n| ratio | value | target | verdict |")
    print("| --- | ---: | --- | --- |")
    targets = {
        "sqlite hits vs langchain LocalFileStore": ">= 10x",
        "redis hits vs langchain RedisStore": ">= 10x",
        "sqlite client CPU per hit (us)": "<= 10 µs",
        "half hits / all-miss (no cache)": "<= 0.6x",
        "all-miss cache on / off": "<= 1.15x",
    }
    for name, value in result["ratios"].items():
        verdict = result["pass"].get(name)
        mark = "" if verdict is None else ("ok" if verdict else "FAIL")
        print(f"| {name} | {value:.2f} | {targets.get(name, '')} | {mark} |")
    print(f"\nserver requests during the hit rounds: {result['server_requests_during_hit_rounds']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="texts per batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="n=1024, 3 rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n, rounds = (1024, 3) if args.quick else (args.n, args.rounds)
    result = run(n, rounds)
    _print(result, n, rounds)
    doc = {
        "command": "python benchmarks/cache_bench.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": n,
        "rounds": rounds,
        "dim": DIM,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "python": platform.python_version(),
        },
        "note": "fake server + local redis-server; the machine is shared and loaded: "
        "compare ratios within this run",
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
