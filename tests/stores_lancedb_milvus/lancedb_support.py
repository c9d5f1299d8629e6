"""LanceDB databases written by the real libraries: LangChain's ``LanceDB``
(langchain-community), LlamaIndex's ``LanceDBVectorStore`` and plain lancedb; the
AnythingLLM layout (one table per workspace, rows ``{id, vector, text, ...document
metadata}``, as AnythingLLM's ``server/utils/vectorDbProviders/lance/index.js`` builds
them) written with lancedb's Python API, the same engine AnythingLLM's Node binding
drives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stores_support import OLD_DIM, llamaindex_nodes, old_vectors, texts


def make_langchain_lancedb(directory: Path, n: int = 10, table: str = "vectorstore") -> Path:
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = LanceDB(
        uri=str(directory),
        embedding=DeterministicFakeEmbedding(size=OLD_DIM),
        table_name=table,
    )
    store.add_texts(
        texts(n),
        metadatas=[{"n": i, "source": f"doc{i // 3}.md"} for i in range(n)],
        ids=[f"id-{i}" for i in range(n)],
    )
    return directory


def make_llamaindex_lancedb(directory: Path, n: int = 6) -> Path:
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    store = LanceDBVectorStore(uri=str(directory), table_name="nodes")
    nodes = llamaindex_nodes(n)
    store.add(nodes)
    return directory


def make_plain_lancedb(
    directory: Path, n: int = 8, *, text_column: str = "body", missing: int = 0
) -> Path:
    """Two tables through lancedb: ``docs`` (vectors, text in ``text_column``, a
    ``score`` column; ``missing`` rows without text) and ``labels`` (no vector column)."""
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(directory))
    bodies: list[Any] = texts(n)
    for i in range(missing):
        bodies[i] = None
    schema = pa.schema(
        [
            pa.field("key", pa.int64()),
            pa.field(text_column, pa.string()),
            pa.field("embedding", pa.list_(pa.float32(), OLD_DIM)),
            pa.field("score", pa.float64()),
        ],
        metadata={"owner": "tests"},
    )
    data = pa.table(
        {
            "key": list(range(n)),
            text_column: bodies,
            "embedding": old_vectors(n).tolist(),
            "score": [i / 2 for i in range(n)],
        },
        schema=schema,
    )
    db.create_table("docs", data)
    db.create_table("labels", pa.table({"label": ["a", "b"], "n": [1, 2]}))
    return directory


def make_anythingllm_lancedb(directory: Path, n: int = 6, workspace: str = "my-workspace") -> Path:
    """``storage/lancedb`` as AnythingLLM writes it: ``createTable(namespace, submissions)``
    with ``{id, vector, ...metadata, text}`` rows (uuid ids, document metadata flattened)."""
    import uuid

    import lancedb

    vectors = old_vectors(n)
    rows = [
        {
            "id": str(uuid.UUID(int=i + 1)),
            "vector": vectors[i].tolist(),
            "url": f"file:///docs/d{i}.txt",
            "title": f"d{i}.txt",
            "docAuthor": "Unknown",
            "description": "Unknown",
            "docSource": "a text file uploaded by the user.",
            "chunkSource": f"localfile://docs/d{i}.txt",
            "published": "1/1/2026, 10:00:00 AM",
            "wordCount": 8,
            "token_count_estimate": 12,
            "text": t,
        }
        for i, t in enumerate(texts(n))
    ]
    lancedb.connect(str(directory)).create_table(workspace, rows)
    return directory


def lance_rows(directory: Path, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` but its vectors, in order."""
    import lancedb

    t = lancedb.connect(str(directory)).open_table(table)
    vector = [f.name for f in t.schema if f.name in ("vector", "embedding")]
    return (
        t.to_lance()
        .to_table(columns=[f.name for f in t.schema if f.name not in vector])
        .to_pylist()
    )


def lance_vectors(directory: Path, table: str, column: str = "vector") -> np.ndarray:
    import lancedb

    t = lancedb.connect(str(directory)).open_table(table)
    return np.asarray(t.to_lance().to_table(columns=[column]).column(0).to_pylist(), np.float32)
