"""rerank() and score() against the live vLLM CPU server (all-MiniLM-L6-v2: vLLM scores an
embedding model by the cosine of the query and document embeddings)."""

from __future__ import annotations

import asyncio

import numpy as np

from vllm_embed import AsyncEmbeddingClient, EmbeddingClient
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DOCS = [text for _, text in DEMO_CORPUS]


def _cosines(client: EmbeddingClient, query: str, docs: list[str]) -> np.ndarray:
    vectors = client.embed([query, *docs])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors[1:] @ vectors[0]


def test_rerank_order_equals_the_cosine_ranking(vllm_server: LiveServer) -> None:
    with EmbeddingClient(
        vllm_server.base_url, api_key=vllm_server.api_key, batch_size=16
    ) as client:
        for query in DEMO_QUERIES[:3]:
            results = client.rerank(query.text, DOCS)
            cosines = _cosines(client, query.text, DOCS)
            assert [r.index for r in results] == list(np.argsort(-cosines, kind="stable"))
            np.testing.assert_allclose(
                [r.score for r in results], np.sort(cosines)[::-1], atol=1e-4
            )
            # the best document is on the query's topic
            assert DEMO_CORPUS[results[0].index][0] == query.topic
        full = client.rerank(DEMO_QUERIES[0].text, DOCS)
        top = client.rerank(DEMO_QUERIES[0].text, DOCS, top_n=5)
        assert [r.index for r in top] == [r.index for r in full[:5]]


def test_score_equals_cosines(vllm_server: LiveServer) -> None:
    query = DEMO_QUERIES[1].text
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client:
        scores = client.score(query, DOCS[:12])
        np.testing.assert_allclose(scores, _cosines(client, query, DOCS[:12]), atol=1e-4)
        pairs = client.score(DOCS[:4], DOCS[4:8])
        vectors = client.embed(DOCS[:8])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        np.testing.assert_allclose(pairs, np.sum(vectors[:4] * vectors[4:8], axis=1), atol=1e-4)


def test_async_rerank(vllm_server: LiveServer) -> None:
    query = DEMO_QUERIES[2].text

    async def run() -> list[int]:
        async with AsyncEmbeddingClient(
            vllm_server.base_url, api_key=vllm_server.api_key, batch_size=8
        ) as client:
            return [r.index for r in await client.rerank(query, DOCS, top_n=3)]

    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client:
        want = list(np.argsort(-_cosines(client, query, DOCS), kind="stable")[:3])
    assert asyncio.run(run()) == want
