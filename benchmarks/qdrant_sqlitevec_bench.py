"""Benchmark ``vllm-embed migrate`` on a Qdrant local-mode directory and a sqlite-vec file
(not a test).

    python benchmarks/qdrant_sqlitevec_bench.py [--records 20000] [--old-dim 384]
        [--new-dim 384] [--store-dir /tmp/vllm-embed-qs-bench] [--only qdrant|sqlite-vec]
        [--ingest-records N]

Needs qdrant-client, sqlite-vec (and pysqlite3-binary where sqlite3 cannot load
extensions) and the core; the nox session ``qdrant_sqlitevec`` has them. Against the fake
server (``vllm_embed_testing.fake_server.FakeEmbeddingServer``) it times, in ONE run:

1. ``qdrant-ingest``: qdrant-client's own ``upsert`` (local mode) of the same ids, payloads
   and random vectors at the new dimension, in batches of 1024 (what the app paid to build
   the store; the floor for any rebuild through qdrant-client's API), at ``--ingest-records``
   points (it runs at ~100 points/s and slows as the collection grows: the rate of each
   quarter is recorded); the store to migrate is then made with per-point commits unsynced;
2. ``qdrant``: the whole migration of a LangChain-style collection (read from a copy,
   embed in journaled chunks, fill a copy through qdrant-client, reopen + verify, swap),
   with its embedding phase, in a child process (its peak RSS is the migration's own);
3. ``sqlite-vec-ingest``: LangChain ``SQLiteVec``'s insert (base table + trigger into vec0)
   of the same rows at the new dimension;
4. ``sqlite-vec``: the whole migration of that LangChain-shaped file.

Prints a table with peak RSS and writes ``benchmarks/results/migrate_qdrant_sqlitevec.json``.
The machine is shared and noisy: compare the phases of one run, as ratios. Qdrant's local
mode itself warns above 20,000 points (it keeps every point in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "migrate_qdrant_sqlitevec.json"
sys.path.insert(0, str(ROOT / "shared"))

import numpy as np  # noqa: E402
from _migrate_run import peak_rss_mb, report_runs, run_migration  # noqa: E402

KEY = "sk-bench-qs"
_BATCH = 1024


def _texts(n: int) -> list[str]:
    return [f"document {i}: notes about topic {i % 97} and item {i % 13}" for i in range(n)]


def _qdrant(path: Path, n: int, dim: int, *, fixture: bool = False) -> list[float]:
    """A LangChain-shaped collection (page_content / metadata payload, unnamed cosine
    vector), written with qdrant-client; seconds spent in each ``upsert`` of ``_BATCH``.

    ``fixture``: the store to migrate, written with per-point commits unsynced (the
    speed-up our own writer uses), else 200,000 points take most of an hour to make.
    """
    from qdrant_client import QdrantClient, models

    from vllm_embed.migrate.qdrant import _no_sync_per_point

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # local mode's "> 20,000 points"
        client = QdrantClient(path=str(path))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    restore = _no_sync_per_point(client, "docs") if fixture else (lambda: None)
    rng = np.random.default_rng(0)
    texts = _texts(n)
    batches: list[float] = []
    for start in range(0, n, _BATCH):
        began = time.perf_counter()
        stop = min(n, start + _BATCH)
        vectors = rng.standard_normal((stop - start, dim)).astype(np.float32)
        client.upsert(
            "docs",
            points=[
                models.PointStruct(
                    id=str(uuid.UUID(int=i)),
                    vector=vectors[i - start].tolist(),
                    payload={"page_content": texts[i], "metadata": {"i": i}},
                )
                for i in range(start, stop)
            ],
        )
        batches.append(time.perf_counter() - began)
    restore()
    client.close()
    return batches


def _ingest_run(batches: list[float], n: int) -> dict[str, Any]:
    """qdrant-client's own ingest: whole rate and the rate of each quarter (the trend)."""
    quarter = max(1, len(batches) // 4)
    parts = [batches[i : i + quarter] for i in range(0, len(batches), quarter)][:4]
    sizes = [min(_BATCH, n - i * _BATCH) for i in range(len(batches))]
    rates, first = [], 0
    for part in parts:
        rates.append(sum(sizes[first : first + len(part)]) / sum(part))
        first += len(part)
    return {"records": n, "seconds": sum(batches), "rate": n / sum(batches), "quarter_rates": rates}


def _sqlitevec(file: Path, n: int, dim: int) -> float:
    """LangChain ``SQLiteVec``'s tables, rows inserted as its ``add_texts`` does."""
    from vllm_embed.migrate.kano import connect_vec

    conn = connect_vec(file)
    conn.execute(
        "CREATE TABLE notes (rowid INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT, "
        "metadata BLOB, text_embedding BLOB)"
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE notes_vec USING vec0(rowid INTEGER PRIMARY KEY, "
        f"text_embedding float[{dim}])"
    )
    conn.execute(
        "CREATE TRIGGER notes_embed_text AFTER INSERT ON notes BEGIN INSERT INTO "
        "notes_vec(rowid, text_embedding) VALUES (new.rowid, new.text_embedding); END"
    )
    rng = np.random.default_rng(0)
    texts = _texts(n)
    began = time.perf_counter()
    for start in range(0, n, _BATCH):
        stop = min(n, start + _BATCH)
        vectors = rng.standard_normal((stop - start, dim)).astype(np.float32)
        conn.executemany(
            "INSERT INTO notes(text, metadata, text_embedding) VALUES (?, ?, ?)",
            [
                (texts[i], json.dumps({"i": i}), vectors[i - start].tobytes())
                for i in range(start, stop)
            ],
        )
    conn.commit()
    seconds = time.perf_counter() - began
    conn.close()
    return seconds


def _migrate_child(path: Path, base_url: str, out: Any) -> None:
    """`_migrate` in a child process: its own peak RSS is the migration's alone."""
    run = _migrate(path, base_url)
    run["peak_rss_mb"] = peak_rss_mb()
    out.put(run)


def _open_child(path: Path, out: Any) -> None:
    """qdrant-client opening the store (local mode loads every point): seconds, peak RSS."""
    from qdrant_client import QdrantClient

    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        client = QdrantClient(path=str(path))
    seconds = time.perf_counter() - began
    client.close()
    peak = peak_rss_mb()
    out.put({"seconds": seconds, "peak_rss_mb": peak})


def _migrate_measured(path: Path, base_url: str) -> dict[str, Any]:
    return _in_child(_migrate_child, path, base_url)


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    run: dict[str, Any] = queue.get()
    child.join()
    return run


def _migrate(path: Path, base_url: str) -> dict[str, Any]:
    return run_migration(path, base_url, KEY, quiet_warnings=True)  # local mode's "> 20,000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--old-dim", type=int, default=384)
    parser.add_argument("--new-dim", type=int, default=384)
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/vllm-embed-qs-bench"))
    parser.add_argument("--only", choices=["qdrant", "sqlite-vec"], help="Time one format.")
    parser.add_argument(
        "--ingest-records",
        type=int,
        help="Qdrant: points for qdrant-client's own ingest (default: --records; it runs "
        "at ~100 points/s, so give a size that finishes in minutes for large --records).",
    )
    args = parser.parse_args()
    qdrant, sqlitevec = args.only in (None, "qdrant"), args.only in (None, "sqlite-vec")

    from vllm_embed_testing.fake_server import FakeEmbeddingServer

    shutil.rmtree(args.store_dir, ignore_errors=True)
    args.store_dir.mkdir(parents=True)
    runs: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    n, d = args.records, args.new_dim
    if qdrant:
        m = min(n, args.ingest_records or n)
        runs["qdrant-ingest"] = _ingest_run(_qdrant(args.store_dir / "qdrant-ingest", m, d), m)
        shutil.rmtree(args.store_dir / "qdrant-ingest")
        made = time.perf_counter()
        _qdrant(args.store_dir / "qdrant_db", n, args.old_dim, fixture=True)
        print(f"made the {n}-point store in {time.perf_counter() - made:.0f} s", flush=True)
        # what any app pays to open it: the floor of a migration's memory
        runs["qdrant-open"] = _in_child(_open_child, args.store_dir / "qdrant_db")
    if sqlitevec:
        ingest = _sqlitevec(args.store_dir / "ingest.db", n, d)
        runs["sqlite-vec-ingest"] = {"seconds": ingest, "rate": n / ingest}
        _sqlitevec(args.store_dir / "vec.db", n, args.old_dim)
    with FakeEmbeddingServer(dim=d, model="fake-model", api_key=KEY) as server:
        if qdrant:
            runs["qdrant"] = _migrate_measured(args.store_dir / "qdrant_db", server.base_url)
        if sqlitevec:
            runs["sqlite-vec"] = _migrate(args.store_dir / "vec.db", server.base_url)
    peak = peak_rss_mb()
    results = RESULTS.with_name(f"{RESULTS.stem}-{args.only}.json") if args.only else RESULTS
    report_runs(
        results, runs, records=n, old_dim=args.old_dim, new_dim=d, load=load, peak_rss_mb=peak
    )


if __name__ == "__main__":
    main()
