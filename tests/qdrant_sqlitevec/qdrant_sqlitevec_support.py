"""Qdrant local-mode directories written by qdrant-client, LangChain's
``QdrantVectorStore`` and LlamaIndex's ``QdrantVectorStore``; SQLite files written by
LangChain's ``SQLiteVec`` and by sqlite-vec directly (plain vec0 tables)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stores_support import OLD_DIM, old_vectors, texts

from vllm_embed.migrate.kano import connect_vec

COLLECTION = "docs"


def point_id(i: int) -> str:
    """LangChain / LlamaIndex use UUIDs as point ids."""
    return f"00000000-0000-0000-0000-{i:012d}"


def make_langchain_qdrant(directory: Path, n: int = 10) -> Path:
    """``QdrantVectorStore.from_texts(..., path=...)`` (unnamed cosine vector)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_qdrant import QdrantVectorStore

    store = QdrantVectorStore.from_texts(
        texts(n),
        DeterministicFakeEmbedding(size=OLD_DIM),
        metadatas=[{"n": i, "topic": "t"} for i in range(n)],
        ids=[point_id(i) for i in range(n)],
        path=str(directory),
        collection_name=COLLECTION,
    )
    store.client.close()
    return directory


def make_llamaindex_qdrant(directory: Path, n: int = 6) -> Path:
    """LlamaIndex's ``QdrantVectorStore`` on a local-mode client (named vector text-dense)."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(directory))
    with warnings.catch_warnings():  # local mode: "payload indexes have no effect"
        warnings.simplefilter("ignore", UserWarning)
        store = QdrantVectorStore(collection_name=COLLECTION, client=client)
        store.add(_nodes(n))
    client.close()
    return directory


def _nodes(n: int) -> list[Any]:
    from llama_index.core.schema import TextNode

    vectors = old_vectors(n)
    return [
        TextNode(
            id_=point_id(i),
            text=t,
            metadata={"source": f"file{i}.md"},
            embedding=vectors[i].tolist(),
        )
        for i, t in enumerate(texts(n))
    ]


def make_plain_qdrant(
    directory: Path, n: int = 8, *, missing: int = 0, second: bool = False
) -> Path:
    """qdrant-client alone: int ids, payload ``body``, two named vectors (``dense`` to
    re-embed, ``title`` kept) and a sparse vector, Dot distance, per-vector HNSW and
    scalar quantization, collection metadata, a text index."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(directory))
    client.create_collection(
        COLLECTION,
        vectors_config={
            "dense": models.VectorParams(
                size=OLD_DIM,
                distance=models.Distance.DOT,
                hnsw_config=models.HnswConfigDiff(m=32, ef_construct=200),
                quantization_config=models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
                ),
            ),
            "title": models.VectorParams(size=4, distance=models.Distance.EUCLID),
        },
        sparse_vectors_config={"bm25": models.SparseVectorParams()},
        metadata={"owner": "tests"},
    )
    with warnings.catch_warnings():  # local mode: "payload indexes have no effect"
        warnings.simplefilter("ignore", UserWarning)
        client.create_payload_index(
            COLLECTION,
            "body",
            field_schema=models.TextIndexParams(type=models.TextIndexType.TEXT, lowercase=True),
        )
    vectors = old_vectors(n)
    bodies: list[str | None] = list(texts(n))
    for i in range(missing):
        bodies[i] = None
    client.upsert(
        COLLECTION,
        points=[
            models.PointStruct(
                id=i,
                vector={
                    "dense": vectors[i].tolist(),
                    "title": [float(i), 1.0, 2.0, 3.0],
                    "bm25": models.SparseVector(indices=[i, 100], values=[0.5, 1.5]),
                },
                payload={"body": b, "n": i} if b is not None else {"n": i},
            )
            for i, b in enumerate(bodies)
        ],
    )
    if second:
        client.create_collection(
            "other", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE)
        )
        client.upsert("other", points=[models.PointStruct(id=1, vector=[1.0, 0.0, 0.0])])
    client.close()
    return directory


