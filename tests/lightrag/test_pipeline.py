"""LightRAG 1.5 as its users run it (default nano-vectordb storage), embedding through the
adapter against the project's fake server over real HTTP: insert, naive query, a model
change to another dimension, ``vllm-embed migrate`` of every ``vdb_*.json``, reopen, query.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from lightrag import QueryParam
from lightrag.utils import EmbeddingFunc
from lightrag_support import DOCS, StubLLM, migrate, naive_context, open_rag, store_dir, vdb_files

from vllm_embed import DimensionsNotSupportedError
from vllm_embed_nanovectordb import (
    VLLMEmbeddingFunction,
    alightrag_embedding_func,
    lightrag_embedding_func,
    migrate_command,
    stored_dimension,
)
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

OLD_DIM, NEW_DIM = 64, 48


def _matrix(path: Path) -> tuple[list[dict[str, object]], np.ndarray]:
    store = json.loads(path.read_text())
    rows = np.frombuffer(base64.b64decode(store["matrix"]), dtype=np.float32)
    return store["data"], rows.reshape(len(store["data"]), store["embedding_dim"])


async def test_insert_query_model_change_migrate_reopen(tmp_path: Path) -> None:
    work, llm = tmp_path / "rag", StubLLM()
    with FakeEmbeddingServer(dim=OLD_DIM, model="old-model", max_model_len=300) as old:
        embedding_func = await alightrag_embedding_func(base_url=old.base_url)
        assert (embedding_func.embedding_dim, embedding_func.max_token_size) == (OLD_DIM, 300)
        assert embedding_func.model_name == "old-model"
        assert embedding_func.supports_asymmetric is False  # no instructions for this model
        rag = await open_rag(work, embedding_func, llm)
        await rag.ainsert(DOCS)
        assert DOCS[1] in await naive_context(rag, DOCS[1])
        await rag.finalize_storages()
        await embedding_func.func.aclose()
    files = vdb_files(work)
    assert [f.name for f in files] == [
        "vdb_chunks.json",
        "vdb_entities.json",
        "vdb_relationships.json",
    ]
    records, matrix = _matrix(store_dir(work) / "vdb_chunks.json")
    assert sorted(r["content"] for r in records) == sorted(DOCS)
    np.testing.assert_allclose(matrix[0], fake_vector(str(records[0]["content"]), OLD_DIM), 1e-5)
    entities = _matrix(store_dir(work) / "vdb_entities.json")[1]
    assert entities.shape[0] >= 6  # the stub LLM's entities

    with FakeEmbeddingServer(dim=NEW_DIM, model="new-model") as new:
        embedding_func = lightrag_embedding_func(base_url=new.base_url)
        assert embedding_func.embedding_dim == NEW_DIM
        # What LightRAG itself says about the old store, and what the adapter says.
        with pytest.raises(AssertionError, match="dim mismatch"):
            await open_rag(work, embedding_func, llm)
        assert {stored_dimension(f) for f in files} == {OLD_DIM}
        assert "vllm-embed migrate" in migrate_command(files[0], base_url=new.base_url)

        for path in files:
            await migrate(path, new.base_url)
        assert {stored_dimension(f) for f in files} == {NEW_DIM}
        for path in files:
            records, matrix = _matrix(path)
            expected = [fake_vector(str(r["content"]), NEW_DIM) for r in records]
            np.testing.assert_allclose(matrix, np.stack(expected), atol=1e-5)

        rag = await open_rag(work, embedding_func, llm)
        assert DOCS[2] in await naive_context(rag, DOCS[2])
        param = QueryParam(mode="naive", enable_rerank=False)
        assert "stub answer" in str(await rag.aquery(DOCS[0], param=param))  # LLM answers
        assert any(DOCS[0] in prompt for prompt in llm.prompts[-3:])
        await rag.finalize_storages()
        await embedding_func.func.aclose()
        embedding_func.func.close()


async def test_queries_get_the_query_instruction(tmp_path: Path) -> None:
    """An E5 model: the builder turns supports_asymmetric on, so LightRAG's naive query is
    embedded with ``query: `` and its chunks with ``passage: ``."""
    with FakeEmbeddingServer(dim=32, model="intfloat/e5-small-v2") as server:
        embedding_func = await alightrag_embedding_func(base_url=server.base_url)
        assert embedding_func.supports_asymmetric is True
        rag = await open_rag(tmp_path, embedding_func, StubLLM())
        await rag.ainsert(DOCS[:1])
        chunk_request = server.stats()["last_request"]["json"]
        assert chunk_request["input"][0].startswith("passage: ")
        await naive_context(rag, "who restores motorcycles?")
        query_request = server.stats()["last_request"]["json"]
        assert query_request["input"] == ["query: who restores motorcycles?"]
        await rag.finalize_storages()
        await embedding_func.func.aclose()


async def test_send_dimensions_asks_for_the_matryoshka_size(tmp_path: Path) -> None:
    """A user's own ``EmbeddingFunc(embedding_dim=16, send_dimensions=True)`` over the
    adapter: LightRAG passes embedding_dim=16 and the server is asked for 16 dims."""
    with FakeEmbeddingServer(dim=64) as server:
        fn = VLLMEmbeddingFunction(base_url=server.base_url)
        embedding_func = EmbeddingFunc(
            embedding_dim=16, func=fn, send_dimensions=True, supports_asymmetric=True
        )
        rag = await open_rag(tmp_path, embedding_func, StubLLM())
        await rag.ainsert(DOCS[:2])
        assert server.stats()["last_request"]["json"]["dimensions"] == 16
        assert {stored_dimension(f) for f in vdb_files(tmp_path)} == {16}
        records, matrix = _matrix(store_dir(tmp_path) / "vdb_chunks.json")
        np.testing.assert_allclose(matrix[0], fake_vector(str(records[0]["content"]), 64, 16), 1e-5)
        assert DOCS[1] in await naive_context(rag, DOCS[1])
        await rag.finalize_storages()
        await fn.aclose()


async def test_send_dimensions_on_a_server_that_is_not_matryoshka(tmp_path: Path) -> None:
    with FakeEmbeddingServer(dim=64, matryoshka=False) as server:
        fn = VLLMEmbeddingFunction(base_url=server.base_url)
        same = EmbeddingFunc(embedding_dim=64, func=fn, send_dimensions=True)
        assert (await same(["checked, not sent"])).shape == (1, 64)
        assert "dimensions" not in server.stats()["last_request"]["json"]
        other = EmbeddingFunc(embedding_dim=16, func=fn, send_dimensions=True)
        with pytest.raises(DimensionsNotSupportedError, match="dimensions"):
            await other(["refused"])
        await fn.aclose()


async def test_cache_passes_through_so_a_reingest_embeds_nothing_new(tmp_path: Path) -> None:
    """``cache=`` goes to the core client: a second app ingesting the same documents (a new
    LightRAG workspace, a new server process) gets every vector from the cache."""
    cache = str(tmp_path / "embeddings.sqlite")
    served = []
    for run in ("first", "second"):
        with FakeEmbeddingServer(dim=OLD_DIM, model="old-model") as server:
            embedding_func = await alightrag_embedding_func(base_url=server.base_url, cache=cache)
            rag = await open_rag(tmp_path / run, embedding_func, StubLLM())
            await rag.ainsert(DOCS)
            assert DOCS[0] in await naive_context(rag, DOCS[0])
            await rag.finalize_storages()
            await embedding_func.func.aclose()
            embedding_func.func.close()
            served.append(server.stats()["vectors"])
    assert served[0] > len(DOCS) and served[1] <= 1, served  # at most the dimension probe


async def test_rerank_enabled_reorders_the_chunks(tmp_path: Path) -> None:
    # LightRAG 1.5 with rerank_model_func: naive mode retrieves chunks by vector, then asks
    # the reranker (the fake server scores by cosine) and keeps its order.
    from vllm_embed_nanovectordb import VLLMRerankFunction

    work, llm = tmp_path / "rerank", StubLLM()
    with FakeEmbeddingServer(dim=OLD_DIM, model="old-model") as server:
        embedding_func = await alightrag_embedding_func(base_url=server.base_url)
        rerank = VLLMRerankFunction(base_url=server.base_url)
        calls: list[tuple[str, list[str]]] = []

        async def recording(query: str, documents: list[str], top_n: int | None = None, **kw):  # type: ignore[no-untyped-def]
            calls.append((query, list(documents)))
            return await rerank(query, documents, top_n=top_n, **kw)

        rag = await open_rag(work, embedding_func, llm)
        rag.rerank_model_func = recording
        # the fake's random vectors are far apart: let every chunk through to the reranker
        rag.chunks_vdb.cosine_better_than_threshold = -1.0
        await rag.ainsert(DOCS)
        question = "Which museum shows guitars?"
        param = QueryParam(mode="naive", only_need_context=True, enable_rerank=True, chunk_top_k=3)
        context = str(await rag.aquery(question, param=param))
        assert calls, "LightRAG did not call the rerank function"
        query, documents = calls[-1]
        assert query == question and sorted(documents) == sorted(DOCS)
        scores = np.stack([fake_vector(d, OLD_DIM) for d in documents]) @ fake_vector(
            query, OLD_DIM
        )
        best = documents[int(np.argmax(scores))]
        chunks = [
            json.loads(line)["content"]
            for line in context.splitlines()
            if line.startswith('{"reference_id"')
        ]
        assert chunks and chunks[0] == best
        direct = await rerank(query, documents, top_n=1)
        assert direct == [
            {"index": int(np.argmax(scores)), "relevance_score": direct[0]["relevance_score"]}
        ]
        await rag.finalize_storages()
        await embedding_func.func.aclose()
        await rerank.aclose()
