"""``vllm-embed migrate`` on Qdrant local-mode directories written by LangChain, LlamaIndex
and plain qdrant-client (CliRunner, fake vLLM), then read through the same library."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from qdrant_sqlitevec_support import (
    COLLECTION,
    make_langchain_qdrant,
    make_llamaindex_qdrant,
    make_plain_qdrant,
    point_id,
    qdrant_content,
    query_qdrant,
)
from stores_support import OLD_DIM, embedded_texts, listing, texts

from vllm_embed import MissingTextError, StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


def _run(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def test_langchain_collection_migrated_then_searched_with_langchain(tmp_path, fake_vllm):
    from langchain_core.embeddings import Embeddings
    from langchain_qdrant import QdrantVectorStore

    db = make_langchain_qdrant(tmp_path / "qdrant_db")
    original = listing(db)
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert (
        "format: Qdrant local (LangChain QdrantVectorStore; collection docs); 10 records; "
        "text from payload 'page_content'; dimension 24" in result.stderr
    )
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     vllm-embed, qdrant-client" in result.stdout
    backup = tmp_path / f"qdrant_db.d{OLD_DIM}.bak"
    assert f"backup       {backup}" in result.stdout
    assert listing(backup) == original
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(10))
    assert API_KEY not in result.output

    class Fake(Embeddings):
        def embed_documents(self, items):  # type: ignore[no-untyped-def]
            return [fake_vector(t, DIM).tolist() for t in items]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    store = QdrantVectorStore.from_existing_collection(
        collection_name=COLLECTION, embedding=Fake(), path=str(db)
    )
    try:
        hit = store.similarity_search(texts(10)[3], k=1)[0]
        assert hit.page_content == texts(10)[3]
        assert hit.metadata["n"] == 3 and hit.metadata["topic"] == "t"
        assert hit.metadata["_id"] == point_id(3)
        info = store.client.get_collection(COLLECTION)
        vectors = info.config.params.vectors[""]  # LangChain's unnamed vector, as a dict
        assert vectors.size == DIM and vectors.distance.value == "Cosine"
        space = EmbeddingSpace.from_json(info.config.metadata[SPACE_KEY])
        assert (space.model, space.dimension) == (MODEL, DIM)
    finally:
        store.client.close()


def test_llamaindex_collection_keeps_nodes_and_embeds_what_llamaindex_embeds(tmp_path, fake_vllm):
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    db = make_llamaindex_qdrant(tmp_path / "li")
    result = _run(str(db))
    assert result.exit_code == 0, result.output
    assert "format: Qdrant local (LlamaIndex QdrantVectorStore; collection docs); 6" in (
        result.stderr
    )
    sent = embedded_texts(fake_vllm)[1:]
    assert f"source: file3.md\n\n{texts(6)[3]}" in sent

    client = QdrantClient(path=str(db))
    try:
        with warnings.catch_warnings():  # local mode: "payload indexes have no effect"
            warnings.simplefilter("ignore", UserWarning)
            store = QdrantVectorStore(collection_name=COLLECTION, client=client)
        query = fake_vector(f"source: file3.md\n\n{texts(6)[3]}", DIM).tolist()
        got = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=2))
        node = got.nodes[0]
        assert node.node_id == point_id(3)
        assert node.get_content(MetadataMode.NONE) == texts(6)[3]
        assert node.metadata == {"source": "file3.md"}
        assert client.get_collection(COLLECTION).config.params.vectors.size == DIM
    finally:
        client.close()


def test_plain_collection_named_vector_keeps_the_others_and_the_settings(tmp_path, fake_vllm):
    db = make_plain_qdrant(tmp_path / "plain")
    before = qdrant_content(db)
    result = _run(str(db), "--text-field", "body", "--vector-name", "dense")
    assert result.exit_code == 0, result.output
    assert "qdrant-client; collection docs, vector 'dense'" in result.stderr
    after = qdrant_content(db)
    assert after["points"].keys() == before["points"].keys()
    for pid, (payload, vectors) in after["points"].items():
        old_payload, old_vectors = before["points"][pid]
        assert payload == old_payload
        assert vectors["title"] == old_vectors["title"]  # other dense vector kept
        assert vectors["bm25"] == old_vectors["bm25"]  # sparse vector kept
        assert len(vectors["dense"]) == DIM
    dense = after["config"]["vectors"]["dense"]
    assert dense["size"] == DIM and dense["distance"] == "Dot"
    assert dense["hnsw_config"]["m"] == 32 and dense["hnsw_config"]["ef_construct"] == 200
    assert dense["quantization_config"]["scalar"]["type"] == "int8"
    assert after["config"]["vectors"]["title"] == before["config"]["vectors"]["title"]
    assert after["config"]["sparse_vectors"] == before["config"]["sparse_vectors"]
    meta = json.loads((db / "meta.json").read_text())["collections"][COLLECTION]["metadata"]
    assert meta["owner"] == "tests" and SPACE_KEY in meta
    assert query_qdrant(db, fake_vector(texts(8)[5], DIM), using="dense")[0] == 5


def test_plain_collection_needs_text_field_and_vector_name(tmp_path, fake_vllm):
    db = make_plain_qdrant(tmp_path / "plain")
    original = listing(db)
    no_vector = _run(str(db), "--text-field", "body")
    assert no_vector.exit_code != 0
    assert "has 2 named vectors (dense, title): name the one to re-embed with --vector-name" in (
        no_vector.output
    )
    no_field = _run(str(db), "--vector-name", "dense")
    assert no_field.exit_code != 0
    assert "--text-field (payload keys: body, n)" in no_field.output
    wrong = _run(str(db), "--text-field", "body", "--vector-name", "nope")
    assert "has no vector 'nope'; vectors: dense, title" in wrong.output
    assert listing(db) == original and embedded_texts(fake_vllm) == []


def test_several_collections_need_collection_and_the_other_is_untouched(tmp_path, fake_vllm):
    db = make_plain_qdrant(tmp_path / "plain", second=True)
    refused = _run(str(db), "--text-field", "body", "--vector-name", "dense")
    assert "holds 2 collections (docs, other): pick the one to migrate with --collection" in (
        refused.output
    )
    other = qdrant_content(db, "other")
    result = _run(
        str(db), "--collection", COLLECTION, "--text-field", "body", "--vector-name", "dense"
    )
    assert result.exit_code == 0, result.output
    assert qdrant_content(db, "other") == other


def test_points_without_text_are_refused_before_any_request(tmp_path, fake_vllm):
    db = make_plain_qdrant(tmp_path / "plain", missing=2)
    original = listing(db)
    with pytest.raises(MissingTextError, match="2 of 8 records"):
        from vllm_embed.migrate import migrate_store
        from vllm_embed.migrate._engine import kept_records

        store = open_store(db, text_field="body", vector_name="dense")
        kept_records(store, drop_missing_text=False)
        migrate_store(store, None)  # type: ignore[arg-type]  # never reached
    refused = _run(str(db), "--text-field", "body", "--vector-name", "dense")
    assert refused.exit_code != 0 and "--drop-missing-text" in refused.output
    assert listing(db) == original and embedded_texts(fake_vllm) == []
    dropped = _run(str(db), "--text-field", "body", "--vector-name", "dense", "--drop-missing-text")
    assert dropped.exit_code == 0, dropped.output
    assert "records      6, 2 dropped" in dropped.stdout
    assert sorted(qdrant_content(db)["points"]) == [str(i) for i in range(2, 8)]


def test_dry_run_writes_nothing(tmp_path, fake_vllm):
    db = make_langchain_qdrant(tmp_path / "qdrant_db")
    original = listing(db)
    result = _run(str(db), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "records      10 (0 without text)" in result.stdout
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "estimate     ~" in result.stdout and "dry run: nothing written" in result.stdout
    assert listing(db) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qdrant_db"]


def test_server_urls_are_told_apart_and_an_unreachable_one_is_named():
    from vllm_embed.migrate._qdrant_collections import looks_like_qdrant_url

    for url in ("http://localhost:6333", "https://qdrant.internal/", "http://db:6334"):
        assert looks_like_qdrant_url(url)
    for url in ("http://localhost:19530", "postgresql://u@h/db", "./qdrant_db"):
        assert not looks_like_qdrant_url(url)  # left to other formats
    result = _run("http://localhost:6333", "--collection", "docs")
    assert result.exit_code != 0
    assert "cannot reach a Qdrant server at http://localhost:6333" in result.output
    missing = _run("http://localhost:6333", "--out", "x")
    assert missing.exit_code != 0 and "--out" in missing.output


def test_directory_held_open_by_a_client_is_refused(tmp_path, fake_vllm):
    from qdrant_client import QdrantClient

    db = make_langchain_qdrant(tmp_path / "qdrant_db")
    holder = QdrantClient(path=str(db))
    try:
        result = _run(str(db))
    finally:
        holder.close()
    assert result.exit_code != 0
    assert "is open in a QdrantClient" in result.output and "Close that application" in (
        result.output
    )
    assert embedded_texts(fake_vllm) == []


def test_corrupt_and_half_written_directories_get_named_errors(tmp_path):
    db = make_langchain_qdrant(tmp_path / "qdrant_db")
    (db / "meta.json").write_text('{"collections": {"docs": ')
    with pytest.raises(StoreFormatError, match=r"not a readable Qdrant meta\.json"):
        open_store(db)

    half = make_langchain_qdrant(tmp_path / "half")
    storage = half / "collection" / COLLECTION / "storage.sqlite"
    storage.write_bytes(storage.read_bytes()[: 4096 + 100])  # a copy cut short
    with pytest.raises(StoreFormatError, match="qdrant-client cannot read collection 'docs'"):
        open_store(half)


def test_dimension_of_an_unmigrated_store_is_read(tmp_path):
    store = open_store(make_langchain_qdrant(tmp_path / "q"))
    assert store.old_dim == OLD_DIM
    sample = store.sample_vectors(4)
    assert sample is not None and sample[1].shape == (4, OLD_DIM)
    from langchain_core.embeddings import DeterministicFakeEmbedding

    stored = DeterministicFakeEmbedding(size=OLD_DIM).embed_documents(sample[0])
    assert np.allclose(sample[1], np.asarray(stored, dtype=np.float32), atol=1e-6)
    assert store.recorded_space() is None
    assert isinstance(store.path, Path)


def test_out_writes_a_new_directory_and_leaves_the_original(tmp_path, fake_vllm):
    db = make_langchain_qdrant(tmp_path / "qdrant_db", n=4)
    original = listing(db)
    out = tmp_path / "migrated"
    result = _run(str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"migrated     Qdrant local (LangChain QdrantVectorStore; collection docs): {out}" in (
        result.stdout
    )
    assert "backup" not in result.stdout
    assert listing(db) == original
    assert len(next(iter(qdrant_content(out)["points"].values()))[1][""]) == DIM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["migrated", "qdrant_db"]
