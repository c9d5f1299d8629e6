"""Benchmark ``vllm-embed migrate`` on a Chroma directory and a kano index (not a test).

    python benchmarks/migrate_stores_bench.py [--records 20000] [--old-dim 384]
        [--new-dim 384] [--store-dir /tmp/vllm-embed-stores-bench]

Needs chromadb (and the core) installed. Against the fake server
(``vllm_embed_testing.fake_server.FakeEmbeddingServer``) it times, in ONE run:

1. ``chroma-ingest``: chromadb's own ``collection.add`` of the same ids, documents,
   metadatas and random vectors at the new dimension, in batches of
   ``get_max_batch_size()`` (what the app paid to build the store; the floor for any
   rebuild through chromadb's API);
2. ``chroma``: the whole migration of a LangChain-style Chroma directory (read from a copy,
   embed in journaled chunks, fill a copy through chromadb, reopen + verify, swap), with
   its embedding phase;
3. ``kano``: the same for a kano-backlog binary index.

Prints a table and writes ``benchmarks/results/migrate_stores.json``. The machine is
shared and noisy: compare the phases of one run, as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "migrate_stores.json"
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests" / "stores"))

import numpy as np  # noqa: E402

KEY = "sk-bench-stores"


def _texts(n: int) -> list[str]:
    return [f"document {i}: notes about topic {i % 97} and item {i % 13}" for i in range(n)]


def _chroma(path: Path, n: int, dim: int, name: str = "langchain") -> float:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection(
        name, metadata={"hnsw:space": "cosine"}, embedding_function=None
    )
    rng = np.random.default_rng(0)
    batch = client.get_max_batch_size()
    texts = _texts(n)
    began = time.perf_counter()
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        collection.add(
            ids=[f"id{i}" for i in range(start, stop)],
            embeddings=rng.standard_normal((stop - start, dim)).astype(np.float32),
            documents=texts[start:stop],
            metadatas=[{"i": i} for i in range(start, stop)],
        )
    seconds = time.perf_counter() - began
    client.close()
    return seconds


def _migrate(path: Path, base_url: str) -> dict[str, Any]:
    from vllm_embed import EmbeddingClient
    from vllm_embed.migrate import MigrationOptions, migrate_store, open_store

    began = time.perf_counter()
    store = open_store(path)
    with EmbeddingClient(base_url, api_key=KEY) as client:
        result = migrate_store(store, client, MigrationOptions())
    whole = time.perf_counter() - began
    return {
        "records": result.records,
        "seconds": whole,
        "embed_seconds": result.embed_seconds,
        "rate": result.records / whole,
        "embed_rate": result.rate,
        "ratio": (result.records / whole) / result.rate if result.rate else None,
        "verified_with": result.verified_with,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--old-dim", type=int, default=384)
    parser.add_argument("--new-dim", type=int, default=384)
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/vllm-embed-stores-bench"))
    args = parser.parse_args()

    from stores_support import make_kano_index

    from vllm_embed_testing.fake_server import FakeEmbeddingServer

    shutil.rmtree(args.store_dir, ignore_errors=True)
    args.store_dir.mkdir(parents=True)
    runs: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    ingest = _chroma(args.store_dir / "ingest", args.records, args.new_dim, "ingest")
    runs["chroma-ingest"] = {"seconds": ingest, "rate": args.records / ingest}
    _chroma(args.store_dir / "chroma_db", args.records, args.old_dim)
    kano = make_kano_index(args.store_dir / "vectors", n=args.records)
    with FakeEmbeddingServer(dim=args.new_dim, model="fake-model", api_key=KEY) as server:
        runs["chroma"] = _migrate(args.store_dir / "chroma_db", server.base_url)
        runs["kano"] = _migrate(kano, server.base_url)
    print(f"{args.records} records, dim {args.old_dim} -> {args.new_dim}; load {load:.1f}")
    print(f"{'run':<14}{'seconds':>9}{'rec/s':>9}{'embed rec/s':>13}{'whole/embed':>13}")
    for name, run in runs.items():
        embed = f"{run['embed_rate']:,.0f}" if "embed_rate" in run else "-"
        ratio = f"{run['ratio']:.2f}x" if run.get("ratio") else "-"
        print(f"{name:<14}{run['seconds']:>9.1f}{run['rate']:>9,.0f}{embed:>13}{ratio:>13}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "records": args.records,
                "old_dim": args.old_dim,
                "new_dim": args.new_dim,
                "load_before": load,
                "python": platform.python_version(),
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
