"""Faults for Qdrant and sqlite-vec: the server gone mid-run leaves the original
byte-identical; the same command resumes without embedding anything twice and gives what
an uninterrupted run gives; a run killed while filling the Qdrant copy goes on from the
collection's count."""

from __future__ import annotations

import pytest
from qdrant_sqlitevec_support import (
    make_langchain_qdrant,
    make_langchain_sqlitevec,
    qdrant_content,
)
from stores_support import embedded_texts, listing, texts

from vllm_embed import MigrationError
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store, work_dir_for
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.migration import assert_server_gone_then_resumed


def _plain(route):  # type: ignore[no-untyped-def]
    return route.side_effect.answer


def test_qdrant_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    db, reference = assert_server_gone_then_resumed(
        lambda folder: make_langchain_qdrant(folder / "qdrant_db", n=10),
        tmp_path, fake_vllm, failing_after, client, texts=texts(10),
    )  # fmt: skip
    assert qdrant_content(db) == qdrant_content(reference)


def test_qdrant_killed_while_filling_goes_on_from_the_count(
    tmp_path, fake_vllm, client, monkeypatch
):
    from qdrant_client import QdrantClient

    from vllm_embed.migrate import qdrant

    db = make_langchain_qdrant(tmp_path / "qdrant_db", n=10)
    original = listing(db)
    monkeypatch.setattr(qdrant, "_BATCH", 3)
    upserted: list[list[str]] = []
    kill = {"after": 2}
    real_upsert = QdrantClient.upsert

    def upsert(self, collection_name, points, **kwargs):  # type: ignore[no-untyped-def]
        if len(upserted) == kill["after"]:
            raise KeyboardInterrupt  # killed after two batches went in
        upserted.append([str(p.id) for p in points])
        return real_upsert(self, collection_name, points=points, **kwargs)

    monkeypatch.setattr(QdrantClient, "upsert", upsert)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    assert listing(db) == original
    assert [len(batch) for batch in upserted] == [3, 3]

    fake_vllm.reset()
    upserted.clear()
    kill["after"] = -1
    result = migrate_store(open_store(db), client)
    assert embedded_texts(fake_vllm) == [] and result.resumed == 10
    assert [len(batch) for batch in upserted] == [3, 1]  # only what was missing
    monkeypatch.undo()
    (tmp_path / "ref").mkdir()
    reference = make_langchain_qdrant(tmp_path / "ref" / "qdrant_db", n=10)
    migrate_store(open_store(reference), client)
    assert qdrant_content(db) == qdrant_content(reference)


