"""Benchmark ``vllm-embed migrate postgresql://`` on a 100,000-row pgvector table (not a test).

    python benchmarks/pg_migrate_bench.py [--rows 100000] [--old-dim 256] [--new-dim 384]
        [--index none,hnsw] [--quick]

Needs ``pip install 'vllm-embed[postgres]' pgserver`` (the ``pgvector`` nox session has
both). A real Postgres 16 + pgvector (``pgserver``) and the fast fake vLLM (pinned to the
last core; the client to the first) are started here. For each index kind a LightRAG
``lightrag_vdb_chunks`` table of ``--rows`` rows is built, then, in separate processes:

1. ``raw``: the core client's own rate, ``EmbeddingClient.embed`` on the same texts;
2. ``migrate``: the whole ``migrate_table`` run (checks, read, embed, binary COPY into the
   shadow table, the switch transaction: build the new table, its indexes, renames) while
   a reader thread queries the table by key without pause.

Reported: rows/s of the whole run and its ratio to the raw rate (target >= 0.7x), the same
without the index build, the time readers are blocked by the switch as the tool measures
it (ACCESS EXCLUSIVE request to commit; target < 1 s) and as the reader saw it (its slowest
query), and the index build time (writers wait for it, readers do not). The machine is
shared and loaded: compare within one run, as ratios.
Prints a table and writes ``benchmarks/results/pg_migrate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "pg_migrate.json"
sys.path.insert(0, str(ROOT / "shared"))

from _migrate_run import run_child, write_results  # noqa: E402

TABLE = "lightrag_vdb_chunks"


def text_of(i: int) -> str:
    return f"chunk {i}: the river bank at dusk, a heron waits, water moves slowly ({i % 97})"


def _pin_client() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})


def build_table(url: str, rows: int, dim: int, index: str) -> float:
    """LightRAG's chunks table with ``rows`` random old vectors; returns the index build s."""
    import numpy as np
    import psycopg

    rng = np.random.default_rng(0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE} CASCADE")
        conn.execute(
            f"CREATE TABLE {TABLE} (id VARCHAR(255), workspace VARCHAR(255), "
            "full_doc_id VARCHAR(256), chunk_order_index INTEGER, tokens INTEGER, content TEXT, "
            f"content_vector VECTOR({dim}), file_path TEXT NULL, "
            "create_time TIMESTAMP(0) DEFAULT CURRENT_TIMESTAMP, "
            "update_time TIMESTAMP(0) DEFAULT CURRENT_TIMESTAMP, "
            f"CONSTRAINT {TABLE}_pk PRIMARY KEY (workspace, id))"
        )
        step = 10_000
        head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
        for start in range(0, rows, step):
            n = min(step, rows - start)
            vecs = rng.standard_normal((n, dim)).astype(">f4")
            parts = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
            for j in range(n):
                i = start + j
                fields = [f"chunk-{i:07d}".encode(), b"default", text_of(i).encode()]
                parts.append(struct.pack(">h", 4))
                for f in fields:
                    parts.append(struct.pack(">i", len(f)) + f)
                parts.append(head + vecs[j].tobytes())
            parts.append(struct.pack(">h", -1))
            with conn.cursor().copy(
                f"COPY {TABLE} (id, workspace, content, content_vector) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(b"".join(parts))
        began = time.perf_counter()
        if index == "hnsw":
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                f"CREATE INDEX idx_{TABLE}_hnsw_cosine ON {TABLE} USING hnsw "
                "(content_vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
        elif index == "ivfflat":
            conn.execute(
                f"CREATE INDEX idx_{TABLE}_ivfflat_cosine ON {TABLE} USING ivfflat "
                "(content_vector vector_cosine_ops) WITH (lists = 100)"
            )
        conn.execute(f"ANALYZE {TABLE}")
        return time.perf_counter() - began


def phase_raw(base_url: str, rows: int) -> dict[str, Any]:
    from vllm_embed import EmbeddingClient

    _pin_client()
    texts = [text_of(i) for i in range(rows)]
    with EmbeddingClient(base_url) as client:
        client.embed(texts[:5000])  # warm up: negotiation, connections
        began = time.perf_counter()
        vectors = client.embed(texts)
        seconds = time.perf_counter() - began
    assert vectors.shape[0] == rows
    return {"seconds": seconds, "rows_per_s": rows / seconds}


def phase_migrate(url: str, base_url: str) -> dict[str, Any]:
    import psycopg

    from vllm_embed import EmbeddingClient
    from vllm_embed.migrate import pgvector as pg
    from vllm_embed.migrate import space_of_client

    _pin_client()
    stop = threading.Event()
    latencies: list[tuple[float, float]] = []  # (start, seconds)

    def reader() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            i = 0
            while not stop.is_set():
                began = time.perf_counter()
                conn.execute(
                    f"SELECT vector_dims(content_vector) FROM {TABLE} "
                    "WHERE workspace = 'default' AND id = %s",
                    [f"chunk-{i % 1000:07d}"],
                ).fetchone()
                latencies.append((began, time.perf_counter() - began))
                i += 1
                time.sleep(0.002)

    thread = threading.Thread(target=reader, daemon=True)
    with pg.connect(url) as conn:
        target = next(t for t in pg.discover(conn) if t.table == TABLE)
    thread.start()
    with EmbeddingClient(base_url) as client:
        space = space_of_client(client)
        began = time.perf_counter()
        report = pg.migrate_table(url, target, client, space)
        seconds = time.perf_counter() - began
    time.sleep(0.2)
    stop.set()
    thread.join(timeout=10)
    slowest = max(s for _, s in latencies) if latencies else 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {report.backup}")
        conn.execute("DROP TABLE IF EXISTS vllm_embed_migrations, vllm_embed_spaces")
    return {
        "seconds": seconds,
        "rows": report.rows,
        "rows_per_s": report.rows / seconds,
        "embed_phase_seconds": report.embed_seconds,
        "switch_seconds": report.switch_seconds,
        "index_seconds": report.index_seconds,
        "rows_per_s_without_index_build": report.rows / (seconds - report.index_seconds),
        "readers_blocked_seconds": report.readers_blocked_seconds,
        "reader_queries": len(latencies),
        "reader_slowest_query_seconds": slowest,
        "old_dim": report.old_dim,
        "new_dim": report.new_dim,
    }


def _child(*args: str) -> dict[str, Any]:
    return run_child(__file__, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--old-dim", type=int, default=256)
    parser.add_argument("--new-dim", type=int, default=384)
    parser.add_argument("--index", default="none,hnsw", help="comma-separated: none, hnsw, ivfflat")
    parser.add_argument("--quick", action="store_true", help="5,000 rows (a smoke run)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        kind, *rest = args.phase
        if kind == "raw":
            print(json.dumps(phase_raw(rest[0], int(rest[1]))))
        else:
            print(json.dumps(phase_migrate(rest[0], rest[1])))
        return
    rows = 5_000 if args.quick else args.rows
    from vllm_embed_testing.fake_server import FakeEmbeddingServer
    from vllm_embed_testing.postgres import PostgresServer

    cpus = os.cpu_count() or 1
    cases: dict[str, Any] = {}
    with (
        PostgresServer() as server,
        FakeEmbeddingServer(dim=args.new_dim, cpus=[cpus - 1] if cpus > 1 else None) as fake,
    ):
        url = server.create_database("bench")
        raw = _child("raw", fake.base_url, str(rows))
        for index in args.index.split(","):
            setup_index = build_table(url, rows, args.old_dim, index)
            run = _child("migrate", url, fake.base_url)
            run["index"] = index
            run["setup_index_seconds"] = setup_index
            run["vs_raw"] = run["rows_per_s"] / raw["rows_per_s"]
            run["vs_raw_without_index_build"] = (
                run["rows_per_s_without_index_build"] / raw["rows_per_s"]
            )
            cases[index] = run
    report = {
        "benchmark": "pg_migrate_bench",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "rows": rows,
        "machine": {"python": platform.python_version(), "cpus": cpus, "load": os.getloadavg()},
        "note": "shared, loaded machine: compare within one run, as ratios",
        "raw_client": raw,
        "cases": cases,
    }
    write_results(RESULTS, report)
    _print_table(report)


def _print_table(r: dict[str, Any]) -> None:
    raw = r["raw_client"]["rows_per_s"]
    print(
        f"\npgvector migration, {r['rows']:,} rows (fake vLLM; load {r['machine']['load'][0]:.1f})"
    )
    print(f"  core client embed(): {raw:,.0f} rows/s")
    head = f"  {'index':<8}{'rows/s':>10}{'vs raw':>8}{'w/o index':>10}{'readers blocked':>17}"
    print(head + f"{'slowest read':>14}{'index build':>13}")
    for name, c in r["cases"].items():
        print(
            f"  {name:<8}{c['rows_per_s']:>10,.0f}{c['vs_raw']:>7.2f}x"
            f"{c['vs_raw_without_index_build']:>9.2f}x"
            f"{c['readers_blocked_seconds'] * 1000:>14.0f} ms"
            f"{c['reader_slowest_query_seconds'] * 1000:>11.0f} ms"
            f"{c['index_seconds']:>11.1f} s"
        )
    print(f"  written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
