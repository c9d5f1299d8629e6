"""``vllm-embed migrate`` on Milvus Lite databases written by LangChain, LlamaIndex and plain
pymilvus (fake vLLM), then searched through the same library; faults (``doctor --store``:
tests/doctor/test_lancedb_milvus.py)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner, Result
from milvus_support import (
    close_milvus,
    make_langchain_milvus,
    make_llamaindex_milvus,
    make_plain_milvus,
    milvus_rows,
    milvus_vectors,
    spy_engine_writes,
)
from stores_support import OLD_DIM, embedded_texts, listing, texts

from vllm_embed import MigrationError, MissingTextError, StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.migration import assert_server_gone_then_resumed
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


def _run(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def _describe(path, name):  # type: ignore[no-untyped-def]
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    try:
        index = [client.describe_index(name, i) for i in client.list_indexes(name)]
        return (
            client.describe_collection(name),
            index,
            sorted(client.list_partitions(name)),
            client.list_aliases(name)["aliases"],
        )
    finally:
        client.close()
        close_milvus(path)


def test_langchain_milvus_migrated_by_the_cli_then_searched_with_langchain(tmp_path, fake_vllm):
    from langchain_core.embeddings import Embeddings
    from langchain_milvus import Milvus

    db = make_langchain_milvus(tmp_path / "milvus.db", n=10)
    before = milvus_rows(db, "LangChainCollection")
    original = listing(db)
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert (
        "format: Milvus Lite (LangChain Milvus; collection LangChainCollection); 10 records"
        in result.stderr
    )
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     milvus-lite" in result.stdout
    backup = tmp_path / f"milvus.db.d{OLD_DIM}.bak"
    assert f"backup       {backup}" in result.stdout and listing(backup) == original
    assert embedded_texts(fake_vllm)[1:] == texts(10)
    assert API_KEY not in result.output
    assert milvus_rows(db, "LangChainCollection") == before  # pk, text, metadata fields kept
    described, index, _, _ = _describe(db, "LangChainCollection")
    vector = next(f for f in described["fields"] if f["name"] == "vector")
    assert vector["params"]["dim"] == DIM
    assert [(i["index_type"], i["metric_type"]) for i in index] == [("FLAT", "L2")]
    space = EmbeddingSpace.from_json(described["properties"][SPACE_KEY])
    assert (space.model, space.dimension) == (MODEL, DIM)

    class Fake(Embeddings):
        def embed_documents(self, docs):  # type: ignore[no-untyped-def]
            return [fake_vector(d, DIM).tolist() for d in docs]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    store = Milvus(embedding_function=Fake(), connection_args={"uri": str(db)})
    try:
        hit = store.similarity_search(texts(10)[7], k=1)[0]
        assert hit.page_content == texts(10)[7]
        assert (hit.metadata["n"], hit.metadata["source"]) == (7, "doc2.md")
    finally:
        store.client.close()
        close_milvus(db)


def test_llamaindex_milvus_embeds_what_llamaindex_embeds_then_queried(tmp_path, fake_vllm, client):
    import asyncio

    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.milvus import MilvusVectorStore

    db = make_llamaindex_milvus(tmp_path / "li.db", n=6)
    result = migrate_store(open_store(db), client)
    assert result.format == "Milvus Lite (LlamaIndex MilvusVectorStore; collection nodes)"
    sent = embedded_texts(fake_vllm)[1:]
    assert sent[0] == f"file_name: f0.txt\n\n{texts(6)[0]}"  # page is excluded from embeds

    async def reopen():  # type: ignore[no-untyped-def]
        return MilvusVectorStore(uri=str(db), collection_name="nodes", dim=DIM)

    store = asyncio.run(reopen())
    try:
        # LlamaIndex does not load a collection of a reopened milvus-lite database (the
        # unmigrated one fails the same way): load it as such an app has to
        store.client.load_collection("nodes")
        query = VectorStoreQuery(query_embedding=fake_vector(sent[3], DIM).tolist())
        got = store.query(query)
        assert got.ids[0] == "node-3"
        assert got.nodes[0].get_content() == texts(6)[3]
        assert got.nodes[0].metadata == {"file_name": "f3.txt", "page": 3}
    finally:
        store.client.close()
        close_milvus(db)


def test_plain_collection_keeps_partitions_index_alias_and_properties(tmp_path, fake_vllm):
    from pymilvus import MilvusClient

    db = make_plain_milvus(tmp_path / "plain.db", n=8)
    before = milvus_rows(db, "docs")
    notes = milvus_rows(db, "notes")
    described, index, partitions, aliases = _describe(db, "docs")

    no_field = _run(str(db), "--collection", "docs")
    assert no_field.exit_code != 0
    assert "collection 'docs' has no field 'text'; name the text field with --text-field" in (
        no_field.output
    )
    result = _run(str(db), "--text-field", "body", "--collection", "docs")
    assert result.exit_code == 0, result.output
    assert "format: Milvus Lite (collection docs); 8 records; text from body" in result.stderr
    assert milvus_rows(db, "docs") == before  # keys, body, dynamic field, partition of each
    assert {r["_partition"] for r in before} == {"_default", "archive"}
    assert milvus_rows(db, "notes") == notes
    new, new_index, new_partitions, new_aliases = _describe(db, "docs")
    assert (
        (new_partitions, new_aliases)
        == (partitions, aliases)
        == (
            ["_default", "archive"],
            ["docs_live"],
        )
    )
    assert (
        [(i["index_type"], i["metric_type"]) for i in new_index]
        == [(i["index_type"], i["metric_type"]) for i in index]
        == [("HNSW", "COSINE")]
    )
    assert new["properties"]["owner"] == "tests" and new["enable_dynamic_field"] is True
    assert [f["name"] for f in new["fields"]] == [f["name"] for f in described["fields"]]
    vectors = milvus_vectors(db, "docs", "vec", "key")
    np.testing.assert_allclose(vectors[5], fake_vector(texts(8)[5], DIM), atol=1e-6)

    client = MilvusClient(str(db))
    try:  # readers of the alias see the new collection
        client.load_collection("docs")
        hits = client.search(
            "docs_live", data=[fake_vector(texts(8)[6], DIM).tolist()], limit=1, anns_field="vec"
        )
        assert hits[0][0]["key"] == 6
    finally:
        client.close()
        close_milvus(db)


def test_records_without_text_are_named_before_any_request(tmp_path, fake_vllm, client):
    db = make_plain_milvus(tmp_path / "plain.db", missing=2)
    before = listing(db)
    with pytest.raises(MissingTextError, match=r"2 of 8 records .* have no text in body"):
        migrate_store(open_store(db, text_field="body", collection="docs"), client)
    assert listing(db) == before
    assert [c for c in fake_vllm.calls if c.request.url.path.endswith("/embeddings")] == []

    result = _run(str(db), "--text-field", "body", "--collection", "docs", "--drop-missing-text")
    assert result.exit_code == 0, result.output
    assert sorted(r["key"] for r in milvus_rows(db, "docs")) == list(range(2, 8))


def test_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    db, reference = assert_server_gone_then_resumed(
        lambda folder: make_langchain_milvus(folder / "milvus.db", n=10),
        tmp_path, fake_vllm, failing_after, client, work_dir_beside=False,
    )  # fmt: skip
    assert milvus_rows(db, "LangChainCollection") == milvus_rows(reference, "LangChainCollection")
    got = milvus_vectors(db, "LangChainCollection", "vector", "pk")
    want = milvus_vectors(reference, "LangChainCollection", "vector", "pk")
    assert got.keys() == want.keys()
    for key in got:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)


def test_killed_while_filling_goes_on_from_the_journal(tmp_path, fake_vllm, client, monkeypatch):
    from vllm_embed.migrate import milvus as milvus_format

    db = make_langchain_milvus(tmp_path / "milvus.db", n=10)
    original = listing(db)
    monkeypatch.setattr(milvus_format.MilvusLiteStore, "batch_rows", 3)
    written, kill = spy_engine_writes(monkeypatch, kill_after=2)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    assert listing(db) == original
    assert written == [("insert", ["id-0", "id-1", "id-2"]), ("insert", ["id-3", "id-4", "id-5"])]

    fake_vllm.reset()
    written.clear()
    kill["after"] = -1
    result = migrate_store(open_store(db), client)
    assert embedded_texts(fake_vllm) == [] and result.resumed == 10
    # the first batch after the kill may be in already: upserted (no duplicate key)
    assert written == [("upsert", ["id-6", "id-7", "id-8"]), ("insert", ["id-9"])]
    assert sorted(milvus_vectors(db, "LangChainCollection", "vector", "pk")) == sorted(
        f"id-{i}" for i in range(10)
    )


def test_half_written_database_is_a_named_error(tmp_path):
    db = make_langchain_milvus(tmp_path / "milvus.db", n=3)
    (db / "collections" / "LangChainCollection" / "schema.json").unlink()
    with pytest.raises(StoreFormatError, match="not a complete Milvus Lite collection"):
        open_store(db)


def test_database_open_in_this_process_is_refused_by_name(tmp_path):
    from pymilvus import MilvusClient

    db = make_langchain_milvus(tmp_path / "milvus.db", n=3)
    before = listing(db)
    client = MilvusClient(str(db))  # an app that keeps its client (and milvus-lite's server)
    try:
        with pytest.raises(MigrationError, match="is open in this process"):
            open_store(db)
    finally:
        client.close()
        close_milvus(db)
    assert listing(db) == before
    assert open_store(db).ids == ["id-0", "id-1", "id-2"]  # once closed, it reads


def test_milvus_lite_without_a_reachable_engine_is_a_named_error(tmp_path, monkeypatch):
    """The migration goes through milvus-lite's in-process engine (private to milvus-lite):
    a release that moved it is refused by name, with the version, and the store kept."""
    from vllm_embed.migrate import _milvus_lite

    db = make_langchain_milvus(tmp_path / "milvus.db", n=3)
    before = listing(db)

    class Moved:  # a registry that serves the path but not through an engine we know
        def __init__(self, real: object) -> None:
            self._servers = {k: (v[0], object()) for k, v in real._servers.items()}  # type: ignore[attr-defined]
            self.release_server = real.release_server  # type: ignore[attr-defined]

    real = _milvus_lite._servers
    monkeypatch.setattr(_milvus_lite, "_servers", lambda: Moved(real()))
    with pytest.raises(MigrationError, match=r"milvus-lite \(3\.[0-9.]+\).*milvus-lite>=3\.2,<4"):
        open_store(db)
    monkeypatch.undo()
    close_milvus(db)
    assert listing(db) == before
