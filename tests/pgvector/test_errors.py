"""Named errors before anything is written, each saying what to do; secrets never shown."""

from __future__ import annotations

import sys

import psycopg
import pytest
from click.testing import CliRunner
from pgvector_support import lightrag_tables, sql

from vllm_embed import EmbeddingClient
from vllm_embed._errors import StoreError
from vllm_embed.cli import main
from vllm_embed.migrate import pgvector as pg
from vllm_embed.migrate import space_of_client
from vllm_embed_testing.fake_server import FakeEmbeddingServer
from vllm_embed_testing.postgres import PostgresServer

CHUNKS = "lightrag_vdb_chunks"


def nothing_written(url: str) -> None:
    tables = {r[0] for r in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert not {t for t in tables if t.startswith("vllm_embed") or "vllm" in t}, tables


def run(url: str, client: EmbeddingClient, table: str = CHUNKS, **kw: object) -> pg.MigrationReport:
    with pg.connect(url) as conn:
        target = next(t for t in pg.discover(conn) if t.table == table)
    return pg.migrate_table(url, target, client, space_of_client(client), pg.PgOptions(**kw))  # type: ignore[arg-type]


def test_every_error_is_a_store_error() -> None:
    for cls in (
        pg.RowsWithoutTextError,
        pg.TextColumnTypeError,
        pg.VectorColumnTypeError,
        pg.InsufficientPrivilegeError,
        pg.TableLockedError,
        pg.UnsupportedTableError,
        pg.PostgresConnectionError,
        pg.PostgresDriverMissingError,
    ):
        assert issubclass(cls, StoreError)


def test_rows_without_text(db: str, client: EmbeddingClient) -> None:
    lightrag_tables(db, 20, only=CHUNKS)
    sql(db, f"UPDATE {CHUNKS} SET content = NULL WHERE id = '{CHUNKS}-3'")
    sql(db, f"UPDATE {CHUNKS} SET content = '  ' WHERE id = '{CHUNKS}-4'")
    with pytest.raises(pg.RowsWithoutTextError) as err:
        run(db, client)
    assert "2 rows" in str(err.value) and "DELETE FROM" in str(err.value)
    assert sorted(err.value.ids) == [f"default,{CHUNKS}-3", f"default,{CHUNKS}-4"]
    nothing_written(db)


def test_text_column_not_text(db: str, fake: FakeEmbeddingServer) -> None:
    sql(db, "CREATE TABLE t (id int PRIMARY KEY, body int, vec vector(8))")
    args = ["--table", "t", "--text-column", "body", "--vector-column", "vec"]
    result = CliRunner().invoke(main, ["migrate", db, "--base-url", fake.base_url, *args])
    assert result.exit_code == 1
    assert "t.body is integer, not text" in result.output and "--text-column" in result.output
    nothing_written(db)


def test_vector_column_not_vector(db: str, fake: FakeEmbeddingServer) -> None:
    sql(db, "CREATE TABLE t (id int PRIMARY KEY, body text, vec real[])")
    args = ["--table", "t", "--text-column", "body", "--vector-column", "vec"]
    result = CliRunner().invoke(main, ["migrate", db, "--base-url", fake.base_url, *args])
    assert result.exit_code == 1
    assert "t.vec is real[], not a pgvector vector column" in result.output
    nothing_written(db)


def test_no_unique_key(db: str, fake: FakeEmbeddingServer) -> None:
    sql(db, "CREATE TABLE t (id int, body text, vec vector(8))")
    args = ["--table", "t", "--text-column", "body", "--vector-column", "vec"]
    result = CliRunner().invoke(main, ["migrate", db, "--base-url", fake.base_url, *args])
    assert result.exit_code == 1 and "has no primary key" in result.output
    nothing_written(db)


def test_dependent_view_refused(db: str, client: EmbeddingClient) -> None:
    lightrag_tables(db, 5, only=CHUNKS)
    sql(db, f"CREATE VIEW v AS SELECT id FROM {CHUNKS}")
    with pytest.raises(pg.UnsupportedTableError, match="view v"):
        run(db, client)
    nothing_written(db)


def test_insufficient_privileges(
    db: str, pg_server: PostgresServer, client: EmbeddingClient
) -> None:
    lightrag_tables(db, 5, only=CHUNKS)
    sql(db, "DROP ROLE IF EXISTS reader")
    sql(db, f"CREATE ROLE reader LOGIN PASSWORD '{pg_server.password}'")
    sql(db, f"GRANT SELECT ON {CHUNKS} TO reader")
    reader_url = db.replace("postgres:", "reader:", 1)
    with pytest.raises(pg.InsufficientPrivilegeError) as err:
        run(reader_url, client)
    message = str(err.value)
    assert "own the table" in message and "GRANT CREATE ON SCHEMA" in message
    assert pg_server.password not in message
    nothing_written(db)


def test_table_locked_by_another_session(db: str, client: EmbeddingClient) -> None:
    lightrag_tables(db, 5, only=CHUNKS)
    with psycopg.connect(db, application_name="busy writer") as other:
        other.execute(f"UPDATE {CHUNKS} SET tokens = 1 WHERE id = '{CHUNKS}-1'")  # open txn
        with pytest.raises(pg.TableLockedError) as err:
            run(db, client, lock_timeout=0.3)
        pid = other.info.backend_pid
        assert f"pid {pid} holds RowExclusiveLock (busy writer" in str(err.value)
        assert "pg_terminate_backend" in str(err.value)
        other.rollback()
    nothing_written(db)


def test_wrong_password_never_shown(
    db: str, pg_server: PostgresServer, fake: FakeEmbeddingServer
) -> None:
    secret = "s3cret-that-must-not-leak"
    url = db.replace(pg_server.password, secret)
    result = CliRunner().invoke(main, ["migrate", url, "--base-url", fake.base_url])
    assert result.exit_code == 1
    assert "password authentication failed" in result.output
    assert secret not in result.output and "postgresql://***@127.0.0.1" in result.output


def test_password_from_pgpass(
    db: str, pg_server: PostgresServer, fake: FakeEmbeddingServer, tmp_path, monkeypatch
) -> None:
    lightrag_tables(db, 5, only=CHUNKS)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:*:postgres:{pg_server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    bare = db.replace(f":{pg_server.password}@", "@")
    result = CliRunner().invoke(main, ["migrate", bare, "--base-url", fake.base_url, "-y"])
    assert result.exit_code == 0, result.output
    assert pg_server.password not in result.output
    assert "migrated     lightrag public.lightrag_vdb_chunks" in result.output


def test_driver_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(pg.PostgresDriverMissingError, match=r"vllm-embed\[postgres\]"):
        pg.connect("postgresql://u@127.0.0.1:1/db")
