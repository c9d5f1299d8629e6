"""Chroma and kano indexes migrated on the live vLLM server (all-MiniLM-L6-v2, 384 d),
then queried through chromadb / langchain-chroma / sqlite-vec: a question finds the
record that answers it."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
from live_support import ANSWER, FACTS, MINILM_DIM, QUESTION, live_embeddings
from stores_support import OLD_DIM, make_kano_index

from vllm_embed.migrate import MigrationOptions, migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.migration import migrate_on_live_server


def _langchain_dir(path):  # type: ignore[no-untyped-def]
    from langchain_chroma import Chroma
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = Chroma(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        persist_directory=str(path),
        collection_metadata={"hnsw:space": "cosine"},
    )
    store.add_texts(
        FACTS,
        metadatas=[{"n": i} for i in range(len(FACTS))],
        ids=[f"f{i}" for i in range(len(FACTS))],
    )
    store._client.close()
    return path


def test_langchain_chroma_migrated_by_the_cli_then_queried(tmp_path, vllm_server, make_client):
    from langchain_chroma import Chroma

    db = _langchain_dir(tmp_path / "chroma_db")
    migrate_on_live_server(
        vllm_server, db, described="Chroma (LangChain Chroma; collection langchain)",
        old_dim=OLD_DIM, new_dim=MINILM_DIM, verified="vllm-embed, chromadb",
    )  # fmt: skip

    live = live_embeddings(make_client(vllm_server))
    store = Chroma(embedding_function=live, persist_directory=str(db))
    try:
        hit = store.similarity_search(QUESTION, k=1)[0]
        assert hit.id == f"f{ANSWER}" and hit.page_content == FACTS[ANSWER]
        assert hit.metadata == {"n": ANSWER}
        space = EmbeddingSpace.from_json(store._collection.metadata[SPACE_KEY])
        assert (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)
        assert store._collection.metadata["hnsw:space"] == "cosine"
    finally:
        store._client.close()


def test_kano_index_migrated_and_read_back(tmp_path, vllm_server, make_client):
    client = make_client(vllm_server)
    vectors_dir = tmp_path / ".cache" / "vectors"
    db = make_kano_index(vectors_dir, vec0=True, n=len(FACTS))
    conn = sqlite3.connect(db)
    for i, fact in enumerate(FACTS):
        conn.execute(
            "UPDATE repo_chunks_chunks SET text = ? WHERE chunk_id = ?", (fact, f"chunk-{i:03d}")
        )
    conn.commit()
    conn.close()

    result = migrate_store(open_store(vectors_dir), client, MigrationOptions())
    assert result.new_dim == MINILM_DIM
    assert result.verified_with == ["vllm-embed", "sqlite-vec"]
    assert result.output != db and result.output.parent == vectors_dir
    side = json.loads(
        result.output.with_name(result.output.name.replace(".sqlite3", ".meta.json")).read_text()
    )
    assert side["components"]["emb"] == f"openai:{vllm_server.model}:d{MINILM_DIM}"

    query = client.embed_query(QUESTION).astype(np.float32)
    conn = connect_vec(result.output)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["dims"] == str(MINILM_DIM)
        rows = conn.execute("SELECT chunk_id, vector_json FROM repo_chunks_chunks").fetchall()
        hit = conn.execute(
            "SELECT chunk_id FROM repo_chunks_vec WHERE embedding MATCH ? AND k = 1",
            (query.tobytes(),),
        ).fetchone()
    finally:
        conn.close()
    # kano's own query: brute force over the rows (cosine)
    matrix = np.stack([np.frombuffer(raw, dtype=np.float32) for _, raw in rows])
    scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    assert rows[int(np.argmax(scores))][0] == f"chunk-{ANSWER:03d}"
    assert hit[0] == f"chunk-{ANSWER:03d}"
