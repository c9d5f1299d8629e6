"""The applications whose tables are migrated: each action runs the REAL library in a fresh
process (LangChain's PGVector caches its table classes per process, with the dimension).

    python pg_apps.py ACTION '{"url": ..., ...}'   -> prints one JSON line

Actions:
- ``lc_create``: ``langchain_postgres.PGVector.add_texts`` into ``collection`` (old vectors:
  ``old_vector(text, dim)``); ``typed`` gives ``embedding_length=dim`` (``vector(n)``).
- ``lc_query``: ``PGVector.similarity_search`` with the query embedded by ``new`` (the fake
  server's ``fake_vector`` of dimension ``dim``, or the live server at ``base_url``).
- ``li_create`` / ``li_query``: LlamaIndex ``PGVectorStore`` (``data_<table>``) with an HNSW
  index (``hnsw_kwargs``); query with ``VectorStoreQuery``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any
from urllib.parse import urlsplit

import numpy as np


def old_vector(text: str, dim: int) -> list[float]:
    """The 'old model': a deterministic random unit vector per text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).tolist()


def _new_embedder(args: dict[str, Any]) -> Any:
    if args.get("base_url"):
        from vllm_embed import EmbeddingClient

        client = EmbeddingClient(args["base_url"], api_key=args.get("api_key"))
        return lambda text: client.embed_query(text).tolist()
    from vllm_embed_testing.fake_server import fake_vector

    return lambda text: fake_vector(text, args["dim"]).tolist()


def _embeddings(fn: Any) -> Any:
    from langchain_core.embeddings import Embeddings

    class _Emb(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [fn(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return list(fn(text))

    return _Emb()


def _sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def lc_create(args: dict[str, Any]) -> Any:
    """``collections``: {name: [texts]}, each added with ``PGVector.add_texts``."""
    from langchain_postgres import PGVector

    dim = args["dim"]
    for name, texts in args["collections"].items():
        store = PGVector(
            embeddings=_embeddings(lambda t: old_vector(t, dim)),
            collection_name=name,
            connection=_sa_url(args["url"]),
            embedding_length=dim if args.get("typed", True) else None,
        )
        ids = [f"{name}-{i}" for i in range(len(texts))]
        store.add_texts(texts, ids=ids, metadatas=[{"n": i} for i in range(len(texts))])
    return {"ok": True}


def lc_query(args: dict[str, Any]) -> Any:
    """The nearest document (``similarity_search(k=1)``) for each of ``queries``."""
    from langchain_postgres import PGVector

    store = PGVector(
        embeddings=_embeddings(_new_embedder(args)),
        collection_name=args["collection"],
        connection=_sa_url(args["url"]),
        embedding_length=args.get("length"),
    )
    return [store.similarity_search(q, k=1)[0].page_content for q in args["queries"]]


def _li_store(args: dict[str, Any], dim: int) -> Any:
    from llama_index.vector_stores.postgres import PGVectorStore

    parts = urlsplit(args["url"])
    return PGVectorStore.from_params(
        host=parts.hostname,
        port=str(parts.port),
        database=parts.path.lstrip("/"),
        user=parts.username,
        password=parts.password,
        table_name=args["table"],
        embed_dim=dim,
        hnsw_kwargs={
            "hnsw_m": 8,
            "hnsw_ef_construction": 32,
            "hnsw_ef_search": 40,
            "hnsw_dist_method": "vector_cosine_ops",
        },
    )


def li_create(args: dict[str, Any]) -> Any:
    from llama_index.core.schema import MetadataMode, TextNode

    dim = args["dim"]
    nodes = []
    for i, text in enumerate(args["texts"]):
        node = TextNode(text=text, id_=f"node-{i}", metadata={"topic": f"t{i % 3}"})
        node.embedding = old_vector(node.get_content(metadata_mode=MetadataMode.EMBED), dim)
        nodes.append(node)
    store = _li_store(args, dim)
    store.add(nodes)
    store.close()
    return {"embed_texts": [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]}


def li_query(args: dict[str, Any]) -> Any:
    """The nearest node's text for each of ``queries`` (``VectorStoreQuery``, top 1)."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store = _li_store(args, args["dim"])
    embed = _new_embedder(args)
    found = []
    for query in args["queries"]:
        q = VectorStoreQuery(query_embedding=embed(query), similarity_top_k=1)
        found.append(store.query(q).nodes[0].get_content())
    store.close()
    return found


ACTIONS = {
    "lc_create": lc_create,
    "lc_query": lc_query,
    "li_create": li_create,
    "li_query": li_query,
}

if __name__ == "__main__":
    print(json.dumps(ACTIONS[sys.argv[1]](json.loads(sys.argv[2]))))
