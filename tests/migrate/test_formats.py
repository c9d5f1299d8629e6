"""Each store format: migrated with the fake server, then loaded and queried by its real library."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from migrate_support import (
    OLD_DIM,
    captions,
    embedded_texts,
    make_content_store,
    make_dvd_store,
    make_generic_store,
    make_langchain_store,
    make_lightrag_store,
    make_llamaindex_store,
)

from vllm_embed import StoreFormatError
from vllm_embed.migrate import (
    EmbeddingSpace,
    MigrationOptions,
    migrate_store,
    open_store,
    work_dir_for,
)
from vllm_embed.migrate.llamaindex import LLAMAINDEX_NODE_KEY, embed_text_fallback, node_embed_text
from vllm_embed.migrate.nanovectordb import decode_lightrag_vector
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM, MODEL


def _nano(path: Path, dim: int):  # type: ignore[no-untyped-def]
    from nano_vectordb import NanoVectorDB

    return NanoVectorDB(dim, storage_file=str(path))


def test_dvd_database_json(tmp_path, fake_vllm, client):
    path = make_dvd_store(tmp_path / "database.json")
    original = path.read_bytes()
    before = json.loads(original)

    store = open_store(path)
    assert store.format == "nano-vectordb (DVD database.json)"
    assert (store.old_dim, store.text_field) == (OLD_DIM, "caption")
    result = migrate_store(store, client, MigrationOptions(chunk_rows=8))

    assert (result.old_dim, result.new_dim, result.records) == (OLD_DIM, DIM, 20)
    assert result.verified_with == ["nano-vectordb"]
    after = json.loads(path.read_bytes())
    assert list(after) == list(before)  # key order kept
    assert after["embedding_dim"] == DIM
    assert after["data"] == before["data"]  # every __id__ and field, unchanged
    # the video info kept; the embedding space recorded beside it
    space = after["additional_data"].pop("vllm_embed_space")
    assert after["additional_data"] == before["additional_data"]
    assert (space["model"], space["dimension"], space["normalized"]) == (MODEL, DIM, True)
    assert store.recorded_space() is None
    assert open_store(path).recorded_space() == EmbeddingSpace.from_dict(space)
    assert not list(tmp_path.glob("*.vllm-embed-space.json"))  # in the store, no sidecar
    # the backup carries the old dimension and is the original, byte for byte
    assert result.backup == tmp_path / f"database.d{OLD_DIM}.bak.json"
    assert result.backup.read_bytes() == original
    assert not work_dir_for(path).exists()
    # what was embedded: the captions, each once
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(captions(20))

    db = _nano(path, DIM)
    assert len(db) == 20
    hit = db.query(fake_vector(captions(7)[6], DIM), top_k=1)[0]
    assert hit["__id__"] == "clip-6"
    assert hit["__metrics__"] == pytest.approx(1.0, abs=1e-5)


def test_matrix_rows_are_l2_normalised_float32(tmp_path, fake_vllm, client):
    path = make_dvd_store(tmp_path / "database.json", n=5)
    migrate_store(open_store(path), client)
    import base64

    document = json.loads(path.read_bytes())
    matrix = np.frombuffer(base64.b64decode(document["matrix"]), dtype="<f4").reshape(-1, DIM)
    assert matrix.shape == (5, DIM)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-6)
    expected = np.stack([fake_vector(t, DIM) for t in captions(5)])
    np.testing.assert_allclose(matrix, expected, atol=1e-6)


def test_lightrag_vdb_chunks_rewrites_the_vector_field(tmp_path, fake_vllm, client):
    path = make_lightrag_store(tmp_path)
    before = json.loads(path.read_bytes())
    store = open_store(path)
    assert store.format == "nano-vectordb (LightRAG)"
    assert store.text_field == "content"

    migrate_store(store, client)

    after = json.loads(path.read_bytes())
    assert after["embedding_dim"] == DIM
    for old, new in zip(before["data"], after["data"], strict=True):
        assert {k: v for k, v in old.items() if k != "vector"} == {
            k: v for k, v in new.items() if k != "vector"
        }
        vector = decode_lightrag_vector(new["vector"])
        assert vector.shape == (DIM,)
        np.testing.assert_allclose(vector, fake_vector(new["content"], DIM), atol=1e-3)
    db = _nano(path, DIM)
    hit = db.query(fake_vector(after["data"][3]["content"], DIM), top_k=1)[0]
    assert hit["__id__"] == after["data"][3]["__id__"]


def test_generic_store_needs_a_text_field(tmp_path, fake_vllm, client):
    path = make_generic_store(tmp_path / "store.json")
    with pytest.raises(StoreFormatError, match=r"--text-field.*body \(6 of 6 records\)"):
        open_store(path)
    assert fake_vllm.call_count == 0

    result = migrate_store(open_store(path, text_field="body"), client)
    assert result.new_dim == DIM
    assert sorted(embedded_texts(fake_vllm)[1:]) == [f"body text {i}" for i in range(6)]
    hit = _nano(path, DIM).query(fake_vector("body text 4", DIM), top_k=1)[0]
    assert hit["__id__"] == "g4"


def test_generic_store_with_one_string_field_uses_it_and_says_so(tmp_path, fake_vllm, client):
    path = make_content_store(tmp_path / "kb.json")
    store = open_store(path)
    assert (store.format, store.text_field) == ("nano-vectordb", "content")
    assert "only string field present in every record" in store.text_field_reason
    migrate_store(store, client)
    assert sorted(embedded_texts(fake_vllm)[1:]) == [f"content {i}" for i in range(5)]
    assert _nano(path, DIM).query(fake_vector("content 3", DIM), top_k=1)[0]["__id__"] == "c3"
    recorded = _nano(path, DIM).get_additional_data()["vllm_embed_space"]
    assert (recorded["model"], recorded["dimension"]) == (MODEL, DIM)


def test_out_writes_a_new_file_and_leaves_the_store_alone(tmp_path, fake_vllm, client):
    path = make_dvd_store(tmp_path / "database.json", n=4)
    original = path.read_bytes()
    out = tmp_path / "new" / "database.json"
    result = migrate_store(open_store(path), client, MigrationOptions(out=out))
    assert result.backup is None
    assert path.read_bytes() == original
    assert len(_nano(out, DIM)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["database.json", "new"]


def _llama_embed_texts(directory: Path) -> dict[str, str]:
    from llama_index.core.schema import MetadataMode
    from llama_index.core.storage.docstore import SimpleDocumentStore

    docstore = SimpleDocumentStore.from_persist_dir(str(directory))
    return {
        node_id: node.get_content(metadata_mode=MetadataMode.EMBED)
        for node_id, node in docstore.docs.items()
    }


def test_llamaindex_persist_dir(tmp_path, fake_vllm, client):
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import QueryBundle

    directory = make_llamaindex_store(tmp_path / "storage")
    docstore_bytes = (directory / "docstore.json").read_bytes()
    expected = _llama_embed_texts(directory)
    store = open_store(directory)
    assert store.format == "llamaindex persist dir"

    result = migrate_store(store, client)

    assert result.verified_with == ["vllm-embed", "llama-index-core"]
    assert (directory / "docstore.json").read_bytes() == docstore_bytes
    # exactly what LlamaIndex embeds: metadata included, excluded keys left out
    sent = embedded_texts(fake_vllm)[1:]
    assert sorted(sent) == sorted(expected[i] for i in store.ids)
    assert "file_name: paris.txt\n\nThe Eiffel Tower is in Paris." in sent
    assert not any("page" in t for t in sent)
    assert "[lang=en | source=book]\nRust has no garbage collector." in sent
    # the real library loads the index and retrieves the expected neighbour
    storage = StorageContext.from_defaults(persist_dir=str(directory))
    vectors = storage.vector_store.data.embedding_dict  # type: ignore[attr-defined]
    assert {len(v) for v in vectors.values()} == {DIM}
    index = load_index_from_storage(storage, embed_model=MockEmbedding(embed_dim=DIM))
    node_id = next(i for i, t in expected.items() if "Photosynthesis" in t)
    retriever = index.as_retriever(similarity_top_k=1)
    query = QueryBundle("q", embedding=fake_vector(expected[node_id], DIM).tolist())
    hits = retriever.retrieve(query)
    assert hits[0].node.node_id == node_id


def test_llamaindex_fallback_matches_llamaindex(tmp_path):
    """The built-in get_content(EMBED) gives LlamaIndex's own text for every stored node."""
    directory = make_llamaindex_store(tmp_path / "storage")
    expected = _llama_embed_texts(directory)
    data = json.loads((directory / "docstore.json").read_bytes())["docstore/data"]
    assert expected
    for node_id, text in expected.items():
        assert embed_text_fallback(data[node_id]["__data__"]) == text


