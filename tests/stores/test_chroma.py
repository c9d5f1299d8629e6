"""Chroma directories (plain chromadb, LangChain, LlamaIndex): migrated with the fake
server, then reopened and queried by chromadb / langchain-chroma / LlamaIndex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stores_support import (
    OLD_DIM,
    embedded_texts,
    listing,
    make_langchain_chroma,
    make_llamaindex_chroma,
    make_plain_chroma,
    texts,
)

from vllm_embed import MigrationError, StoreFormatError
from vllm_embed.migrate import MigrationOptions, MissingTextError, migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed.migrate.chroma import ChromaStore
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM, MODEL


def _collection(path: Path, name: str):  # type: ignore[no-untyped-def]
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    return client, client.get_collection(name, embedding_function=None)


def test_langchain_chroma_directory(tmp_path, fake_vllm, client):
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings

    db = make_langchain_chroma(tmp_path / "chroma_db", n=10)
    original = listing(db)
    store = open_store(db)
    assert isinstance(store, ChromaStore)
    assert store.format == "Chroma (LangChain Chroma; collection langchain)"
    assert (store.old_dim, len(store.ids)) == (OLD_DIM, 10)

    result = migrate_store(store, client, MigrationOptions(chunk_rows=4))

    assert (result.old_dim, result.new_dim, result.records) == (OLD_DIM, DIM, 10)
    assert result.verified_with == ["vllm-embed", "chromadb"]
    assert result.backup == tmp_path / f"chroma_db.d{OLD_DIM}.bak"
    assert listing(result.backup) == original  # the original, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chroma_db", f"chroma_db.d{OLD_DIM}.bak"]
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(10))

    class FakeServer(Embeddings):
        def embed_documents(self, items):  # type: ignore[no-untyped-def]
            return [fake_vector(t, DIM).tolist() for t in items]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    reopened = Chroma(embedding_function=FakeServer(), persist_directory=str(db))
    try:
        hit = reopened.similarity_search(texts(10)[7], k=1)[0]
        assert hit.id == "id-7" and hit.page_content == texts(10)[7]
        assert hit.metadata == {"n": 7, "source": "doc2.md"}
        collection = reopened._collection
        assert collection.metadata["hnsw:space"] == "cosine"
        assert collection.metadata["owner"] == "tests"
        space = EmbeddingSpace.from_json(collection.metadata[SPACE_KEY])
        assert (space.model, space.dimension) == (MODEL, DIM)
        assert collection.configuration_json["hnsw"]["space"] == "cosine"
    finally:
        reopened._client.close()
    again = open_store(db)
    assert again.recorded_space() == space
    sample = again.sample_vectors(3)
    assert sample is not None and sample[1].shape == (3, DIM)
    np.testing.assert_allclose(sample[1][0], fake_vector(sample[0][0], DIM), atol=1e-6)


def test_plain_chromadb_every_collection_keeps_configuration(tmp_path, fake_vllm, client):
    db = make_plain_chroma(tmp_path / "db")
    c, before = _collection(db, "notes")
    old_config = before.configuration_json
    old_all = before.get(include=["documents", "metadatas"])
    c.close()  # an app still holding a client would keep reading the old files

    store = open_store(db)
    assert store.format == "Chroma (notes, other)"
    assert store.ids[0] == "notes/n0" and store.ids[-1] == "other/o2"
    result = migrate_store(store, client)
    assert result.records == 10

    c, notes = _collection(db, "notes")
    try:
        assert notes.configuration_json == old_config  # ip, ef_construction 150, M 20
        assert notes.configuration_json["hnsw"]["space"] == "ip"
        assert {k: v for k, v in notes.metadata.items() if k != SPACE_KEY} == {
            "team": "search",
            "version": 3,
        }
        after = notes.get(include=["documents", "metadatas", "embeddings"])
        assert after["ids"] == old_all["ids"]
        assert after["documents"] == old_all["documents"]
        assert after["metadatas"] == old_all["metadatas"]
        np.testing.assert_allclose(after["embeddings"][2], fake_vector(texts(8)[2], DIM), atol=1e-6)
        hits = notes.query(query_embeddings=[fake_vector(texts(8)[5], DIM)], n_results=1)
        assert hits["ids"] == [["n5"]]
        other = c.get_collection("other", embedding_function=None)
        assert other.metadata["hnsw:space"] == "l2" and other.count() == 2
    finally:
        c.close()


def test_one_collection_leaves_the_others_untouched(tmp_path, fake_vllm, client):
    db = make_plain_chroma(tmp_path / "db")
    store = open_store(db, collection="other")
    assert store.ids == ["o1", "o2"]
    migrate_store(store, client)
    c, other = _collection(db, "other")
    try:
        assert other.get(include=["embeddings"])["embeddings"].shape == (2, DIM)
        notes = c.get_collection("notes", embedding_function=None)
        assert notes.get(include=["embeddings"])["embeddings"].shape == (8, OLD_DIM)
        assert SPACE_KEY not in notes.metadata
    finally:
        c.close()
    assert embedded_texts(fake_vllm)[1:] == ["x one", "x two"]


def test_unknown_collection_is_named(tmp_path):
    db = make_plain_chroma(tmp_path / "db")
    with pytest.raises(StoreFormatError, match="no collection 'nope'; collections: notes, other"):
        open_store(db, collection="nope")


def test_llamaindex_chroma_embeds_what_llamaindex_embeds(tmp_path, fake_vllm, client):
    import chromadb
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    db = make_llamaindex_chroma(tmp_path / "li")
    store = open_store(db)
    assert store.format == "Chroma (LlamaIndex ChromaVectorStore; collection quickstart)"
    eiffel = next(t for t in store.texts if t and "Eiffel" in t)
    assert eiffel == "file_name: paris.txt\n\nThe Eiffel Tower is in Paris."  # page excluded
    migrate_store(store, client)
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(t for t in store.texts if t)

    class FakeServer(BaseEmbedding):
        def _get_query_embedding(self, query):  # type: ignore[no-untyped-def]
            return fake_vector(query, DIM).tolist()

        async def _aget_query_embedding(self, query):  # type: ignore[no-untyped-def]
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    c = chromadb.PersistentClient(path=str(db))
    try:
        vector_store = ChromaVectorStore(chroma_collection=c.get_collection("quickstart"))
        index = VectorStoreIndex.from_vector_store(vector_store, embed_model=FakeServer())
        hits = index.as_retriever(similarity_top_k=1).retrieve(eiffel)
        assert hits[0].node.get_content() == "The Eiffel Tower is in Paris."
        assert hits[0].node.metadata["file_name"] == "paris.txt"
        assert hits[0].score == pytest.approx(1.0, abs=1e-4) or hits[0].score > 0.99
    finally:
        c.close()


def test_missing_documents_stop_before_any_request(tmp_path, fake_vllm, client):
    db = make_plain_chroma(tmp_path / "db", missing=2)
    original = listing(db)
    with pytest.raises(MissingTextError, match="--drop-missing-text") as info:
        migrate_store(open_store(db), client)
    assert info.value.ids == ["notes/n1", "notes/n3"]
    assert embedded_texts(fake_vllm) == []
    assert listing(db) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]

    result = migrate_store(open_store(db), client, MigrationOptions(drop_missing_text=True))
    assert result.dropped == ["notes/n1", "notes/n3"]
    c, notes = _collection(db, "notes")
    try:
        assert notes.get()["ids"] == ["n0", "n2", "n4", "n5", "n6", "n7"]
    finally:
        c.close()


def test_embedding_function_record_is_kept(tmp_path, fake_vllm, client):
    """A collection made with a (known) embedding function keeps its record: chromadb 1.x
    refuses to open it with a different one ("Embedding function conflict")."""
    import chromadb
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    db = tmp_path / "db"
    c = chromadb.PersistentClient(path=str(db))
    made = c.create_collection("withdef", embedding_function=DefaultEmbeddingFunction())
    made.add(ids=["a", "b"], embeddings=[[0.1] * 3, [0.3] * 3], documents=["alpha", "beta"])
    record = made.configuration_json["embedding_function"]
    c.close()
    assert record["name"] == "default"

    migrate_store(open_store(db), client)
    c, after = _collection(db, "withdef")
    try:
        assert after.configuration_json["embedding_function"] == record
        assert after.count() == 2
    finally:
        c.close()


def test_out_writes_a_new_directory(tmp_path, fake_vllm, client):
    db = make_langchain_chroma(tmp_path / "chroma_db", n=4)
    original = listing(db)
    out = tmp_path / "new_db"
    result = migrate_store(open_store(db), client, MigrationOptions(out=out))
    assert result.output == out and result.backup is None
    assert listing(db) == original
    c, collection = _collection(out, "langchain")
    try:
        assert collection.count() == 4
    finally:
        c.close()


def test_not_a_sqlite_file_is_refused(tmp_path):
    db = make_langchain_chroma(tmp_path / "chroma_db", n=3)
    (db / "chroma.sqlite3").write_bytes(b"garbage" * 100)
    before = listing(db)
    with pytest.raises(StoreFormatError, match="not an SQLite database"):
        open_store(db)
    assert listing(db) == before


def test_truncated_sqlite_is_a_named_error(tmp_path):
    db = make_langchain_chroma(tmp_path / "chroma_db", n=3)
    data = (db / "chroma.sqlite3").read_bytes()
    (db / "chroma.sqlite3").write_bytes(data[: len(data) // 3])
    before = listing(db)
    with pytest.raises(StoreFormatError, match="chromadb cannot open"):
        open_store(db)
    assert listing(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chroma_db"]


def test_text_field_flag_is_refused(tmp_path):
    db = make_langchain_chroma(tmp_path / "chroma_db", n=2)
    with pytest.raises(StoreFormatError, match="--text-field applies to nano-vectordb"):
        open_store(db, text_field="page_content")


def test_collection_flag_on_a_json_store_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(StoreFormatError, match="--collection applies to"):
        open_store(path, collection="x")


def test_chromadb_missing_is_a_named_error(tmp_path, monkeypatch):
    import sys

    db = make_langchain_chroma(tmp_path / "chroma_db", n=2)
    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(MigrationError, match="pip install chromadb"):
        open_store(db)


def test_embedding_function_record_of_an_unimportable_class_is_carried_over(
    tmp_path, fake_vllm, client
):
    """The app's own embedding function is not importable by the migration: its record
    (name + config) is carried over verbatim, and chromadb's registry is left as it was."""
    import chromadb
    from chromadb.api.types import Documents, EmbeddingFunction
    from chromadb.utils.embedding_functions import known_embedding_functions

    class AppFunction(EmbeddingFunction[Documents]):
        def __init__(self, url: str = "http://app") -> None:
            self.url = url

        def __call__(self, input: Documents):  # type: ignore[no-untyped-def]
            return [np.zeros(3, dtype=np.float32) for _ in input]

        @staticmethod
        def name() -> str:
            return "my-app-function"

        def get_config(self):  # type: ignore[no-untyped-def]
            return {"url": self.url}

        @staticmethod
        def build_from_config(config):  # type: ignore[no-untyped-def]
            return AppFunction(config["url"])

    db = tmp_path / "db"
    c = chromadb.PersistentClient(path=str(db))
    made = c.create_collection("appdocs", embedding_function=AppFunction("http://emb:9000"))
    made.add(ids=["a", "b"], embeddings=[[0.1] * 3, [0.3] * 3], documents=["alpha", "beta"])
    record = made.configuration_json["embedding_function"]
    c.close()
    assert record == {
        "type": "known",
        "name": "my-app-function",
        "config": {"url": "http://emb:9000"},
    }
    known_embedding_functions.pop("my-app-function", None)  # a fresh process would not know it
    registry = dict(known_embedding_functions)

    migrate_store(open_store(db), client)
    assert dict(known_embedding_functions) == registry
    c, after = _collection(db, "appdocs")
    try:
        assert after.configuration_json["embedding_function"] == record
        assert after.get(include=["embeddings"])["embeddings"].shape == (2, DIM)
    finally:
        c.close()


