"""Chroma directories written by chromadb itself, LangChain's ``Chroma`` and LlamaIndex's
``ChromaVectorStore``; kano-backlog indexes built with sqlite3 (and sqlite-vec).

The kano schema comes from ``shared/notes/stores.md`` ("kano-backlog's SQLite index"),
which was read from kano-agent-backlog-skill's ``SQLiteVectorBackend`` (``prepare``:
the ``meta`` table and its keys, ``{collection}_chunks``, the optional vec0 table
``{collection}_vec(chunk_id TEXT PRIMARY KEY, embedding FLOAT[dims]
distance_metric=...)``; ``upsert``: binary rows are ``struct.pack(f"{n}f", ...)``,
JSON rows compact JSON, ``metadata_json`` with sort_keys and compact separators), and
the ``.meta.json`` layout (``components`` = the space id split on ``|`` then ``:``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.migration import embedded_texts, listing  # noqa: F401 (the suites' names)

OLD_DIM = 24
KANO_SPACE = (
    "corpus:repo|emb:openai:BAAI/bge-large-zh-v1.5:d24|tok:tiktoken:cl100k_base:max8192"
    "|chunk:v1|metric:cosine"
)


def texts(n: int) -> list[str]:
    topics = ["apples are red", "the sea is blue", "grass is green", "snow is white"]
    return [f"[{i:03d}] {topics[i % 4]} (note {i})" for i in range(n)]


def old_vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, OLD_DIM)).astype(np.float32)


def llamaindex_nodes(n: int, vectors: np.ndarray | None = None) -> list[Any]:
    """``n`` LlamaIndex ``TextNode``s (ids ``node-i``; a file name in the embedded metadata,
    the page excluded from it) carrying ``vectors`` (default: `old_vectors`)."""
    from llama_index.core.schema import TextNode

    vectors = old_vectors(n) if vectors is None else vectors
    return [
        TextNode(
            text=t,
            id_=f"node-{i}",
            metadata={"file_name": f"f{i}.txt", "page": i},
            excluded_embed_metadata_keys=["page"],
            embedding=vectors[i].tolist(),
        )
        for i, t in enumerate(texts(n))
    ]


def close_chroma(path: Path) -> None:
    """Release chromadb's cached client for ``path`` (as an app exiting would)."""
    import chromadb

    chromadb.PersistentClient(path=str(path)).close()


def make_langchain_chroma(directory: Path, n: int = 10, **extra: Any) -> Path:
    """``Chroma(persist_directory=...)`` from langchain-chroma, cosine space."""
    from langchain_chroma import Chroma
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = Chroma(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        persist_directory=str(directory),
        collection_metadata={"hnsw:space": "cosine", "owner": "tests"},
        **extra,
    )
    store.add_texts(
        texts(n),
        metadatas=[{"n": i, "source": f"doc{i // 3}.md"} for i in range(n)],
        ids=[f"id-{i}" for i in range(n)],
    )
    store._client.close()
    return directory


def make_plain_chroma(directory: Path, missing: int = 0) -> Path:
    """Two collections through chromadb.PersistentClient, with configurations and metadata.

    ``missing`` records of ``notes`` get no document (chromadb allows it).
    """
    import chromadb

    client = chromadb.PersistentClient(path=str(directory))
    notes = client.create_collection(
        "notes",
        configuration={"hnsw": {"space": "ip", "ef_construction": 150, "max_neighbors": 20}},
        metadata={"team": "search", "version": 3},
        embedding_function=None,
    )
    vectors = old_vectors(8, seed=3)
    documents: list[str | None] = list(texts(8))
    for i in range(missing):
        documents[i * 2 + 1] = None
    notes.add(
        ids=[f"n{i}" for i in range(8)],
        embeddings=vectors,
        documents=documents,
        metadatas=[{"k": i} if i % 2 else None for i in range(8)],
    )
    other = client.create_collection(
        "other", metadata={"hnsw:space": "l2"}, embedding_function=None
    )
    other.add(ids=["o1", "o2"], embeddings=old_vectors(2, seed=4), documents=["x one", "x two"])
    client.close()
    return directory


def make_llamaindex_chroma(directory: Path) -> Path:
    """VectorStoreIndex over ChromaVectorStore (MockEmbedding), collection ``quickstart``."""
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(directory))
    collection = client.get_or_create_collection("quickstart")
    storage = StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)
    )
    VectorStoreIndex.from_documents(
        [
            Document(
                text="The Eiffel Tower is in Paris.",
                metadata={"file_name": "paris.txt", "page": 3},
                excluded_embed_metadata_keys=["page"],
            ),
            Document(text="Photosynthesis turns light into chemical energy."),
            Document(text="Rust has no garbage collector.", metadata={"lang": "en"}),
        ],
        storage_context=storage,
        embed_model=MockEmbedding(embed_dim=OLD_DIM),
    )
    client.close()
    return directory