def test_node_embed_text_is_the_same_with_and_without_llamaindex(tmp_path, monkeypatch):
    """Vector stores keep a node's JSON under _node_content, its text in a column (Chroma,
    LanceDB, Milvus, Postgres) or inside the JSON (Qdrant): one rule for all, and the
    built-in rebuild gives what llama-index-core gives."""
    directory = make_llamaindex_store(tmp_path / "storage")
    expected = _llama_embed_texts(directory)
    data = json.loads((directory / "docstore.json").read_bytes())["docstore/data"]
    cases = []
    for node_id, text in expected.items():
        node = data[node_id]["__data__"]
        column_text = node["text"] if isinstance(node.get("text"), str) else None
        cases.append(({LLAMAINDEX_NODE_KEY: json.dumps(node)}, None, text))
        cases.append(({LLAMAINDEX_NODE_KEY: json.dumps({**node, "text": ""})}, column_text, text))
    cases.append(({LLAMAINDEX_NODE_KEY: "not json"}, "the document", "the document"))
    cases.append(({}, "the document", "the document"))
    cases.append(({LLAMAINDEX_NODE_KEY: "not json"}, None, None))
    assert any("\n\n" in text for _, _, text in cases if text)  # metadata is in some texts
    for metadata, text, want in cases:
        assert node_embed_text(metadata, text) == want
    monkeypatch.setitem(sys.modules, "llama_index.core.schema", None)  # the built-in rule
    for metadata, text, want in cases:
        assert node_embed_text(metadata, text) == want


