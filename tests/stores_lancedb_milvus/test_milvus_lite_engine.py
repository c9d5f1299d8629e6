"""Milvus Lite rows read and written column by column through milvus-lite's engine
(`vllm_embed.migrate._milvus_lite_engine`): the read is what ``query`` returns (segments,
memtable, upserts, deletes), which collections are filled that way, what comes back
through pymilvus after the migration, the batches refused, and a milvus-lite without the
engine steps used refused by name when the store is opened (fake vLLM)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from milvus_support import (
    close_milvus,
    make_langchain_milvus,
    make_plain_milvus,
    milvus_rows,
    milvus_vectors,
    spy_engine_writes,
)
from stores_support import OLD_DIM, listing, texts

from vllm_embed import MigrationError
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._milvus_lite import LiteClient
from vllm_embed.migrate._milvus_lite_engine import EngineInsert, engine_columns, plain
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM


def _count_engine_inserts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows handed to ``milvus_lite.Collection.insert`` (the per-row-dict path)."""
    from milvus_lite import Collection

    rows: list[int] = []
    real = Collection.insert

    def insert(self: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
        rows.append(len(records))
        return real(self, records, *args, **kwargs)

    monkeypatch.setattr(Collection, "insert", insert)
    return rows


@pytest.mark.parametrize("dynamic", [False, True], ids=["typed-fields", "dynamic-field"])
def test_collection_filled_columnar_unless_the_engine_must_do_more(
    tmp_path, fake_vllm, client, monkeypatch, dynamic
):
    """Typed scalar fields + the vector: columnar batches, no row through
    ``Collection.insert``; a dynamic field: the engine's own insert. Either way every row
    comes back through pymilvus with its fields, partition and new vector."""
    db = make_plain_milvus(tmp_path / "plain.db", n=9, dynamic=dynamic)
    before = milvus_rows(db, "docs")
    notes = milvus_rows(db, "notes")
    assert {r["_partition"] for r in before} == {"_default", "archive"}
    engine_rows = _count_engine_inserts(monkeypatch)

    result = migrate_store(open_store(db, collection="docs", text_field="body"), client)

    assert result.records == 9
    assert sum(engine_rows) == (9 if dynamic else 0)
    monkeypatch.undo()
    assert milvus_rows(db, "docs") == before  # keys, body, score/extra, partition of each
    assert milvus_rows(db, "notes") == notes
    vectors = milvus_vectors(db, "docs", "vec", "key")
    assert sorted(vectors) == list(range(9))
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, fake_vector(texts(9)[key], DIM), atol=1e-6)


def test_columnar_read_is_what_the_engines_query_returns(tmp_path):
    """Rows in the segments the database was closed with, rows only in the memtable
    (written after the reopen), a key upserted (its newer version wins) and keys deleted
    (from a segment and from the memtable): each partition read a column at a time equals
    ``query(order_by_pk=True)``, key order included."""
    db = make_plain_milvus(tmp_path / "plain.db", n=12, dynamic=False)
    lite = LiteClient(db)
    fields = ["key", "body", "score"]
    with lite as client:
        vec = [0.5] * OLD_DIM
        client.insert(
            "docs",
            [{"key": 50 + i, "body": f"late {i}", "vec": vec, "score": 9.0} for i in range(4)],
            partition_name="archive",
        )
        client.upsert(
            "docs",
            [{"key": 3, "body": "changed", "vec": vec, "score": 3.5}],
            partition_name="archive",
        )
        client.delete("docs", ids=[4, 51])
        engine = lite.collection("docs")
        assert plain(engine, "vec")
        got = {p: engine_columns(engine, p, fields, "here") for p in ("_default", "archive")}
        want = {
            p: engine.query(None, output_fields=fields, partition_names=[p], order_by_pk=True)
            for p in ("_default", "archive")
        }
    assert got == want
    assert [r["key"] for r in got["_default"]] == [0, 2, 6, 8, 10]
    assert [r["key"] for r in got["archive"]] == [1, 3, 5, 7, 9, 11, 50, 52, 53]
    assert got["archive"][1] == {"key": 3, "body": "changed", "score": 3.5}
    assert got["_default"][0] == {"key": 0, "body": texts(12)[0], "score": 0.0}


