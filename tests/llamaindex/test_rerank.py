"""VLLMRerank: a LlamaIndex node postprocessor over the core client's rerank (respx fake vLLM
scoring by cosine), alone and in a query engine over a VectorStoreIndex."""

from __future__ import annotations

import asyncio

import numpy as np
import respx
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from vllm_embed_llamaindex import VLLMEmbedding, VLLMRerank
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

QUERY = "which fact is about rivers?"
NODES = [
    NodeWithScore(node=TextNode(text=f"fact {i} about topic {i % 4}", id_=f"n{i}"), score=0.0)
    for i in range(10)
]


def order(query: str, texts: list[str]) -> list[int]:
    q = fake_vector(query, DIM)
    scores = np.stack([fake_vector(t, DIM) for t in texts]) @ q
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def make(**kwargs: object) -> VLLMRerank:
    params: dict[str, object] = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY}
    params.update(kwargs)
    return VLLMRerank(**params)  # type: ignore[arg-type]


def test_postprocess_nodes_best_first(server: respx.Route) -> None:
    rerank = make(top_n=3, batch_size=4)
    out = rerank.postprocess_nodes(NODES, query_str=QUERY)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in NODES]
    want = order(QUERY, texts)[:3]
    assert [n.node.node_id for n in out] == [f"n{i}" for i in want]
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True) and all(s is not None for s in scores)
    assert API_KEY not in repr(rerank)
    rerank.close()


def test_async_postprocess(server: respx.Route) -> None:
    rerank = make(top_n=None)

    async def run() -> list[str]:
        out = await rerank.apostprocess_nodes(NODES, query_bundle=QueryBundle(QUERY))
        await rerank.aclose()
        return [n.node.node_id for n in out]

    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in NODES]
    assert asyncio.run(run()) == [f"n{i}" for i in order(QUERY, texts)]


def test_in_a_query_engine(server: respx.Route, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # no_text: the engine retrieves and postprocesses, no LLM call (its Settings.llm: a mock)
    monkeypatch.setattr(Settings, "_llm", MockLLM())
    docs = [Document(text=f"record {i}: a note on subject {i % 5}", id_=f"d{i}") for i in range(12)]
    embed = VLLMEmbedding(base_url=BASE_URL, model_name=MODEL, api_key=API_KEY, instructions=None)
    index = VectorStoreIndex.from_documents(docs, embed_model=embed)
    rerank = make(top_n=2)
    engine = index.as_query_engine(
        similarity_top_k=6, node_postprocessors=[rerank], response_mode="no_text"
    )
    response = engine.query(QUERY)
    candidates = index.as_retriever(similarity_top_k=6).retrieve(QUERY)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in candidates]
    want = [candidates[i].node.node_id for i in order(QUERY, texts)[:2]]
    assert [n.node.node_id for n in response.source_nodes] == want
