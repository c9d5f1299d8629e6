"""LightRAG's FAISS storage written by lightrag-hku itself, migrated by the CLI on the live
vLLM server (all-MiniLM-L6-v2, 384 d), then loaded and queried by LightRAG's own
``FaissVectorDBStorage``: the expected neighbour comes first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from click.testing import CliRunner
from live_support import FACTS, MINILM_DIM, OLD_DIM, QUESTION

from vllm_embed.cli import main

ANSWER = "chunk-2"
CONFIG = {"cosine_better_than_threshold": 0.0}


def _storage(directory: Path, dim: int, embed: Any) -> Any:
    from lightrag.kg.faiss_impl import FaissVectorDBStorage
    from lightrag.kg.shared_storage import initialize_share_data
    from lightrag.utils import EmbeddingFunc

    initialize_share_data()
    return FaissVectorDBStorage(
        namespace="chunks",
        workspace="",
        global_config={
            "working_dir": str(directory),
            "embedding_batch_num": 8,
            "vector_db_storage_cls_kwargs": CONFIG,
        },
        embedding_func=EmbeddingFunc(embedding_dim=dim, func=embed),
        meta_fields={"content", "full_doc_id"},
    )


def _write_old_store(directory: Path) -> Path:
    """The store as LightRAG saved it with a 24-d model (random vectors stand in)."""

    async def embed(texts: list[str], **_: Any) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        return rng.standard_normal((len(texts), OLD_DIM)).astype(np.float32)

    async def write() -> None:
        storage = _storage(directory, OLD_DIM, embed)
        await storage.initialize()
        await storage.upsert(
            {f"chunk-{i}": {"content": t, "full_doc_id": f"doc-{i}"} for i, t in enumerate(FACTS)}
        )
        await storage.index_done_callback()
        await storage.finalize()

    asyncio.run(write())
    return directory / "faiss_index_chunks.index"


def test_lightrag_faiss_migrated_by_the_cli_then_queried_by_lightrag(
    tmp_path, vllm_server, make_client
):
    index_path = _write_old_store(tmp_path)
    meta = index_path.with_name(index_path.name + ".meta.json")
    meta_before = meta.read_bytes()
    args = ["migrate", str(index_path), "--base-url", vllm_server.base_url, "--yes"]
    result = CliRunner().invoke(main, args, env={"VLLM_EMBED_API_KEY": vllm_server.api_key})
    assert result.exit_code == 0, result.output
    assert "format: LightRAG FAISS; 6 records; text from content" in result.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert vllm_server.api_key not in result.output
    assert meta.read_bytes() == meta_before  # row numbers and records unchanged
    index = faiss.read_index(str(index_path))
    assert (type(index).__name__, index.d, index.ntotal) == ("IndexFlatIP", MINILM_DIM, 6)

    client = make_client(vllm_server)

    async def embed(texts: list[str], **_: Any) -> np.ndarray:
        return client.embed_documents(list(texts))

    async def query() -> list[dict[str, Any]]:
        storage = _storage(tmp_path, MINILM_DIM, embed)
        await storage.initialize()
        hits: list[dict[str, Any]] = await storage.query(QUESTION, top_k=3)
        await storage.finalize()
        return hits

    hits = asyncio.run(query())
    assert hits and hits[0]["id"] == ANSWER, hits
    assert hits[0]["content"] == FACTS[2]
