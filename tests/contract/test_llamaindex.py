"""The LlamaIndex adapter against a live vLLM CPU server (all-MiniLM-L6-v2 as ``minilm``).

``VLLMEmbedding`` as ``Settings.embed_model``: ``VectorStoreIndex.from_documents``
answers the demo queries, a persisted ``StorageContext`` reloads and answers the same
without re-embedding the documents, and the async path agrees with the sync one.
"""

from __future__ import annotations

import asyncio
import runpy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import (
    Document,
    Settings,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)

from vllm_embed import EmbeddingClient, InvalidInputError
from vllm_embed_llamaindex import VLLMEmbedding
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384


@pytest.fixture
def embed_model(vllm_server: LiveServer) -> Iterator[VLLMEmbedding]:
    previous = Settings._embed_model
    model = VLLMEmbedding(
        base_url=vllm_server.base_url, api_key=vllm_server.api_key, model_name=vllm_server.model
    )
    Settings.embed_model = model
    yield model
    Settings._embed_model = previous
    model.close()


def _documents() -> list[Document]:
    return [Document(text=text, metadata={"topic": topic}) for topic, text in DEMO_CORPUS]


def _check_answers(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=1)
    for query in DEMO_QUERIES:
        hit = retriever.retrieve(query.text)[0]
        assert hit.node.metadata["topic"] == query.topic, (query.text, hit.node.get_content())


def test_vectors_are_the_core_clients(vllm_server: LiveServer, embed_model: VLLMEmbedding) -> None:
    texts = [text for _, text in DEMO_CORPUS]
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected = core.embed_documents(texts)
    got = np.array(embed_model.get_text_embedding_batch(texts))
    assert got.shape == (len(texts), DIM)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_index_from_documents_persist_and_reload(
    embed_model: VLLMEmbedding, tmp_path: Path
) -> None:
    index = VectorStoreIndex.from_documents(_documents())
    _check_answers(index)
    index.storage_context.persist(persist_dir=tmp_path)
    assert (tmp_path / "default__vector_store.json").exists()

    reloaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=tmp_path))
    calls = embed_model.client.stats.inputs
    _check_answers(reloaded)
    # only the queries were embedded after reloading, not the 40 documents again
    assert embed_model.client.stats.inputs - calls == len(DEMO_QUERIES)


def test_async_index_and_retrieval(embed_model: VLLMEmbedding) -> None:
    # from_documents(use_async=True) runs its own event loop, so this test is sync
    index = VectorStoreIndex.from_documents(_documents(), use_async=True)
    retriever = index.as_retriever(similarity_top_k=1)

    async def ask() -> tuple[list[str], list[float]]:
        topics = [
            (await retriever.aretrieve(q.text))[0].node.metadata["topic"] for q in DEMO_QUERIES
        ]
        vector = await embed_model.aget_query_embedding(DEMO_QUERIES[0].text)
        await embed_model.aclose()
        return topics, vector

    topics, vector = asyncio.run(ask())
    assert topics == [q.topic for q in DEMO_QUERIES]
    sync = embed_model.get_query_embedding(DEMO_QUERIES[0].text)
    np.testing.assert_allclose(vector, sync, atol=1e-5)


def test_bad_input_and_empty_batch(embed_model: VLLMEmbedding) -> None:
    assert embed_model.get_text_embedding_batch([]) == []
    with pytest.raises(InvalidInputError):
        embed_model.get_text_embedding_batch(["fine", None])  # type: ignore[list-item]


def test_example_runs(
    vllm_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(__file__).parents[2] / "examples" / "llamaindex_index.py"
    main = runpy.run_path(str(example))["main"]
    previous = Settings._embed_model
    try:
        code = main(vllm_server.base_url, vllm_server.api_key, vllm_server.model, str(tmp_path))
    finally:
        Settings._embed_model = previous
    assert code == 0, capsys.readouterr().out
    assert (tmp_path / "docstore.json").exists()
