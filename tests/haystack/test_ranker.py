"""VLLMRanker: a Haystack ranker over the core client's rerank (respx fake vLLM scoring by
cosine): alone, after a retriever in a query pipeline, and through a YAML round trip."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import respx
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from vllm_embed_haystack import VLLMDocumentEmbedder, VLLMRanker, VLLMTextEmbedder
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

DOCS = [Document(content=f"passage {i} on theme {i % 4}", meta={"n": i}) for i in range(10)]
QUERY = "theme 2 please"


@pytest.fixture(autouse=True)
def key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_EMBED_API_KEY", API_KEY)


def order(query: str, texts: list[str]) -> list[int]:
    scores = np.stack([fake_vector(t, DIM) for t in texts]) @ fake_vector(query, DIM)
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def test_run_ranks_best_first_with_scores(server: respx.Route) -> None:
    ranker = VLLMRanker(base_url=BASE_URL, model=MODEL, top_k=3)
    out = ranker.run(query=QUERY, documents=DOCS)["documents"]
    want = order(QUERY, [d.content or "" for d in DOCS])[:3]
    assert [d.meta["n"] for d in out] == want
    assert all(d.score is not None for d in out)
    assert [d.score for d in out] == sorted((d.score or 0.0 for d in out), reverse=True)
    assert DOCS[0].score is None  # copies, not the caller's documents
    assert ranker.run(query=QUERY, documents=DOCS, top_k=1)["documents"][0].meta["n"] == want[0]
    assert ranker.run(query=QUERY, documents=[])["documents"] == []
    ranker.close()


def test_meta_fields_are_scored_with_the_content(server: respx.Route) -> None:
    docs = [Document(content=f"body {i}", meta={"title": f"title {i}"}) for i in range(5)]
    ranker = VLLMRanker(base_url=BASE_URL, model=MODEL, top_k=5, meta_fields_to_embed=["title"])
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    texts = [f"title {i}\nbody {i}" for i in range(5)]
    assert [d.content for d in out] == [docs[i].content for i in order(QUERY, texts)]


def test_run_async(server: respx.Route) -> None:
    ranker = VLLMRanker(base_url=BASE_URL, model=MODEL, top_k=2)

    async def run() -> list[int]:
        out = await ranker.run_async(query=QUERY, documents=DOCS)
        await ranker.close_async()
        return [d.meta["n"] for d in out["documents"]]

    assert asyncio.run(run()) == order(QUERY, [d.content or "" for d in DOCS])[:2]


def test_in_a_query_pipeline_and_yaml_round_trip(server: respx.Route) -> None:
    store = InMemoryDocumentStore()
    embedder = VLLMDocumentEmbedder(
        base_url=BASE_URL, model=MODEL, instructions=None, progress_bar=False
    )
    store.write_documents(embedder.run(documents=DOCS)["documents"])
    pipeline = Pipeline()
    pipeline.add_component(
        "embedder", VLLMTextEmbedder(base_url=BASE_URL, model=MODEL, instructions=None)
    )
    pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=6))
    pipeline.add_component("ranker", VLLMRanker(base_url=BASE_URL, model=MODEL, top_k=2))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    pipeline.connect("retriever.documents", "ranker.documents")
    text = pipeline.dumps()
    assert API_KEY not in text and "VLLM_EMBED_API_KEY" in text
    loaded = Pipeline.loads(text)  # the default allowlist admits haystack_integrations.*
    for p in (pipeline, loaded):
        result = p.run({"embedder": {"text": QUERY}, "ranker": {"query": QUERY}})
        ranked = result["ranker"]["documents"]
        candidates = store.embedding_retrieval(
            query_embedding=fake_vector(QUERY, DIM).tolist(), top_k=6
        )
        want = order(QUERY, [d.content or "" for d in candidates])[:2]
        assert [d.content for d in ranked] == [candidates[i].content for i in want]
