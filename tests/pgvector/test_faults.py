"""Faults: the embedding server killed, the connection terminated, the process killed between
batches and during the switch. The table is always wholly old or wholly new, and the next
run resumes without re-embedding committed rows. A reader querying throughout never gets an
error or a mixed result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector_support import NEW_DIM, OLD_DIM, SHARED, lightrag_tables, sql

from vllm_embed import EmbeddingClient, RetryPolicy
from vllm_embed.migrate import pgvector as pg
from vllm_embed.migrate import space_of_client
from vllm_embed_testing.fake_server import FakeEmbeddingServer

CHUNKS = "lightrag_vdb_chunks"
ROWS = 400
BATCH = 50
HERE = Path(__file__).parent


def target_of(url: str) -> pg.PgTarget:
    with pg.connect(url) as conn:
        return next(t for t in pg.discover(conn) if t.table == CHUNKS)


def migrate(url: str, client: EmbeddingClient, **kw: Any) -> pg.MigrationReport:
    options = pg.PgOptions(batch_rows=BATCH, **kw)
    return pg.migrate_table(url, target_of(url), client, space_of_client(client), options)


def wholly_old(url: str) -> None:
    assert sql(url, f"SELECT DISTINCT vector_dims(content_vector) FROM {CHUNKS}") == [(OLD_DIM,)]
    assert sql(url, f"SELECT count(*) FROM {CHUNKS}") == [(ROWS,)]
    # no backup: the switch never committed (a staging table left by a killed run is not
    # the application's and is rebuilt by the next run)
    tables = {r[0] for r in sql(url, "SELECT tablename FROM pg_tables")}
    assert not [t for t in tables if "vllm_bak" in t], tables


def wholly_new(url: str) -> None:
    assert sql(url, f"SELECT DISTINCT vector_dims(content_vector) FROM {CHUNKS}") == [(NEW_DIM,)]
    tables = {r[0] for r in sql(url, "SELECT tablename FROM pg_tables")}
    assert not [t for t in tables if "vllm_new" in t or "vllm_embed_shadow" in t], tables
    assert sql(url, f"SELECT count(*) FROM {CHUNKS}") == [(ROWS,)]
    assert sql(url, f"SELECT count(*) FROM {CHUNKS}_vllm_bak_d{OLD_DIM}") == [(ROWS,)]


def rows_done(url: str) -> int:
    return int(sql(url, "SELECT rows_done FROM vllm_embed_migrations")[0][0])


def test_server_killed_mid_run(db: str) -> None:
    lightrag_tables(db, ROWS, only=CHUNKS)
    server = FakeEmbeddingServer(dim=NEW_DIM)
    batches = {"n": 0}

    def kill_server(phase: str) -> None:
        batches["n"] += phase == "batch"
        if batches["n"] == 2:
            server.process.kill()

    with (
        EmbeddingClient(server.base_url, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(pg.MigrationError, match="run the same command again to resume"),
    ):
        migrate(db, client, on_phase=kill_server)
    server.stop()
    wholly_old(db)
    done = rows_done(db)
    assert 2 * BATCH <= done < ROWS
    with FakeEmbeddingServer(dim=NEW_DIM) as again, EmbeddingClient(again.base_url) as client:
        report = migrate(db, client)
        embedded = again.stats()["vectors"]
    assert report.resumed == done and report.embedded_now == ROWS - done
    assert embedded <= ROWS - done + 1  # + at most the dimension probe
    wholly_new(db)


def test_connection_terminated_mid_run(db: str, client: EmbeddingClient) -> None:
    lightrag_tables(db, ROWS, only=CHUNKS)
    batches = {"n": 0}

    def terminate(phase: str) -> None:
        batches["n"] += phase == "batch"
        if batches["n"] == 3:
            killed = sql(
                db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'vllm-embed migrate' AND pid <> pg_backend_pid()",
            )
            assert killed == [(True,)]

    with pytest.raises(pg.PostgresConnectionError, match="run the same command again"):
        migrate(db, client, on_phase=terminate)
    wholly_old(db)
    done = rows_done(db)
    assert done == 3 * BATCH
    report = migrate(db, client)
    assert report.resumed == done and report.embedded_now == ROWS - done
    wholly_new(db)


@pytest.mark.parametrize(
    ("phase", "at"),
    [("batch", 3), ("switch", 1), ("renamed", 1)],
    ids=["between-batches", "switch-start", "switch-end"],
)
def test_process_killed(
    db: str, fake: FakeEmbeddingServer, client: EmbeddingClient, phase: str, at: int
) -> None:
    lightrag_tables(db, ROWS, only=CHUNKS)
    env = dict(os.environ, PYTHONPATH=str(SHARED))
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "pg_kill.py"),
            db,
            fake.base_url,
            CHUNKS,
            phase,
            str(at),
            str(BATCH),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9, done.stdout + done.stderr
    time.sleep(0.2)  # the server notices the dead client and rolls back its transaction
    wholly_old(db)
    committed = rows_done(db)
    assert committed == (3 * BATCH if phase == "batch" else ROWS)
    before = fake.stats()["vectors"]
    report = migrate(db, client)
    assert report.resumed == committed
    assert report.embedded_now == ROWS - committed
    assert fake.stats()["vectors"] - before <= ROWS - committed + 1
    wholly_new(db)


def test_concurrent_reader_never_errors_nor_mixes(db: str, client: EmbeddingClient) -> None:
    lightrag_tables(db, ROWS, only=CHUNKS)
    seen: list[tuple[int, int, int, str]] = []
    errors: list[BaseException] = []
    latencies: list[float] = []
    stop = threading.Event()
    probe = f"{CHUNKS}-7"

    def reader() -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    row = conn.execute(
                        f"""
                        SELECT count(*), min(vector_dims(content_vector)),
                               max(vector_dims(content_vector)),
                               (SELECT id FROM {CHUNKS} ORDER BY content_vector <=>
                                 (SELECT content_vector FROM {CHUNKS} WHERE id = %s) LIMIT 1)
                        FROM {CHUNKS}
                        """,
                        [probe],
                    ).fetchone()
                except psycopg.Error as exc:  # pragma: no cover - the failure being tested
                    errors.append(exc)
                    continue
                latencies.append(time.perf_counter() - began)
                assert row is not None
                seen.append((int(row[0]), int(row[1]), int(row[2]), str(row[3])))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.3)
        report = migrate(db, client)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert seen, "the reader ran no query"
    dims_seen = [lo for _, lo, _, _ in seen]
    assert all(count == ROWS and lo == hi and top == probe for count, lo, hi, top in seen), [
        s for s in seen if s[0] != ROWS or s[1] != s[2] or s[3] != probe
    ][:5]
    assert dims_seen[0] == OLD_DIM and dims_seen[-1] == NEW_DIM
    first_new = dims_seen.index(NEW_DIM)
    assert set(dims_seen[first_new:]) == {NEW_DIM}  # never back to old after the switch
    assert report.readers_blocked_seconds < report.seconds
    print(
        f"reader: {len(seen)} queries, max latency {max(latencies) * 1000:.0f} ms; "
        f"switch blocked readers {report.readers_blocked_seconds * 1000:.0f} ms"
    )


def test_writes_during_migration_are_kept(db: str, client: EmbeddingClient) -> None:
    """Rows inserted, updated and deleted while the migration runs (between batches and
    after the new table was built) are in the switched table with vectors of their text."""
    from vllm_embed_testing.fake_server import fake_vector

    lightrag_tables(db, ROWS, only=CHUNKS)
    seen = {"batch": 0}

    def write(phase: str) -> None:
        seen["batch"] += phase == "batch"
        if phase == "batch" and seen["batch"] == 2:
            sql(db, f"UPDATE {CHUNKS} SET content = 'changed early' WHERE id = '{CHUNKS}-1'")
            sql(db, f"DELETE FROM {CHUNKS} WHERE id = '{CHUNKS}-10'")
            sql(
                db,
                f"INSERT INTO {CHUNKS} (id, workspace, content, content_vector) VALUES "
                f"('{CHUNKS}-zz-early', 'default', 'added early', %s)",
                [str([1.0] * OLD_DIM)],
            )
        if phase == "built":
            sql(db, f"UPDATE {CHUNKS} SET content = 'changed late' WHERE id = '{CHUNKS}-5'")
            sql(db, f"DELETE FROM {CHUNKS} WHERE id = '{CHUNKS}-6'")
            sql(
                db,
                f"INSERT INTO {CHUNKS} (id, workspace, content, content_vector) VALUES "
                f"('{CHUNKS}-000-late', 'default', 'added late', %s)",
                [str([1.0] * OLD_DIM)],
            )

    report = migrate(db, client, on_phase=write)
    assert report.caught_up >= 3
    rows = dict(sql(db, f"SELECT id, content_vector::text FROM {CHUNKS}"))
    assert len(rows) == ROWS  # two deleted, two added
    assert f"{CHUNKS}-10" not in rows and f"{CHUNKS}-6" not in rows
    for key, text in [
        (f"{CHUNKS}-1", "changed early"),  # embedded in the first batch, then changed
        (f"{CHUNKS}-5", "changed late"),
        (f"{CHUNKS}-zz-early", "added early"),
        (f"{CHUNKS}-000-late", "added late"),
        (f"{CHUNKS}-8", sql(db, f"SELECT content FROM {CHUNKS} WHERE id = '{CHUNKS}-8'")[0][0]),
    ]:
        stored = np.array(json.loads(rows[key]), dtype=np.float32)
        assert np.allclose(stored, fake_vector(text, NEW_DIM), atol=1e-6), key
