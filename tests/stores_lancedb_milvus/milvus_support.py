"""Milvus Lite databases written by the real libraries (pymilvus + milvus-lite, embedded):
LangChain's ``Milvus`` (langchain-milvus), LlamaIndex's ``MilvusVectorStore`` and plain
pymilvus (partitions, an HNSW index, an alias, properties, a dynamic field)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from stores_support import OLD_DIM, llamaindex_nodes, old_vectors, texts


def close_milvus(path: Path) -> None:
    """Stop milvus-lite's embedded server for ``path`` (as the app exiting would):
    ``client.close()`` leaves it running in the process."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))


def make_langchain_milvus(path: Path, n: int = 10, collection: str = "LangChainCollection") -> Path:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_milvus import Milvus

    store = Milvus(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        connection_args={"uri": str(path)},
        collection_name=collection,
        index_params={"index_type": "FLAT", "metric_type": "L2"},
        auto_id=False,
    )
    store.add_texts(
        texts(n),
        metadatas=[{"n": i, "source": f"doc{i // 3}.md"} for i in range(n)],
        ids=[f"id-{i}" for i in range(n)],
    )
    store.client.close()
    close_milvus(path)
    return path


def make_llamaindex_milvus(path: Path, n: int = 6, vectors: np.ndarray | None = None) -> Path:
    from llama_index.vector_stores.milvus import MilvusVectorStore

    dim = OLD_DIM if vectors is None else vectors.shape[1]

    async def make() -> Any:  # the store builds an AsyncMilvusClient: it needs a loop
        return MilvusVectorStore(uri=str(path), dim=dim, collection_name="nodes", overwrite=True)

    store = asyncio.run(make())
    store.add(llamaindex_nodes(n, vectors))
    store.client.close()
    close_milvus(path)
    return path


def make_plain_milvus(path: Path, n: int = 8, *, missing: int = 0, dynamic: bool = True) -> Path:
    """``docs``: int64 keys, ``body`` text, ``vec`` (HNSW, cosine), partitions ``_default``
    and ``archive`` (odd rows), a dynamic ``extra`` field (a ``score`` double field instead
    when not ``dynamic``), properties and an alias; ``notes``: another collection left alone
    when ``--collection docs`` is given."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=dynamic)
    schema.add_field("key", DataType.INT64, is_primary=True)
    schema.add_field("body", DataType.VARCHAR, max_length=1024, nullable=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=OLD_DIM)
    if not dynamic:
        schema.add_field("score", DataType.DOUBLE)
    index = client.prepare_index_params()
    index.add_index(field_name="vec", index_type="HNSW", metric_type="COSINE", params={"M": 8})
    client.create_collection(
        "docs", schema=schema, index_params=index, properties={"owner": "tests"}
    )
    client.create_partition("docs", "archive")
    vectors = old_vectors(n)
    bodies: list[Any] = texts(n)
    for i in range(missing):
        bodies[i] = None
    for i in range(n):
        client.insert(
            "docs",
            [
                {
                    "key": i,
                    "body": bodies[i],
                    "vec": vectors[i].tolist(),
                    **({"extra": f"x{i}"} if dynamic else {"score": i / 4}),
                }
            ],
            partition_name="archive" if i % 2 else "_default",
        )
    client.create_alias("docs", "docs_live")
    client.create_collection("notes", dimension=4)
    client.insert("notes", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "text": "kept"}])
    client.close()
    close_milvus(path)
    return path


def milvus_rows(path: Path, collection: str) -> list[dict[str, Any]]:
    """Every row of ``collection`` with its partition, vectors left out, sorted by key."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    try:
        out = []
        client.load_collection(collection)  # a reopened database holds released collections
        described = client.describe_collection(collection)
        vector = next(f["name"] for f in described["fields"] if f["type"] == 101)
        primary = next(f["name"] for f in described["fields"] if f.get("is_primary"))
        for partition in client.list_partitions(collection):
            it = client.query_iterator(
                collection, filter="", output_fields=["*"], partition_names=[partition]
            )
            while page := it.next():
                out.extend({**r, vector: None, "_partition": partition} for r in page)
            it.close()
        return sorted(out, key=lambda r: str(r[primary]))
    finally:
        client.close()
        close_milvus(path)


def milvus_vectors(path: Path, collection: str, field: str, primary: str) -> dict[Any, Any]:
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    try:
        client.load_collection(collection)
        rows = client.query(collection, filter="", output_fields=[primary, field], limit=10_000)
        return {r[primary]: np.asarray(r[field], dtype=np.float32) for r in rows}
    finally:
        client.close()
        close_milvus(path)


def spy_writes(
    monkeypatch: Any, *, kill_after: int
) -> tuple[list[tuple[str, list[str]]], dict[str, int]]:
    """Record every pymilvus ``insert`` / ``upsert`` as (kind, primary keys) and raise
    KeyboardInterrupt (a kill) before write number ``kill_after`` (set ``kill["after"] = -1``
    to let a resumed run through). Returns (the writes, ``kill``)."""
    from pymilvus import MilvusClient

    written: list[tuple[str, list[str]]] = []
    kill = {"after": kill_after}
    real = {"insert": MilvusClient.insert, "upsert": MilvusClient.upsert}

    def spy(kind: str) -> Any:
        def call(self: Any, name: str, data: Any, *args: Any, **kwargs: Any) -> Any:
            if len(written) == kill["after"]:
                raise KeyboardInterrupt
            written.append((kind, [r["pk"] for r in data]))
            return real[kind](self, name, data, *args, **kwargs)

        return call

    monkeypatch.setattr(MilvusClient, "insert", spy("insert"))
    monkeypatch.setattr(MilvusClient, "upsert", spy("upsert"))
    return written, kill


def spy_engine_writes(
    monkeypatch: Any, *, kill_after: int
) -> tuple[list[tuple[str, list[str]]], dict[str, int]]:
    """`spy_writes` for milvus-lite's engine (``milvus_lite.Collection.insert`` /
    ``upsert``: what pymilvus' calls end in, and `EngineInsert.insert`: what a Milvus
    Lite migration writes rows through; install it after making the database)."""
    from milvus_lite import Collection

    from vllm_embed.migrate._milvus_lite_engine import EngineInsert

    written: list[tuple[str, list[str]]] = []
    kill = {"after": kill_after}
    real = {"insert": Collection.insert, "upsert": Collection.upsert}
    inside = [0]  # the engine's upsert inserts its new keys: one write, not two

    def spy(kind: str) -> Any:
        def call(self: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
            if inside[0]:
                return real[kind](self, records, *args, **kwargs)
            if len(written) == kill["after"]:
                raise KeyboardInterrupt
            written.append((kind, [r["pk"] for r in records]))
            inside[0] += 1
            try:
                return real[kind](self, records, *args, **kwargs)
            finally:
                inside[0] -= 1

        return call

    monkeypatch.setattr(Collection, "insert", spy("insert"))
    monkeypatch.setattr(Collection, "upsert", spy("upsert"))
    # the migration's columnar batches enter the same engine after Collection.insert's checks
    columnar = EngineInsert.insert

    def columnar_spy(self: Any, partition: str, rows: Any, vectors: Any) -> Any:
        if len(written) == kill["after"]:
            raise KeyboardInterrupt
        written.append(("insert", [r["pk"] for r in rows]))
        inside[0] += 1
        try:
            return columnar(self, partition, rows, vectors)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(EngineInsert, "insert", columnar_spy)
    return written, kill
