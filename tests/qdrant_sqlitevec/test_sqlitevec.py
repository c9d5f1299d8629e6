"""``vllm-embed migrate`` on SQLite files with sqlite-vec vec0 tables: LangChain's
``SQLiteVec`` and a plain vec0 table (CliRunner, fake vLLM), then read through LangChain
and sqlite-vec; a kano-backlog index is still kano's."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from qdrant_sqlitevec_support import (
    langchain_sqlitevec_search,
    make_langchain_sqlitevec,
    make_plain_sqlitevec,
    plain_sqlitevec_rows,
)
from stores_support import OLD_DIM, embedded_texts, make_kano_index, texts

from vllm_embed import StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import open_store, read_sidecar
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


def _run(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def test_langchain_sqlitevec_migrated_then_searched_and_extended_with_langchain(
    tmp_path, fake_vllm
):
    from langchain_community.vectorstores import SQLiteVec
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = make_langchain_sqlitevec(tmp_path / "vec.db")
    original = db.read_bytes()
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert (
        "format: sqlite-vec (LangChain SQLiteVec; table notes_vec); 10 records; text from "
        "notes.text; dimension 24" in result.stderr
    )
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     vllm-embed, sqlite-vec" in result.stdout
    backup = tmp_path / f"vec.d{OLD_DIM}.bak.db"
    assert backup.read_bytes() == original
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(10))
    space = read_sidecar(db)
    assert space is not None and (space.model, space.dimension) == (MODEL, DIM)

    assert langchain_sqlitevec_search(db, fake_vector(texts(10)[4], DIM))[0] == texts(10)[4]
    # the trigger still feeds the rebuilt vec0 table: LangChain adds at the new dimension
    from qdrant_sqlitevec_support import _langchain_connection

    connection = _langchain_connection(db)
    try:
        store = SQLiteVec("notes", connection, DeterministicFakeEmbedding(size=DIM))
        store.add_texts(["a brand new note"], metadatas=[{"n": 99}])
        vectors = connection.execute("SELECT count(*) FROM notes_vec").fetchone()[0]
        blobs = connection.execute(
            "SELECT count(*) FROM notes WHERE length(text_embedding) = ?", (DIM * 4,)
        ).fetchone()[0]
        metadata = connection.execute("SELECT metadata FROM notes WHERE rowid = 4").fetchone()[0]
    finally:
        connection.close()
    assert (vectors, blobs) == (11, 11)
    assert metadata == '{"n": 3}'


def test_plain_vec0_table_keeps_keys_columns_and_metric(tmp_path, fake_vllm):
    db = make_plain_sqlitevec(tmp_path / "plain.sqlite")
    before = plain_sqlitevec_rows(db)
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert "format: sqlite-vec (vec0 table; table chunks); 8 records; text from chunks.content" in (
        result.stderr
    )
    after = plain_sqlitevec_rows(db)
    assert [r[:3] for r in after] == [r[:3] for r in before]
    assert {r[3] for r in before} == {OLD_DIM} and {r[3] for r in after} == {DIM}
    conn = connect_vec(db, read_only=True)
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks'").fetchone()[0]
        hits = conn.execute(
            "SELECT chunk_id FROM chunks WHERE embedding MATCH ? AND k = 2 AND lang = 'en'",
            (fake_vector(texts(8)[5], DIM).tobytes(),),
        ).fetchall()
    finally:
        conn.close()
    assert f"float[{DIM}] distance_metric=cosine" in sql and "+content TEXT" in sql
    assert hits[0][0] == "c005"


def test_text_column_named_or_refused(tmp_path, fake_vllm):
    db = make_plain_sqlitevec(tmp_path / "plain.db")
    result = _run(str(db), "--text-field", "lang", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "text from chunks.lang" in result.stderr
    wrong = _run(str(db), "--text-field", "nope")
    assert wrong.exit_code != 0
    assert "chunks has no column 'nope' (columns: lang, content)" in wrong.output


def test_rows_without_text_refused_before_any_request_or_dropped(tmp_path, fake_vllm):
    db = make_plain_sqlitevec(tmp_path / "plain.db", missing=3)
    original = db.read_bytes()
    refused = _run(str(db))
    assert refused.exit_code != 0
    assert "3 of 8 records" in refused.output and "--drop-missing-text" in refused.output
    assert db.read_bytes() == original and embedded_texts(fake_vllm) == []
    dropped = _run(str(db), "--drop-missing-text")
    assert dropped.exit_code == 0, dropped.output
    assert [r[0] for r in plain_sqlitevec_rows(db)] == [f"c{i:03d}" for i in range(3, 8)]


def test_langchain_rows_without_text_dropped_from_both_tables(tmp_path, fake_vllm):
    db = make_langchain_sqlitevec(tmp_path / "vec.db", n=5)
    conn = connect_vec(db)
    conn.execute("UPDATE notes SET text = NULL WHERE rowid = 2")
    conn.commit()
    conn.close()
    result = _run(str(db), "--drop-missing-text")
    assert result.exit_code == 0, result.output
    conn = connect_vec(db, read_only=True)
    try:
        base = [r[0] for r in conn.execute("SELECT rowid FROM notes ORDER BY rowid")]
        vec = [r[0] for r in conn.execute("SELECT rowid FROM notes_vec ORDER BY rowid")]
    finally:
        conn.close()
    assert base == vec == [1, 3, 4, 5]


def test_several_vec0_tables_need_collection(tmp_path, fake_vllm):
    db = make_langchain_sqlitevec(tmp_path / "vec.db", n=3)
    make_langchain_sqlitevec(db, n=2, table="other")
    refused = _run(str(db))
    assert "holds 2 vec0 tables (notes_vec, other_vec): pick one with --collection" in (
        refused.output
    )
    result = _run(str(db), "--collection", "other_vec")
    assert result.exit_code == 0, result.output
    conn = connect_vec(db, read_only=True)
    try:
        lengths = dict(
            conn.execute(
                "SELECT 'notes', vec_length(text_embedding) FROM notes_vec UNION ALL "
                "SELECT 'other', vec_length(text_embedding) FROM other_vec"
            ).fetchall()
        )
    finally:
        conn.close()
    assert lengths == {"notes": OLD_DIM, "other": DIM}


def test_kano_index_is_not_taken(tmp_path):
    db = make_kano_index(tmp_path / "vectors", vec0=True)
    assert open_store(db).format.startswith("kano-backlog SQLite index")


def test_corrupt_and_half_written_files_get_named_errors(tmp_path):
    db = make_langchain_sqlitevec(tmp_path / "vec.db")
    cut = tmp_path / "cut.db"
    cut.write_bytes(db.read_bytes()[:8192])
    with pytest.raises(StoreFormatError, match="damaged"):
        open_store(cut)

    half = make_langchain_sqlitevec(tmp_path / "half.db", n=4)
    conn = connect_vec(half)
    conn.execute("DELETE FROM notes_vec WHERE rowid = 4")  # the vec0 insert never happened
    conn.commit()
    conn.close()
    with pytest.raises(StoreFormatError, match="notes holds 4 rows but notes_vec 3"):
        open_store(half)


def test_without_sqlite_vec_is_refused_before_any_request(tmp_path, fake_vllm, monkeypatch):
    import sys

    from vllm_embed import MigrationError

    db = make_plain_sqlitevec(tmp_path / "plain.db")
    monkeypatch.setitem(sys.modules, "sqlite_vec", None)  # not installed
    with pytest.raises(MigrationError, match="pip install sqlite-vec") as caught:
        open_store(db)
    assert "kano" not in str(caught.value) and str(db) in str(caught.value)
    assert embedded_texts(fake_vllm) == []


@pytest.mark.parametrize("table", ["notes_vec", "notes"])
def test_rows_read_back_must_be_the_vectors_written(tmp_path, fake_vllm, monkeypatch, table):
    """The check compares the rows the writer kept aside with what the copy holds (vec0
    table and LangChain's BLOB column): a row changed after it was written fails it, and
    the original stays as it was."""
    from vllm_embed.migrate import sqlitevec

    db = make_langchain_sqlitevec(tmp_path / "vec.db")
    original = db.read_bytes()
    finish = sqlitevec._VecWriter.finish
    column = "text_embedding"

    def tamper(self):  # type: ignore[no-untyped-def]
        key = max(self._store._written[1])  # the last row is always kept aside
        self._conn.execute(
            f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (bytes(4 * DIM), key)
        )
        finish(self)

    monkeypatch.setattr(sqlitevec._VecWriter, "finish", tamper)
    result = _run(str(db))
    assert result.exit_code != 0
    assert f"row 10 of {table} is not the vector written" in result.output
    assert db.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vec.db", "vec.db.vllm-embed-migrate"]
