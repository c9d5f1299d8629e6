"""The three layouts, written by the real libraries, migrated through the CLI, then queried
through the real library: the expected neighbour comes back, indexes and types are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from pgvector_support import NEW_DIM, OLD_DIM, corpus, lightrag_tables, sql

from vllm_embed.cli import main
from vllm_embed_testing.fake_server import FakeEmbeddingServer


def migrate(url: str, fake: FakeEmbeddingServer, *extra: str) -> Any:
    result = CliRunner().invoke(
        main, ["migrate", url, "--base-url", fake.base_url, "-y", *extra], catch_exceptions=False
    )
    return result


def column_type(url: str, table: str, column: str) -> str:
    return str(
        sql(
            url,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s",
            [table, column],
        )[0][0]
    )


def dims(url: str, table: str, column: str, where: str = "TRUE") -> set[int]:
    return {
        r[0] for r in sql(url, f"SELECT DISTINCT vector_dims({column}) FROM {table} WHERE {where}")
    }


def test_langchain_typed_with_hnsw(db: str, fake: FakeEmbeddingServer, run_app: Any) -> None:
    texts = corpus(300)
    run_app("lc_create", url=db, collections={"docs": texts}, dim=OLD_DIM, typed=True)
    sql(
        db,
        "CREATE INDEX lc_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 8, ef_construction = 32)",
    )
    before = sql(db, "SELECT indexdef FROM pg_indexes WHERE indexname = 'lc_hnsw'")[0][0]
    result = migrate(db, fake)
    assert result.exit_code == 0, result.output
    assert "found        [migrate] langchain" in result.output
    assert "'docs' (300 rows)" in result.output
    assert "readers blocked" in result.output
    assert column_type(db, "langchain_pg_embedding", "embedding") == f"vector({NEW_DIM})"
    assert dims(db, "langchain_pg_embedding", "embedding") == {NEW_DIM}
    # same index, same opclass and parameters, same name
    assert sql(db, "SELECT indexdef FROM pg_indexes WHERE indexname = 'lc_hnsw'")[0][0] == before
    assert sql(
        db,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'langchain_pg_embedding'::regclass "
        "AND conname = 'langchain_pg_embedding_pkey' AND contype = 'p'",
    ) == [(1,)]
    # the backup keeps the old vectors
    assert dims(db, "langchain_pg_embedding_vllm_bak_d8", "embedding") == {OLD_DIM}
    # the real library finds the expected neighbour with the new model
    wanted = [texts[i] for i in (0, 17, 299)]
    assert run_app("lc_query", url=db, collection="docs", queries=wanted, dim=NEW_DIM) == wanted
    # the space is recorded on the column
    comment = sql(
        db,
        "SELECT col_description('langchain_pg_embedding'::regclass, "
        "(SELECT attnum FROM pg_attribute WHERE attrelid = 'langchain_pg_embedding'::regclass "
        "AND attname = 'embedding'))",
    )[0][0]
    assert json.loads(comment)["vllm_embed_space"]["dimension"] == NEW_DIM
    # a second run sees the recorded space: nothing to do
    again = migrate(db, fake)
    assert again.exit_code == 0 and "unchanged" in again.output
    dropped = migrate(db, fake, "--drop-backup")
    assert "dropped      backup public.langchain_pg_embedding_vllm_bak_d8" in dropped.output
    assert sql(db, "SELECT to_regclass('langchain_pg_embedding_vllm_bak_d8')") == [(None,)]


def test_langchain_one_collection_of_untyped_column(
    db: str, fake: FakeEmbeddingServer, run_app: Any
) -> None:
    a, b = corpus(40, "alpha"), corpus(30, "beta")
    run_app("lc_create", url=db, collections={"a": a, "b": b}, dim=OLD_DIM, typed=False)
    result = migrate(db, fake, "--collection", "a")
    assert result.exit_code == 0, result.output
    assert column_type(db, "langchain_pg_embedding", "embedding") == "vector"
    coll = "collection_id = (SELECT uuid FROM langchain_pg_collection WHERE name = '{}')"
    assert dims(db, "langchain_pg_embedding", "embedding", coll.format("a")) == {NEW_DIM}
    assert dims(db, "langchain_pg_embedding", "embedding", coll.format("b")) == {OLD_DIM}
    assert run_app("lc_query", url=db, collection="a", queries=[a[5]], dim=NEW_DIM) == [a[5]]
    spaces = sql(db, "SELECT collection FROM vllm_embed_spaces ORDER BY 1")
    assert spaces == [("a",)]


def test_langchain_collection_of_typed_column_refused(
    db: str, fake: FakeEmbeddingServer, run_app: Any
) -> None:
    run_app("lc_create", url=db, collections={"a": corpus(5)}, dim=OLD_DIM, typed=True)
    result = migrate(db, fake, "--collection", "a")
    assert result.exit_code == 1
    assert "shared by every collection" in result.output
    assert dims(db, "langchain_pg_embedding", "embedding") == {OLD_DIM}


def test_llamaindex_hnsw(db: str, fake: FakeEmbeddingServer) -> None:
    from pg_apps import li_create, li_query  # in-process: LlamaIndex caches nothing per dim

    texts = corpus(120)
    made = li_create({"url": db, "table": "docs", "texts": texts, "dim": OLD_DIM})
    index = sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
    assert index, "LlamaIndex made no HNSW index"
    result = migrate(db, fake, "--table", "data_docs")
    assert result.exit_code == 0, result.output
    assert "llamaindex public.data_docs" in result.output
    assert column_type(db, "data_docs", "embedding") == f"vector({NEW_DIM})"
    after = sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
    assert [i for i in after if "vllm_bak" not in i[0]] == index
    # LlamaIndex embeds metadata + text (MetadataMode.EMBED): so did the migration
    queries = [made["embed_texts"][i] for i in (3, 77)]
    found = li_query({"url": db, "table": "docs", "dim": NEW_DIM, "queries": queries})
    assert found == [texts[3], texts[77]]


@pytest.mark.parametrize("suffix", ["", "_bge_small_8d"])
def test_lightrag_tables(db: str, fake: FakeEmbeddingServer, suffix: str) -> None:
    names = lightrag_tables(db, 50, suffix=suffix)
    result = migrate(db, fake)
    assert result.exit_code == 0, result.output
    for name in names:
        assert f"lightrag   public.{name}" in result.output
        assert column_type(db, name, "content_vector") == f"vector({NEW_DIM})"
        idx = sql(
            db, "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [f"idx_{name}_hnsw_cosine"]
        )
        assert (
            "hnsw (content_vector vector_cosine_ops) WITH (m='16', ef_construction='64')"
            in idx[0][0]
        )
    from vllm_embed_testing.fake_server import fake_vector

    chunks = names[0]
    text = sql(db, f"SELECT content FROM {chunks} WHERE id = 'lightrag_vdb_chunks-7'")[0][0]
    top = sql(
        db,
        f"SELECT id FROM {chunks} ORDER BY content_vector <=> %s::vector LIMIT 1",
        [str(fake_vector(text, NEW_DIM).tolist())],
    )
    assert top == [("lightrag_vdb_chunks-7",)]


def test_custom_table(db: str, fake: FakeEmbeddingServer) -> None:
    sql(db, "CREATE TABLE notes (note_id int NOT NULL, body text, vec vector(8), extra jsonb)")
    sql(db, "CREATE UNIQUE INDEX notes_id ON notes (note_id)")
    sql(db, "CREATE INDEX notes_ivf ON notes USING ivfflat (vec vector_ip_ops) WITH (lists = 2)")
    sql(
        db,
        "INSERT INTO notes SELECT i, 'note ' || i, array_fill(i::real, ARRAY[8])::vector, NULL "
        "FROM generate_series(1, 40) i",
    )
    args = ["--table", "notes", "--id-column", "note_id", "--text-column", "body"]
    result = migrate(db, fake, *args, "--vector-column", "vec")
    assert result.exit_code == 0, result.output
    assert column_type(db, "notes", "vec") == f"vector({NEW_DIM})"
    idx = sql(db, "SELECT indexdef FROM pg_indexes WHERE indexname = 'notes_ivf'")[0][0]
    assert "ivfflat (vec vector_ip_ops) WITH (lists='2')" in idx
    assert sql(db, "SELECT count(*) FROM notes") == [(40,)]
