"""``vllm-embed migrate`` on LanceDB databases written by LangChain, LlamaIndex, AnythingLLM's
layout and plain lancedb (CliRunner, fake vLLM), then queried through the same library."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner, Result
from lancedb_support import (
    lance_rows,
    lance_vectors,
    make_anythingllm_lancedb,
    make_langchain_lancedb,
    make_llamaindex_lancedb,
    make_plain_lancedb,
)
from stores_support import OLD_DIM, embedded_texts, listing, texts

from vllm_embed import MissingTextError, StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


def _run(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def _table(path, name):  # type: ignore[no-untyped-def]
    import lancedb

    return lancedb.connect(str(path)).open_table(name)


def test_langchain_lancedb_migrated_by_the_cli_then_searched_with_langchain(tmp_path, fake_vllm):
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import Embeddings

    db = make_langchain_lancedb(tmp_path / "lancedb", n=10)
    before = lance_rows(db, "vectorstore")
    original = listing(db)
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert "format: LanceDB (LangChain LanceDB; table vectorstore); 10 records" in result.stderr
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     vllm-embed, lancedb" in result.stdout
    backup = tmp_path / f"lancedb.d{OLD_DIM}.bak"
    assert f"backup       {backup}" in result.stdout
    assert listing(backup) == original  # the original, byte for byte
    assert embedded_texts(fake_vllm)[1:] == texts(10)
    assert API_KEY not in result.output

    table = _table(db, "vectorstore")
    assert str(table.schema.field("vector").type) == f"fixed_size_list<item: float>[{DIM}]"
    assert lance_rows(db, "vectorstore") == before  # ids, text, metadata struct kept
    space = EmbeddingSpace.from_json(table.schema.metadata[SPACE_KEY.encode()].decode())
    assert (space.model, space.dimension) == (MODEL, DIM)
    np.testing.assert_allclose(
        lance_vectors(db, "vectorstore"), np.stack([fake_vector(t, DIM) for t in texts(10)])
    )

    class Fake(Embeddings):
        def embed_documents(self, docs):  # type: ignore[no-untyped-def]
            return [fake_vector(d, DIM).tolist() for d in docs]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    store = LanceDB(uri=str(db), embedding=Fake(), table_name="vectorstore")
    hit = store.similarity_search(texts(10)[7], k=1)[0]
    assert hit.page_content == texts(10)[7]
    assert hit.metadata == {"n": 7, "source": "doc2.md"}


def test_indexes_are_created_again_with_their_parameters(tmp_path, fake_vllm, client):
    from lancedb.index import FTS, BTree, IvfPq

    db = make_langchain_lancedb(tmp_path / "lancedb", n=300)
    table = _table(db, "vectorstore")
    table.create_index(
        "vector",
        config=IvfPq(distance_type="cosine", num_partitions=2, num_sub_vectors=4),
        name="vec_idx",
    )
    table.create_index("text", config=FTS(with_position=True, stem=False), name="text_fts")
    table.create_index("id", config=BTree(), name="id_btree")

    result = migrate_store(open_store(db), client)
    assert result.new_dim == DIM and result.verified_with == ["vllm-embed", "lancedb"]
    table = _table(db, "vectorstore")
    indexes = {i.name: i for i in table.list_indices()}
    assert {n: i.index_type for n, i in indexes.items()} == {
        "vec_idx": "IvfPq",
        "text_fts": "FTS",
        "id_btree": "BTree",
    }
    vec = indexes["vec_idx"].index_details
    assert vec["metric_type"] == "COSINE" and vec["compression"]["num_sub_vectors"] == 4
    assert table.index_stats("vec_idx").num_indexed_rows == 300  # trained on the new rows
    fts = indexes["text_fts"].index_details
    assert (fts["with_position"], fts["stem"]) == (True, False)
    phrase = table.search('"the sea is blue"', query_type="fts").limit(3).to_list()
    assert phrase and all("the sea is blue" in r["text"] for r in phrase)
    query = fake_vector(texts(300)[42], DIM)
    hits = table.search(query).distance_type("cosine").nprobes(2).refine_factor(10).limit(1)
    assert hits.to_list()[0]["id"] == "id-42"


def test_llamaindex_lancedb_embeds_what_llamaindex_embeds_then_queried(tmp_path, fake_vllm):
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    db = make_llamaindex_lancedb(tmp_path / "lancedb", n=6)
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert "LanceDB (LlamaIndex LanceDBVectorStore; table nodes)" in result.stderr
    sent = embedded_texts(fake_vllm)[1:]
    assert sent[0] == f"file_name: f0.txt\n\n{texts(6)[0]}"  # page is excluded from embeds

    store = LanceDBVectorStore(uri=str(db), table_name="nodes")
    got = store.query(VectorStoreQuery(query_embedding=fake_vector(sent[3], DIM).tolist()))
    assert got.ids[0] == "node-3"
    assert got.nodes[0].get_content() == texts(6)[3]
    assert got.nodes[0].metadata == {"file_name": "f3.txt", "page": 3}


def test_anythingllm_workspace_table(tmp_path, fake_vllm):
    db = make_anythingllm_lancedb(tmp_path / "storage" / "lancedb", n=6)
    before = lance_rows(db, "my-workspace")
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert "format: LanceDB (AnythingLLM; table my-workspace); 6 records" in result.stderr
    assert lance_rows(db, "my-workspace") == before
    # AnythingLLM's own query: search(vector).metricType("cosine").limit(5)
    rows = _table(db, "my-workspace").search(fake_vector(texts(6)[4], DIM))
    assert rows.distance_type("cosine").limit(5).to_list()[0]["title"] == "d4.txt"


def test_plain_table_needs_its_text_column(tmp_path, fake_vllm):
    db = make_plain_lancedb(tmp_path / "db", text_column="body")
    before = listing(db)
    result = _run(str(db))
    assert result.exit_code != 0
    assert "table 'docs' has no column 'text'; name the text column with --text-field" in (
        result.output
    )
    assert "string columns: body" in result.output
    assert listing(db) == before and embedded_texts(fake_vllm) == []

    labels = lance_rows(db, "labels")
    result = _run(str(db), "--text-field", "body")
    assert result.exit_code == 0, result.output
    assert "format: LanceDB (table docs); 8 records; text from body" in result.stderr
    docs = _table(db, "docs")
    assert docs.schema.field("embedding").type.list_size == DIM
    assert docs.schema.metadata[b"owner"] == b"tests"
    assert lance_rows(db, "docs") == [
        {"key": i, "body": t, "score": i / 2} for i, t in enumerate(texts(8))
    ]
    assert lance_rows(db, "labels") == labels  # the table without vectors is left alone


def test_records_without_text_are_named_before_any_request(tmp_path, fake_vllm, client):
    db = make_plain_lancedb(tmp_path / "db", missing=2)
    before = listing(db)
    with pytest.raises(MissingTextError, match=r"2 of 8 records .* have no text in body"):
        migrate_store(open_store(db, text_field="body"), client)
    assert listing(db) == before
    assert [c for c in fake_vllm.calls if c.request.url.path.endswith("/embeddings")] == []

    result = _run(str(db), "--text-field", "body", "--drop-missing-text")
    assert result.exit_code == 0, result.output
    assert [r["key"] for r in lance_rows(db, "docs")] == list(range(2, 8))


def test_collection_picks_one_table(tmp_path, fake_vllm):
    db = make_langchain_lancedb(tmp_path / "db", n=4, table="first")
    make_langchain_lancedb(db, n=3, table="second")
    second = listing(db / "second.lance")
    result = _run(str(db), "--collection", "first")
    assert result.exit_code == 0, result.output
    assert "table first); 4 records" in result.stderr
    assert listing(db / "second.lance") == second
    assert _table(db, "first").schema.field("vector").type.list_size == DIM
    assert _table(db, "second").schema.field("vector").type.list_size == OLD_DIM

    unknown = _run(str(db), "--collection", "nope")
    assert unknown.exit_code != 0
    assert "no table 'nope'; tables: first, second" in unknown.output


def test_both_tables_migrated_and_a_table_dir_names_its_database(tmp_path, fake_vllm, client):
    db = make_langchain_lancedb(tmp_path / "db", n=4, table="first")
    make_langchain_lancedb(db, n=3, table="second")
    store = open_store(db)
    assert store.ids[:1] == ["first/id-0"] and len(store.ids) == 7
    one = open_store(db / "second.lance")
    assert one.format == "LanceDB (LangChain LanceDB; table second)" and one.path == db
    migrate_store(store, client)
    assert {_table(db, n).schema.field("vector").type.list_size for n in ("first", "second")} == {
        DIM
    }


def test_half_written_and_corrupt_tables_are_named_errors(tmp_path):
    db = make_langchain_lancedb(tmp_path / "db", n=4)
    versions = db / "vectorstore.lance" / "_versions"
    hidden = tmp_path / "versions"
    versions.rename(hidden)
    with pytest.raises(StoreFormatError, match="not a complete LanceDB table"):
        open_store(db)
    hidden.rename(versions)

    data = next((db / "vectorstore.lance" / "data").iterdir())
    data.write_bytes(data.read_bytes()[:100])  # a truncated data file
    with pytest.raises(StoreFormatError, match="lancedb cannot read this database"):
        open_store(db)


def test_dry_run_estimates_and_writes_nothing(tmp_path, fake_vllm):
    db = make_plain_lancedb(tmp_path / "db", missing=1)
    before = listing(db)
    result = _run(str(db), "--text-field", "body", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "format       LanceDB (table docs)" in result.stdout
    assert "records      8 (1 without text)" in result.stdout
    assert f"dimension    {OLD_DIM} -> {DIM} (probed" in result.stdout
    assert "estimate     ~" in result.stdout and "for 7 records" in result.stdout
    assert "warning      records without text: '0'" in result.stdout
    assert listing(db) == before and not list(tmp_path.glob("db.*"))


def test_out_writes_a_new_database_and_leaves_the_original(tmp_path, fake_vllm):
    """``--out DIR``: the migrated database is a new directory that LangChain's LanceDB
    opens and queries; the original is byte-for-byte as it was and no backup is made."""
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import Embeddings

    db = make_langchain_lancedb(tmp_path / "lancedb", n=10)
    before = lance_rows(db, "vectorstore")
    original = listing(db)
    out = tmp_path / "elsewhere" / "lancedb-new"
    result = _run(str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"migrated     LanceDB (LangChain LanceDB; table vectorstore): {out}" in result.stdout
    assert listing(db) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "lancedb"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["lancedb-new"]
    assert str(_table(out, "vectorstore").schema.field("vector").type) == (
        f"fixed_size_list<item: float>[{DIM}]"
    )
    assert lance_rows(out, "vectorstore") == before

    class Fake(Embeddings):
        def embed_documents(self, docs):  # type: ignore[no-untyped-def]
            return [fake_vector(d, DIM).tolist() for d in docs]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    hit = LanceDB(uri=str(out), embedding=Fake(), table_name="vectorstore").similarity_search(
        texts(10)[3], k=1
    )[0]
    assert (hit.page_content, hit.metadata) == (texts(10)[3], {"n": 3, "source": "doc1.md"})
    again = _run(str(db), "--out", str(out))
    assert again.exit_code != 0 and "already exists" in again.output
    assert listing(db) == original


def test_vectors_read_back_must_be_those_written(tmp_path, fake_vllm, monkeypatch):
    """The check reads back the rows the writer kept aside: a vector changed after it was
    written fails it by name, and the original is untouched."""
    from vllm_embed.migrate import lancedb as lance_format

    db = make_langchain_lancedb(tmp_path / "lancedb", n=10)
    original = listing(db)
    finish = lance_format._LanceWriter.finish

    def tamper(self):  # type: ignore[no-untyped-def]
        finish(self)
        self._tables[0].update(where="id = 'id-9'", values={"vector": [0.5] * DIM})

    monkeypatch.setattr(lance_format._LanceWriter, "finish", tamper)
    result = _run(str(db))
    assert result.exit_code != 0
    assert "table 'vectorstore': vectors read back differ from those written" in result.output
    assert listing(db) == original


def test_without_lancedb_is_refused_before_any_request(tmp_path, fake_vllm, monkeypatch):
    """Reading goes through pylance alone, but writing needs lancedb: a database is refused
    by name when lancedb is not installed, before anything is sent or written."""
    import importlib.util

    db = make_langchain_lancedb(tmp_path / "lancedb", n=4)
    original = listing(db)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "lancedb" else find_spec(name, *a),
    )
    result = _run(str(db))
    assert result.exit_code != 0
    assert "needs the lancedb package: pip install lancedb" in result.output
    assert embedded_texts(fake_vllm) == [] and listing(db) == original
