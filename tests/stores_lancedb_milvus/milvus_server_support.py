"""Collections written on a real Milvus server (vllm_embed_testing.milvus_server) by
LangChain's ``Milvus`` (langchain-milvus), LlamaIndex's ``MilvusVectorStore`` and plain
pymilvus, each test in a database of its own (``milvus_db``), or, for LangChain (whose
ORM calls ignore ``db_name``: langchain-milvus 0.3 with pymilvus 2.6), in the default
database under collection names of its own (``milvus_default``: ``db.prefix``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from stores_support import OLD_DIM, llamaindex_nodes, old_vectors, texts

from vllm_embed_testing.milvus_server import MilvusServer

_COUNTER = itertools.count()


@dataclass
class MilvusDB:
    """One database on the session's server: ``uri`` carries it and no credentials."""

    server: MilvusServer
    name: str
    prefix: str = ""

    @property
    def uri(self) -> str:
        return f"{self.server.uri}/{self.name}" if self.name else self.server.uri

    @property
    def uri_with_credentials(self) -> str:
        host = self.server.uri.split("://", 1)[1]
        return f"http://{self.server.token}@{host}" + (f"/{self.name}" if self.name else "")

    def client(self) -> Any:
        return self.server.client(self.name)


@pytest.fixture
def milvus_db(milvus_server: MilvusServer) -> Iterator[MilvusDB]:
    name = f"t{next(_COUNTER)}"
    admin = milvus_server.client()
    try:
        admin.create_database(name)
    finally:
        admin.close()
    yield MilvusDB(milvus_server, name)
    client = milvus_server.client(name)
    try:
        for collection in client.list_collections():
            for alias in client.describe_collection(collection).get("aliases") or []:
                client.drop_alias(alias)
            client.drop_collection(collection)
    finally:
        client.close()
    admin = milvus_server.client()
    try:
        admin.drop_database(name)
    finally:
        admin.close()


@pytest.fixture
def milvus_default(milvus_server: MilvusServer) -> Iterator[MilvusDB]:
    db = MilvusDB(milvus_server, "", prefix=f"lc{next(_COUNTER)}")
    yield db
    client = milvus_server.client()
    try:
        for collection in client.list_collections():
            if collection.startswith(db.prefix):
                for alias in client.describe_collection(collection).get("aliases") or []:
                    client.drop_alias(alias)
                client.drop_collection(collection)
    finally:
        client.close()


def server_langchain(db: MilvusDB, n: int = 10, collection: str = "LangChainCollection") -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_milvus import Milvus

    store = Milvus(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        connection_args={"uri": db.server.uri, "token": db.server.token},
        collection_name=collection,
        index_params={"index_type": "FLAT", "metric_type": "L2"},
        auto_id=False,
        consistency_level="Strong",
    )
    store.add_texts(
        texts(n),
        metadatas=[{"n": i, "source": f"doc{i // 3}.md"} for i in range(n)],
        ids=[f"id-{i}" for i in range(n)],
    )
    store.client.close()


def server_llamaindex(db: MilvusDB, n: int = 6) -> None:
    from llama_index.vector_stores.milvus import MilvusVectorStore

    async def make() -> Any:  # the store builds an AsyncMilvusClient: it needs a loop
        return MilvusVectorStore(
            uri=db.server.uri,
            token=db.server.token,
            db_name=db.name,
            dim=OLD_DIM,
            collection_name="nodes",
            overwrite=True,
            consistency_level="Strong",
        )

    store = asyncio.run(make())
    store.add(llamaindex_nodes(n))
    store.client.close()


def server_plain(db: MilvusDB, n: int = 8) -> None:
    """``docs``: int64 keys, ``body`` text, ``vec`` (HNSW M=8, efConstruction=64, cosine),
    partitions ``_default`` and ``archive`` (odd rows), a dynamic ``extra`` field,
    properties and an alias ``docs_live``; ``notes``: another collection, left alone."""
    from pymilvus import DataType

    client = db.client()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("key", DataType.INT64, is_primary=True)
    schema.add_field("body", DataType.VARCHAR, max_length=1024)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=OLD_DIM)
    index = client.prepare_index_params()
    index.add_index(
        field_name="vec",
        index_type="HNSW",
        metric_type="COSINE",
        params={"M": 8, "efConstruction": 64},
    )
    client.create_collection(
        "docs", schema=schema, index_params=index, properties={"collection.ttl.seconds": "0"}
    )
    client.create_partition("docs", "archive")
    vectors = old_vectors(n)
    for i, body in enumerate(texts(n)):
        client.insert(
            "docs",
            [{"key": i, "body": body, "vec": vectors[i].tolist(), "extra": f"x{i}"}],
            partition_name="archive" if i % 2 else "_default",
        )
    client.flush("docs")
    client.create_alias("docs", "docs_live")
    client.create_collection("notes", dimension=4, consistency_level="Strong")
    client.insert("notes", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "text": "kept"}])
    client.flush("notes")
    client.close()


def resolved_dim(db: MilvusDB, name: str) -> tuple[str, int]:
    """(the collection ``name`` resolves to, its vector dimension)."""
    client = db.client()
    try:
        d = client.describe_collection(name)
        vector = next(f for f in d["fields"] if f["type"] == 101)
        return d["collection_name"], int(vector["params"]["dim"])
    finally:
        client.close()


def server_rows(db: MilvusDB, collection: str) -> list[dict[str, Any]]:
    """Every row of ``collection`` (or alias) with its partition and vector, sorted by key."""
    client = db.client()
    try:
        client.load_collection(collection)
        described = client.describe_collection(collection)
        vector = next(f["name"] for f in described["fields"] if f["type"] == 101)
        primary = next(f["name"] for f in described["fields"] if f.get("is_primary"))
        out = []
        for partition in client.list_partitions(described["collection_name"]):
            rows = client.query(
                collection,
                filter="",
                limit=10_000,
                output_fields=["*"],
                partition_names=[partition],
                consistency_level="Strong",
            )
            out.extend(
                {**r, vector: np.asarray(r[vector], dtype=np.float32), "_partition": partition}
                for r in rows
            )
        return sorted(out, key=lambda r: str(r[primary]))
    finally:
        client.close()


def same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]], atol: float = 1e-6) -> bool:
    """Equal rows, vectors compared as float32 within ``atol``."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.keys() != y.keys():
            return False
        for key in x:
            if isinstance(x[key], np.ndarray):
                if x[key].shape != y[key].shape or not np.allclose(x[key], y[key], atol=atol):
                    return False
            elif x[key] != y[key]:
                return False
    return True