def test_batches_cut_across_the_blocks_the_writer_receives(
    tmp_path, fake_vllm, client, monkeypatch
):
    """Rows arrive in blocks of 3 and go in 4 at a time: each batch is made of exactly its
    rows (pieces of two blocks joined, a block's tail kept for the next batch), every row
    once with its own vector."""
    from vllm_embed.migrate import _engine
    from vllm_embed.migrate import milvus as milvus_format

    db = make_langchain_milvus(tmp_path / "milvus.db", n=10)
    before = milvus_rows(db, "LangChainCollection")
    monkeypatch.setattr(_engine._Assembler, "_BLOCK_BYTES", 3 * DIM * 4)
    monkeypatch.setattr(milvus_format.MilvusLiteStore, "batch_rows", 4)
    written, _ = spy_engine_writes(monkeypatch, kill_after=-1)
    migrate_store(open_store(db), client)
    assert [(kind, len(keys)) for kind, keys in written] == [("insert", 4)] * 2 + [("insert", 2)]
    assert [k for _, keys in written for k in keys] == [f"id-{i}" for i in range(10)]
    monkeypatch.undo()
    assert milvus_rows(db, "LangChainCollection") == before
    vectors = milvus_vectors(db, "LangChainCollection", "vector", "pk")
    for i in range(10):
        np.testing.assert_allclose(vectors[f"id-{i}"], fake_vector(texts(10)[i], DIM), atol=1e-6)


def test_engine_insert_refuses_bad_batches_and_writes_good_ones(tmp_path):
    db = make_plain_milvus(tmp_path / "plain.db", n=2, dynamic=False)
    lite = LiteClient(db)
    with lite:
        engine = lite.collection("docs")
        insert = EngineInsert(engine, "vec", "the copy")
        assert insert.columnar
        row = {"key": 100, "body": "new", "score": 0.5}
        vector = np.arange(OLD_DIM, dtype=np.float32)[None, :] / OLD_DIM
        with pytest.raises(MigrationError, match=r"vectors of shape \(1, 25\) for 1 rows"):
            insert.insert("_default", [row], np.zeros((1, OLD_DIM + 1), np.float32))
        with pytest.raises(MigrationError, match="'score' is not nullable"):
            insert.insert("_default", [{**row, "score": None}], vector)
        with pytest.raises(MigrationError, match="'body' is longer than its max_length 1024"):
            insert.insert("_default", [{**row, "body": "x" * 1025}], vector)
        with pytest.raises(MigrationError, match="no partition 'gone'"):
            insert.insert("gone", [row], vector)
        assert engine.get([100]) == []  # nothing of a refused batch went in
        insert.insert("archive", [row], vector)
        got = engine.get([100], partition_names=["archive"], output_fields=["*"])
    assert len(got) == 1
    assert {k: got[0][k] for k in row} == row
    np.testing.assert_allclose(got[0]["vec"], vector[0], atol=1e-7)
    # what the engine took in survives a close and reopen (its write-ahead log / flush)
    assert milvus_vectors(db, "docs", "vec", "key").keys() == {0, 1, 100}


def _without_instance_attribute(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from milvus_lite import Collection

    real = Collection.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        delattr(self, name)

    monkeypatch.setattr(Collection, "__init__", init)


@pytest.mark.parametrize(
    "missing", ["_trigger_flush", "_apply", "_next_seq", "InsertOp", "assemble_candidates"]
)
def test_milvus_lite_without_an_engine_step_is_refused_at_open(tmp_path, monkeypatch, missing):
    """A milvus-lite release whose engine lacks a step the columnar insert uses is refused
    when the store is opened (before anything is embedded), by name, with its version and
    the range tested; the database is untouched."""
    from milvus_lite import Collection

    db = make_plain_milvus(tmp_path / "plain.db", n=3, dynamic=False)
    before = listing(db)
    if missing == "InsertOp":
        monkeypatch.delattr("milvus_lite.engine.operation.InsertOp")
    elif missing == "assemble_candidates":  # (the engine's query keeps its own reference)
        monkeypatch.delattr("milvus_lite.search.assembler.assemble_candidates")
    elif missing == "_next_seq":
        _without_instance_attribute(monkeypatch, missing)
    else:
        monkeypatch.delattr(Collection, missing)
    with pytest.raises(
        MigrationError,
        match=rf"milvus-lite \(3\.[0-9.]+\) has no .*{missing}.*tested with "
        r"milvus-lite>=3\.2,<4.*original is untouched",
    ):
        open_store(db, collection="docs", text_field="body")
    monkeypatch.undo()
    close_milvus(db)
    assert listing(db) == before
