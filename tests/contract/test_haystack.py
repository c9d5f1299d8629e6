"""The Haystack components against a live vLLM CPU server (all-MiniLM-L6-v2 as ``minilm``).

An indexing pipeline writes the demo corpus into an ``InMemoryDocumentStore``; a query
pipeline (``InMemoryEmbeddingRetriever``) answers the demo queries with the right topic,
also after a YAML ``dumps`` / ``loads`` round trip (the key read back from the
environment, never written); ``run_async`` gives the same vectors as the core client.
"""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from vllm_embed import EmbeddingClient
from vllm_embed_haystack import VLLMDocumentEmbedder, VLLMRanker, VLLMTextEmbedder
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384


@pytest.fixture
def settings(vllm_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("VLLM_EMBED_API_KEY", vllm_server.api_key)
    return {"base_url": vllm_server.base_url, "model": vllm_server.model}


def documents() -> list[Document]:
    return [Document(content=text, meta={"topic": topic}) for topic, text in DEMO_CORPUS]


def test_pipelines_index_and_answer_after_a_yaml_round_trip(
    vllm_server: LiveServer, settings: dict[str, Any]
) -> None:
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embedder", VLLMDocumentEmbedder(**settings, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder", "writer")
    indexing = Pipeline.loads(indexing.dumps())
    written = indexing.run({"embedder": {"documents": documents()}})
    assert written["writer"]["documents_written"] == len(DEMO_CORPUS)
    store = indexing.get_component("writer").document_store

    query = Pipeline()
    query.add_component("embedder", VLLMTextEmbedder(**settings))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
    query.connect("embedder.embedding", "retriever.query_embedding")
    saved = query.dumps()
    assert vllm_server.api_key not in saved
    query = Pipeline.loads(saved)
    query.get_component("retriever").document_store = store
    topics = [
        query.run({"embedder": {"text": q.text}})["retriever"]["documents"][0].meta["topic"]
        for q in DEMO_QUERIES
    ]
    assert topics == [q.topic for q in DEMO_QUERIES]


def test_vectors_are_the_core_clients_sync_and_async(
    vllm_server: LiveServer, settings: dict[str, Any]
) -> None:
    texts = [text for _, text in DEMO_CORPUS[:8]]
    docs = VLLMDocumentEmbedder(**settings, progress_bar=False)
    text = VLLMTextEmbedder(**settings)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected_docs = core.embed_documents(texts)
        expected_query = core.embed_query(DEMO_QUERIES[0].text)
    out = docs.run([Document(content=t) for t in texts])
    got = np.array([d.embedding for d in out["documents"]])
    assert got.shape == (len(texts), DIM)
    np.testing.assert_allclose(got, expected_docs, atol=1e-5)
    assert out["meta"]["model"] == vllm_server.model
    assert out["meta"]["usage"]["prompt_tokens"] > len(texts)

    async def run_async() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return (
                await docs.run_async([Document(content=t) for t in texts]),
                await text.run_async(DEMO_QUERIES[0].text),
            )
        finally:
            await docs.close_async()
            await text.close_async()

    got_docs, got_query = asyncio.run(run_async())
    np.testing.assert_allclose(
        [d.embedding for d in got_docs["documents"]], expected_docs, atol=1e-5
    )
    np.testing.assert_allclose(got_query["embedding"], expected_query, atol=1e-5)
    np.testing.assert_allclose(
        text.run(DEMO_QUERIES[0].text)["embedding"], expected_query, atol=1e-5
    )
    docs.close()
    text.close()


def test_example_runs(
    vllm_server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_EMBED_API_KEY", raising=False)  # the example sets it: undone after
    example = Path(__file__).parents[2] / "examples" / "haystack_pipeline.py"
    main = runpy.run_path(str(example))["main"]
    code = main(vllm_server.base_url, vllm_server.api_key, vllm_server.model)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "questions answered by the loaded pipeline" in out


def test_ranker_orders_by_the_servers_rerank(settings: dict[str, Any]) -> None:
    # vLLM reranks with an embedding model by cosine: the ranker's order is that ranking
    query = DEMO_QUERIES[3]
    docs = documents()
    ranker = VLLMRanker(**settings, top_k=4)
    ranked = ranker.run(query=query.text, documents=docs)["documents"]
    with EmbeddingClient(settings["base_url"], api_key=ranker.api_key.resolve_value()) as c:
        vectors = c.embed([query.text, *[d.content or "" for d in docs]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = vectors[1:] @ vectors[0]
    want = [docs[int(i)].content for i in np.argsort(-cosines, kind="stable")[:4]]
    assert [d.content for d in ranked] == want
    assert ranked[0].meta["topic"] == query.topic
    ranker.close()
