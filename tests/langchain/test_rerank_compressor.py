"""VLLMRerank: a LangChain document compressor over the core client's rerank (respx fake
vLLM scoring by cosine)."""

from __future__ import annotations

import asyncio

import respx
from rerank_support import DOCS, QUERY, make, order

from vllm_embed_testing.respx_vllm import API_KEY


def test_compress_documents_keeps_top_n_best_first(server: respx.Route) -> None:
    rerank = make(top_n=4, batch_size=5)
    out = rerank.compress_documents(DOCS, QUERY)
    want = order(QUERY, [d.page_content for d in DOCS])[:4]
    assert [d.metadata["n"] for d in out] == want
    assert [d.id for d in out] == [str(i) for i in want]
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    assert "relevance_score" not in DOCS[0].metadata  # the inputs are not modified
    rerank.close()


def test_async_and_top_n_none(server: respx.Route) -> None:
    rerank = make(top_n=None)

    async def run() -> list[int]:
        out = await rerank.acompress_documents(DOCS, QUERY)
        await rerank.aclose()
        return [d.metadata["n"] for d in out]

    assert asyncio.run(run()) == order(QUERY, [d.page_content for d in DOCS])


def test_no_documents_no_request(server: respx.Route) -> None:
    assert make().compress_documents([], QUERY) == []
    assert server.call_count == 0


def test_key_never_in_repr(server: respx.Route) -> None:
    assert API_KEY not in repr(make())