def qdrant_content(directory: Path, collection: str = COLLECTION) -> dict[str, Any]:
    """Everything a reader sees of a collection (payloads, vectors rounded, config)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(directory))
    try:
        info = client.get_collection(collection)
        points, _ = client.scroll(collection, limit=10_000, with_payload=True, with_vectors=True)
        out: dict[str, Any] = {}
        for p in points:
            vectors = p.vector if isinstance(p.vector, dict) else {"": p.vector}
            out[str(p.id)] = (
                p.payload,
                {
                    k: (np.round(v, 5).tolist() if isinstance(v, list) else v.model_dump())
                    for k, v in vectors.items()
                },
            )
        return {"points": out, "config": info.config.params.model_dump()}
    finally:
        client.close()


def query_qdrant(directory: Path, vector: np.ndarray, using: str | None = None) -> list[Any]:
    """Point ids nearest to ``vector``, through qdrant-client."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(directory))
    try:
        hits = client.query_points(COLLECTION, query=vector.tolist(), using=using, limit=3)
        return [h.id for h in hits.points]
    finally:
        client.close()


def _langchain_connection(file: Path) -> Any:
    """What ``SQLiteVec.create_connection`` makes (sqlite-vec loaded, ``Row`` rows), with
    the sqlite3 that can load extensions here (this Python's cannot: pysqlite3)."""
    from vllm_embed.migrate.kano import vec_sqlite

    connection = connect_vec(file)
    connection.row_factory = vec_sqlite().Row
    return connection


def make_langchain_sqlitevec(file: Path, n: int = 10, table: str = "notes") -> Path:
    """``SQLiteVec.from_texts`` (langchain-community): base table, vec0 table, trigger."""
    from langchain_community.vectorstores import SQLiteVec
    from langchain_core.embeddings import DeterministicFakeEmbedding

    connection = _langchain_connection(file)
    store = SQLiteVec(table, connection, DeterministicFakeEmbedding(size=OLD_DIM))
    store.add_texts(texts(n), metadatas=[{"n": i} for i in range(n)])
    connection.close()
    return file


def make_plain_sqlitevec(file: Path, n: int = 8, *, missing: int = 0) -> Path:
    """A vec0 table keyed by text ids with a metadata column and an auxiliary text
    column, cosine distance, written with sqlite-vec."""
    conn = connect_vec(file)
    conn.execute(
        "CREATE VIRTUAL TABLE chunks USING vec0(chunk_id TEXT PRIMARY KEY, "
        f"embedding float[{OLD_DIM}] distance_metric=cosine, lang TEXT, +content TEXT)"
    )
    vectors = old_vectors(n)
    contents: list[str | None] = list(texts(n))
    for i in range(missing):
        contents[i] = None
    conn.executemany(
        "INSERT INTO chunks (chunk_id, embedding, lang, content) VALUES (?, ?, ?, ?)",
        [
            (f"c{i:03d}", vectors[i].tobytes(), "en" if i % 2 else "de", contents[i])
            for i in range(n)
        ],
    )
    conn.commit()
    conn.close()
    return file


def langchain_sqlitevec_search(file: Path, vector: np.ndarray, table: str = "notes") -> list[str]:
    """Texts nearest to ``vector``, through LangChain's ``SQLiteVec``."""
    from langchain_community.vectorstores import SQLiteVec
    from langchain_core.embeddings import DeterministicFakeEmbedding

    connection = _langchain_connection(file)
    try:
        store = SQLiteVec(table, connection, DeterministicFakeEmbedding(size=vector.size))
        docs = store.similarity_search_by_vector(vector.tolist(), k=3)
        return [d.page_content for d in docs]
    finally:
        connection.close()


def plain_sqlitevec_rows(file: Path) -> list[tuple[Any, ...]]:
    conn = connect_vec(file, read_only=True)
    try:
        return conn.execute(
            "SELECT chunk_id, lang, content, vec_length(embedding) FROM chunks ORDER BY chunk_id"
        ).fetchall()
    finally:
        conn.close()


def dump_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