def test_a_client_still_open_in_the_process_is_warned_about(tmp_path, fake_vllm, client, caplog):
    import chromadb

    db = make_langchain_chroma(tmp_path / "chroma_db", n=3)
    app = chromadb.PersistentClient(path=str(db))  # the app's own client, left open
    try:
        with caplog.at_level("WARNING", logger="vllm_embed.migrate.chroma"):
            migrate_store(open_store(db), client)
        assert "still open on" in caplog.text and "Close it" in caplog.text
    finally:
        app.close()
    c, collection = _collection(db, "langchain")
    try:  # a new client sees the migrated store
        assert collection.get(include=["embeddings"])["embeddings"].shape == (3, DIM)
    finally:
        c.close()


def test_uris_are_kept(tmp_path, fake_vllm, client):
    import chromadb

    db = tmp_path / "db"
    c = chromadb.PersistentClient(path=str(db))
    made = c.create_collection("images", embedding_function=None)
    made.add(
        ids=["a", "b"],
        embeddings=[[0.1] * 3, [0.3] * 3],
        documents=["a red car", "a blue bus"],
        uris=["s3://bucket/car.jpg", None],
        metadatas=[None, {"k": 1}],
    )
    c.close()
    migrate_store(open_store(db), client)
    c, after = _collection(db, "images")
    try:
        got = after.get(include=["uris", "documents", "metadatas"])
        assert got["uris"] == ["s3://bucket/car.jpg", None]
        assert got["documents"] == ["a red car", "a blue bus"]
        assert got["metadatas"][1] == {"k": 1}
    finally:
        c.close()
