"""VLLMRerank inside LangChain's ContextualCompressionRetriever (langchain-classic: the
latest matrix entry installs it; conftest.py leaves this file out without it)."""

from __future__ import annotations

import respx
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from rerank_support import DOCS, QUERY, make, order

from vllm_embed_langchain import VLLMEmbeddings
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, MODEL


def test_inside_contextual_compression_retriever(server: respx.Route) -> None:
    store = InMemoryVectorStore(
        VLLMEmbeddings(base_url=BASE_URL, model=MODEL, api_key=API_KEY, instructions=None)
    )
    store.add_documents(DOCS)
    retriever = ContextualCompressionRetriever(
        base_compressor=make(top_n=2), base_retriever=store.as_retriever(search_kwargs={"k": 8})
    )
    got = retriever.invoke(QUERY)
    candidates = store.similarity_search(QUERY, k=8)
    want = order(QUERY, [d.page_content for d in candidates])[:2]
    assert [d.page_content for d in got] == [candidates[i].page_content for i in want]
    assert all("relevance_score" in d.metadata for d in got)