def test_langchain_dump(tmp_path, fake_vllm, client):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    path = make_langchain_store(tmp_path / "lc.json")
    before = json.loads(path.read_bytes())
    store = open_store(path)
    assert store.format == "langchain InMemoryVectorStore dump"

    result = migrate_store(store, client)

    assert result.verified_with == ["vllm-embed", "langchain-core"]
    loaded = InMemoryVectorStore.load(str(path), DeterministicFakeEmbedding(size=DIM))
    assert list(loaded.store) == ["a", "b", "c", "d"]
    for key, value in loaded.store.items():
        assert value["text"] == before[key]["text"]
        assert value["metadata"] == before[key]["metadata"]
        assert len(value["vector"]) == DIM
    docs = loaded.similarity_search_by_vector(fake_vector("the sea is blue", DIM).tolist(), k=1)
    assert docs[0].id == "b"
    assert path.read_text().startswith('{\n  "a": {\n')  # LangChain's indent=2 kept
    # no slot in the format: the space is recorded in a sidecar
    recorded = open_store(path).recorded_space()
    assert recorded is not None and (recorded.model, recorded.dimension) == (MODEL, DIM)
    assert (tmp_path / "lc.json.vllm-embed-space.json").is_file()
    texts, vectors = open_store(path).sample_vectors(2)
    assert texts == ["apples are red", "the sea is blue"]
    np.testing.assert_allclose(vectors[1], fake_vector("the sea is blue", DIM), atol=1e-6)


def test_server_without_bytes_encoding(tmp_path, old_vllm, client):
    """Against a vLLM 0.11-like server the 400 on `bytes` is negotiated away, not embedded."""
    path = make_dvd_store(tmp_path / "database.json", n=6)
    result = migrate_store(open_store(path), client)
    assert result.new_dim == DIM
    assert sorted(embedded_texts(old_vllm)[1:]) == sorted(captions(6))
    hit = _nano(path, DIM).query(fake_vector(captions(6)[2], DIM), top_k=1)[0]
    assert hit["__id__"] == "clip-2"