#: (tenant, database, collection, records); "papers" exists twice.
TENANT_LAYOUT = [
    ("default_tenant", "default_database", "papers", 3),
    ("acme", "research", "papers", 4),
    ("acme", "research", "notes", 2),
    ("globex", "default_database", "wiki", 5),
]


def make_tenant_chroma(path: Path) -> Path:
    """A Chroma directory with the collections of TENANT_LAYOUT, made by chromadb's own
    AdminClient (tenants and databases beside the default ones)."""
    import chromadb
    from chromadb.config import Settings

    admin = chromadb.AdminClient(Settings(is_persistent=True, persist_directory=str(path)))
    for tenant in sorted({t for t, *_ in TENANT_LAYOUT} - {"default_tenant"}):
        admin.create_tenant(tenant)
    for tenant, database in sorted({(t, d) for t, d, *_ in TENANT_LAYOUT}):
        if (tenant, database) != ("default_tenant", "default_database"):
            admin.create_database(database, tenant=tenant)
    for n, (tenant, database, name, count) in enumerate(TENANT_LAYOUT):
        client = chromadb.PersistentClient(path=str(path), tenant=tenant, database=database)
        collection = client.create_collection(
            name, embedding_function=None, metadata={"hnsw:space": "cosine", "n": n}
        )
        collection.add(
            ids=[f"{name}-{i}" for i in range(count)],
            embeddings=old_vectors(count, seed=n),
            documents=[f"{tenant}/{database}: {t}" for t in texts(count)],
            metadatas=[{"row": i} for i in range(count)],
        )
    chromadb.PersistentClient(path=str(path)).close()
    admin.clear_system_cache()  # as an app exiting would: no client left on the path
    return path


def kano_name(collection: str, space_id: str) -> str:
    return f"{collection}.{hashlib.sha256(space_id.encode()).hexdigest()[:12]}"


def make_kano_index(
    directory: Path,
    *,
    storage_format: str = "binary",
    n: int = 12,
    collection: str = "repo_chunks",
    vec0: bool = False,
    space_id: str = KANO_SPACE,
    missing: int = 0,
) -> Path:
    """A kano index as SQLiteVectorBackend.prepare + upsert write it (see module doc)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = kano_name(collection, space_id)
    db = directory / f"{stem}.sqlite3"
    conn = connect_vec(db) if vec0 else sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    meta = {
        "dims": str(OLD_DIM),
        "metric": "cosine",
        "storage_format": storage_format,
        "embedding_space_id": space_id,
        "schema_version": "1",
    }
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {collection}_chunks (chunk_id TEXT PRIMARY KEY, "
        "text TEXT NOT NULL, metadata_json TEXT NOT NULL, vector_json TEXT NOT NULL)"
    )
    if vec0:
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {collection}_vec USING vec0("
            f"chunk_id TEXT PRIMARY KEY, embedding FLOAT[{OLD_DIM}] distance_metric=cosine)"
        )
    vectors = old_vectors(n, seed=5)
    for i, text in enumerate(texts(n)):
        vector = [float(x) for x in vectors[i]]
        if storage_format == "binary":
            data: bytes | str = struct.pack(f"{len(vector)}f", *vector)
        else:
            data = json.dumps(vector, separators=(",", ":"), ensure_ascii=True)
        metadata = {
            "source_path": f"src/file{i // 3}.py",
            "embedding_model": "BAAI/bge-large-zh-v1.5",
            "embedding_dimension": OLD_DIM,
        }
        conn.execute(
            f"INSERT OR REPLACE INTO {collection}_chunks VALUES (?, ?, ?, ?)",
            (
                f"chunk-{i:03d}",
                "   " if i < missing else text,
                json.dumps(metadata, sort_keys=True, separators=(",", ":")),
                data,
            ),
        )
        if vec0:
            # kano's upsert: JSON text as bytes, which vec0 reads as raw float32 and refuses
            # (dimension mismatch); kano ignores the OperationalError, so its vec0 mirror
            # stays empty. Reproduced as is.
            try:
                conn.execute(
                    f"INSERT OR REPLACE INTO {collection}_vec (chunk_id, embedding) VALUES (?, ?)",
                    (f"chunk-{i:03d}", json.dumps(vector, separators=(",", ":")).encode()),
                )
            except Exception as exc:  # sqlite3 or pysqlite3 OperationalError
                assert type(exc).__name__ == "OperationalError", exc
    conn.commit()
    conn.close()
    components = {}
    for segment in space_id.split("|"):
        key, *values = segment.split(":")
        components[key] = ":".join(values)
    (directory / f"{stem}.meta.json").write_text(
        json.dumps(
            {
                "database": db.name,
                "collection": collection,
                "embedding_space_id": space_id,
                "hash": stem.rsplit(".", 1)[1],
                "created_at": "2026-01-15T10:00:00Z",
                "config": {
                    "dimensions": OLD_DIM,
                    "metric": "cosine",
                    "storage_format": storage_format,
                },
                "components": components,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return db
