"""Stores made by the real libraries, with random old vectors of dimension ``OLD_DIM``.

Every store is written by the library that owns the format (``NanoVectorDB.save``,
``StorageContext.persist``, ``InMemoryVectorStore.dump``); nothing here writes store
JSON by hand.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed_testing.migration import embedded_texts  # noqa: F401 (the suite's name)

OLD_DIM = 24


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


def make_content_store(path: Path, n: int = 5) -> Path:
    """A nano-vectordb store whose only string field is ``content`` (no LightRAG markers)."""
    from nano_vectordb import NanoVectorDB

    db = NanoVectorDB(OLD_DIM, storage_file=str(path))
    vectors = _old_vectors(n, seed=3)
    db.upsert(
        [
            {"__id__": f"c{i}", "__vector__": vectors[i], "content": f"content {i}", "page": i}
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


def faiss_texts(n: int) -> list[str]:
    topics = ["harbour cranes at dawn", "a violin lesson", "glaciers retreat", "tax forms"]
    return [f"doc {i:03d}: {topics[i % 4]} (part {i})" for i in range(n)]


def make_langchain_faiss(
    folder: Path, *, kind: str = "flat", n: int = 40, index_name: str = "index"
) -> Path:
    """A ``FAISS.save_local`` folder written by langchain-community (fake old embeddings).

    ``kind``: ``flat`` (LangChain's default IndexFlatL2), ``cosine`` (IndexFlatIP with
    ``normalize_L2=True``), or a faiss factory string (``IVF4,Flat``, ``HNSW8``,
    ``PQ4x8``, ...) for an index built by hand and handed to ``FAISS(...)``.
    """
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.embeddings import DeterministicFakeEmbedding

    embedding = DeterministicFakeEmbedding(size=OLD_DIM)
    texts = faiss_texts(n)
    metadatas = [{"n": i, "source": f"file{i % 3}.md"} for i in range(n)]
    ids = [f"doc-{i}" for i in range(n)]
    if kind == "flat":
        db = FAISS.from_texts(texts, embedding, metadatas=metadatas, ids=ids)
    elif kind == "cosine":
        db = FAISS.from_texts(
            texts,
            embedding,
            metadatas=metadatas,
            ids=ids,
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
            normalize_L2=True,
        )
    else:
        index = faiss.index_factory(OLD_DIM, kind)
        if not index.is_trained:
            index.train(_old_vectors(max(n, 300), seed=5))
        db = FAISS(embedding, index, InMemoryDocstore(), {})
        db.add_texts(texts, metadatas=metadatas, ids=ids)
    db.save_local(str(folder), index_name)
    return folder


def make_lightrag_faiss(directory: Path, n: int = 12, namespace: str = "chunks") -> Path:
    """``faiss_index_{namespace}.index`` + ``.meta.json`` written by LightRAG itself.

    Uses lightrag-hku's ``FaissVectorDBStorage`` (upsert, then ``index_done_callback``
    saves both files), with a fake embedding function of dimension ``OLD_DIM``.
    """
    import asyncio

    from lightrag.kg.faiss_impl import FaissVectorDBStorage
    from lightrag.kg.shared_storage import initialize_share_data
    from lightrag.utils import EmbeddingFunc

    async def embed(texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([_old_vectors(1, seed=len(t))[0] for t in texts])

    async def write() -> None:
        initialize_share_data()
        storage = FaissVectorDBStorage(
            namespace=namespace,
            workspace="",
            global_config={
                "working_dir": str(directory),
                "embedding_batch_num": 8,
                "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2},
            },
            embedding_func=EmbeddingFunc(embedding_dim=OLD_DIM, func=embed),
            meta_fields={"content", "full_doc_id"},
        )
        await storage.initialize()
        await storage.upsert(
            {
                f"chunk-{i:03d}": {"content": t, "full_doc_id": f"doc-{i // 4}"}
                for i, t in enumerate(faiss_texts(n))
            }
        )
        await storage.index_done_callback()
        await storage.finalize()

    asyncio.run(write())
    return directory / f"faiss_index_{namespace}.index"


def lightrag_faiss_query(index_path: Path, dim: int, text: str) -> list[str]:
    """Ask LightRAG's own FaissVectorDBStorage (new dimension) for ``text``: ids, best first."""
    import asyncio

    from lightrag.kg.faiss_impl import FaissVectorDBStorage
    from lightrag.kg.shared_storage import initialize_share_data
    from lightrag.utils import EmbeddingFunc

    from vllm_embed_testing.fake_server import fake_vector

    namespace = index_path.name[len("faiss_index_") : -len(".index")]

    async def embed(texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([fake_vector(t, dim) for t in texts])

    async def query() -> list[str]:
        initialize_share_data()
        storage = FaissVectorDBStorage(
            namespace=namespace,
            workspace="",
            global_config={
                "working_dir": str(index_path.parent),
                "embedding_batch_num": 8,
                "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2},
            },
            embedding_func=EmbeddingFunc(embedding_dim=dim, func=embed),
            meta_fields={"content", "full_doc_id"},
        )
        await storage.initialize()
        hits = await storage.query(text, top_k=3)
        await storage.finalize()
        return [h["id"] for h in hits]

    return asyncio.run(query())
