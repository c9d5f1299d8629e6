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
import os
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
from _migrate_run import report_runs, run_migration  # noqa: E402

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
    return run_migration(path, base_url, KEY)


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
    report_runs(
        RESULTS, runs, records=args.records, old_dim=args.old_dim, new_dim=args.new_dim, load=load
    )


if __name__ == "__main__":
    main()
