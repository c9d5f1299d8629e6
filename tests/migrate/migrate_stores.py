"""Stores made by the real libraries, with random old vectors of dimension ``OLD_DIM``.

Every store is written by the library that owns the format (``NanoVectorDB.save``,
``StorageContext.persist``, ``InMemoryVectorStore.dump``); nothing here writes store
JSON by hand.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

OLD_DIM = 24


def embedded_texts(route: Any) -> list[str]:
    """Every text a respx route answered with 200 on /v1/embeddings, flattened, in order.

    Refused requests (a 400 during encoding negotiation, a dropped connection) are not
    counted: their texts were not embedded.
    """
    texts: list[str] = []
    for call in route.calls:
        if not call.request.url.path.endswith("/embeddings"):
            continue
        response = call.response if call.has_response else None
        if response is not None and response.status_code == 200:
            texts.extend(json.loads(call.request.content)["input"])
    return texts


def _old_vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, OLD_DIM)).astype(np.float32)


def captions(n: int) -> list[str]:
    topics = ["a red car chases a bus", "a cat sleeps on a sofa", "rain falls on a city street"]
    return [f"[{i:03d}] {topics[i % 3]} (shot {i})" for i in range(n)]


def make_dvd_store(path: Path, n: int = 20) -> Path:
    """A DVD-style ``database.json`` written by nano-vectordb (text in ``caption``)."""
    from nano_vectordb import NanoVectorDB

    db = NanoVectorDB(OLD_DIM, storage_file=str(path))
    vectors = _old_vectors(n)
    db.upsert(
        [
            {"__id__": f"clip-{i}", "__vector__": vectors[i], "caption": text, "start": i * 10.0}
            for i, text in enumerate(captions(n))
        ]
    )
    db.store_additional_data(video_path="/videos/a.mp4", fps=2, duration=200.5)
    db.save()
    return path


def make_generic_store(path: Path, n: int = 6, **extra: Any) -> Path:
    """A nano-vectordb store whose text sits in ``body`` (no known variant)."""
    from nano_vectordb import NanoVectorDB

    db = NanoVectorDB(OLD_DIM, storage_file=str(path))
    vectors = _old_vectors(n, seed=1)
    db.upsert(
        [
            {"__id__": f"g{i}", "__vector__": vectors[i], "body": f"body text {i}", "tag": "x"}
            | extra
            for i in range(n)
        ]
    )
    db.save()
    return path


def lightrag_vector(vector: np.ndarray) -> str:
    """LightRAG's per-record ``vector``: base64(zlib(float16 bytes))."""
    return base64.b64encode(zlib.compress(vector.astype(np.float16).tobytes())).decode()


def make_lightrag_store(directory: Path, n: int = 12) -> Path:
    """``vdb_chunks.json`` as LightRAG writes it: through NanoVectorDB, with ``vector``."""
    from nano_vectordb import NanoVectorDB

    path = directory / "vdb_chunks.json"
    db = NanoVectorDB(OLD_DIM, storage_file=str(path))
    vectors = _old_vectors(n, seed=2)
    db.upsert(
        [
            {
                "__id__": f"chunk-{i:04x}",
                "__created_at__": 1_700_000_000 + i,
                "content": f"chunk {i}: LightRAG stores text in content",
                "full_doc_id": f"doc-{i // 4}",
                "file_path": f"docs/{i // 4}.md",
                "vector": lightrag_vector(vectors[i]),
                "__vector__": vectors[i],
            }
            for i in range(n)
        ]
    )
    db.save()
    return path


def make_llamaindex_store(directory: Path) -> Path:
    """A persist dir from VectorStoreIndex + StorageContext.persist (mock embed model)."""
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    documents = [
        Document(
            text="The Eiffel Tower is in Paris.",
            metadata={"file_name": "paris.txt", "page": 3},
            excluded_embed_metadata_keys=["page"],
        ),
        Document(text="Photosynthesis turns light into chemical energy."),
        Document(
            text="Rust has no garbage collector.",
            metadata={"lang": "en", "source": "book"},
            metadata_template="{key}={value}",
            metadata_separator=" | ",
            text_template="[{metadata_str}]\n{content}",
        ),
    ]
    storage = StorageContext.from_defaults()
    VectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=MockEmbedding(embed_dim=OLD_DIM)
    )
    storage.persist(persist_dir=str(directory))
    return directory


def make_langchain_store(path: Path) -> Path:
    """An InMemoryVectorStore.dump() file (old vectors from a fake embedding)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=OLD_DIM))
    store.add_texts(
        ["apples are red", "the sea is blue", "grass is green", "snow is white"],
        metadatas=[{"n": 1}, {"n": 2, "note": "ümlaut"}, {"n": 3}, {"n": 4}],
        ids=["a", "b", "c", "d"],
    )
    store.dump(str(path))
    return path