def test_qdrant_copy_damaged_while_filling_is_made_again(
    tmp_path, fake_vllm, client, monkeypatch, caplog
):
    """The copy is filled without an fsync per point: if a power loss left it unreadable,
    the next run copies the original again instead of failing."""
    from qdrant_client import QdrantClient

    db = make_langchain_qdrant(tmp_path / "qdrant_db", n=6)
    real_upsert = QdrantClient.upsert

    def killed(self, collection_name, points, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(QdrantClient, "upsert", killed)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    monkeypatch.setattr(QdrantClient, "upsert", real_upsert)
    storage = work_dir_for(db) / "output.tmp" / "collection" / "docs" / "storage.sqlite"
    storage.write_bytes(b"garbage, not SQLite" * 10)

    fake_vllm.reset()
    result = migrate_store(open_store(db), client)
    assert result.resumed == 6 and embedded_texts(fake_vllm) == []
    assert "cannot be opened" in caplog.text
    (tmp_path / "ref").mkdir()
    reference = make_langchain_qdrant(tmp_path / "ref" / "qdrant_db", n=6)
    migrate_store(open_store(reference), client)
    assert qdrant_content(db) == qdrant_content(reference)


def _langchain_rows(path):  # type: ignore[no-untyped-def]
    conn = connect_vec(path, read_only=True)
    try:
        base = conn.execute("SELECT rowid, text, metadata, text_embedding FROM notes").fetchall()
        vec = conn.execute("SELECT rowid, text_embedding FROM notes_vec").fetchall()
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return base, vec, schema


def test_sqlitevec_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    (tmp_path / "app").mkdir()
    db = make_langchain_sqlitevec(tmp_path / "app" / "vec.db", n=12)
    original = db.read_bytes()
    failing_after(fake_vllm, 1 + 4)

    with pytest.raises(MigrationError, match="stopped at record 4 of 12"):
        migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    assert db.read_bytes() == original
    assert sorted(p.name for p in db.parent.iterdir()) == ["vec.db", "vec.db.vllm-embed-migrate"]

    fake_vllm.side_effect = _plain(fake_vllm)
    fake_vllm.reset()
    result = migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    assert (result.resumed, result.embedded_now) == (4, 8)
    assert len(embedded_texts(fake_vllm)) == 8
    assert result.backup is not None and result.backup.read_bytes() == original

    (tmp_path / "ref").mkdir()
    ref = make_langchain_sqlitevec(tmp_path / "ref" / "vec.db", n=12)
    migrate_store(open_store(ref), client, MigrationOptions(chunk_rows=4))
    assert _langchain_rows(db) == _langchain_rows(ref)


def test_sqlitevec_failure_inside_the_transaction_leaves_nothing(
    tmp_path, fake_vllm, client, monkeypatch
):
    """A failure while the copy is rebuilt abandons the copy (it has no rollback journal:
    the next run makes it again); the original is untouched and the next run succeeds
    from the journaled vectors."""
    from vllm_embed.migrate import sqlitevec

    db = make_langchain_sqlitevec(tmp_path / "vec.db", n=6)
    original = db.read_bytes()

    def broken(self, dim):  # type: ignore[no-untyped-def]
        return "CREATE VIRTUAL TABLE notes_vec USING no_such_module(x)"

    monkeypatch.setattr(sqlitevec.SqliteVecStore, "_create_sql", broken)
    with pytest.raises(Exception, match="no_such_module"):
        migrate_store(open_store(db), client)
    assert db.read_bytes() == original
    monkeypatch.undo()
    fake_vllm.reset()
    result = migrate_store(open_store(db), client)
    assert result.resumed == 6 and embedded_texts(fake_vllm) == []


def test_sqlitevec_killed_mid_transaction_then_resume(tmp_path, fake_vllm, client, monkeypatch):
    """A process killed while the copy's transaction was open leaves the copy and its hot
    journal; the next run copies the original again, embeds nothing again, and gives what
    an uninterrupted run gives."""
    import os
    import subprocess
    import sys

    from vllm_embed.migrate import sqlitevec

    db = make_langchain_sqlitevec(tmp_path / "vec.db", n=6)
    original = db.read_bytes()

    def stop(self):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # every vector is journaled; the copy is not committed

    monkeypatch.setattr(sqlitevec._VecWriter, "finish", stop)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    monkeypatch.undo()
    out = work_dir_for(db) / "output.tmp"
    # a real kill: another process opens the transaction on the copy and dies in it
    script = (
        "import os, sys\n"
        "from vllm_embed.migrate.kano import connect_vec\n"
        "conn = connect_vec(sys.argv[1])\n"
        "conn.isolation_level = None\n"
        "conn.execute('BEGIN IMMEDIATE')\n"
        "conn.execute('DELETE FROM notes')\n"
        "conn.execute('DROP TABLE notes_vec')\n"
        "os._exit(9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=False)
    assert done.returncode == 9
    journal = out.with_name(out.name + "-journal")
    assert journal.is_file() and journal.stat().st_size > 0  # the hot journal left behind

    fake_vllm.reset()
    result = migrate_store(open_store(db), client)
    assert result.resumed == 6 and embedded_texts(fake_vllm) == []
    assert result.backup is not None and result.backup.read_bytes() == original
    ref = make_langchain_sqlitevec(tmp_path / "ref.db", n=6)
    migrate_store(open_store(ref), client)
    assert _langchain_rows(db) == _langchain_rows(ref)
