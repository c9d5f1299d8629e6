"""The components inside real Haystack pipelines: an indexing pipeline writing an
``InMemoryDocumentStore``, a query pipeline retrieving through ``InMemoryEmbeddingRetriever``,
YAML ``dumps`` / ``loads`` with Haystack's default deserialisation allowlist, and
``Pipeline.run_async``. The fake vLLM (respx) gives each text its own vector, so a query equal
to a document's text must retrieve exactly that document.
"""

from __future__ import annotations

import asyncio

import pytest
import respx
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from vllm_embed_haystack import VLLMDocumentEmbedder, VLLMTextEmbedder
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, MODEL

TEXTS = [f"document number {i} about topic {i * 7 % 5}" for i in range(12)]


@pytest.fixture(autouse=True)
def key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_EMBED_API_KEY", API_KEY)


def indexing(store: InMemoryDocumentStore, pipeline: Pipeline) -> None:
    pipeline.add_component(
        "embedder",
        VLLMDocumentEmbedder(
            base_url=BASE_URL, model=MODEL, instructions=None, progress_bar=False, batch_size=5
        ),
    )
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.connect("embedder", "writer")


def query_pipeline(store: InMemoryDocumentStore) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component(
        "embedder", VLLMTextEmbedder(base_url=BASE_URL, model=MODEL, instructions=None)
    )
    pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=2))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    return pipeline


def documents() -> list[Document]:
    return [Document(content=t, meta={"n": i}) for i, t in enumerate(TEXTS)]


def test_indexing_then_query_retrieves_the_right_document(server: respx.Route) -> None:
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    indexing(store, pipeline)
    result = pipeline.run({"embedder": {"documents": documents()}})
    assert result["writer"]["documents_written"] == len(TEXTS)
    stored = store.filter_documents()
    assert len(stored) == len(TEXTS) and all(len(d.embedding or []) == 16 for d in stored)

    query = query_pipeline(store)
    for n in (0, 5, 11):
        hits = query.run({"embedder": {"text": TEXTS[n]}})["retriever"]["documents"]
        assert hits[0].meta["n"] == n
        assert hits[0].score > hits[1].score


def test_yaml_round_trip_keeps_settings_and_no_key(server: respx.Route) -> None:
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    indexing(store, pipeline)
    yaml_text = pipeline.dumps()
    assert API_KEY not in yaml_text
    assert "haystack_integrations.components.embedders.vllm_embed" in yaml_text
    assert "VLLM_EMBED_API_KEY" in yaml_text

    loaded = Pipeline.loads(yaml_text)  # Haystack's default allowlist admits the type
    assert loaded.dumps() == yaml_text
    embedder = loaded.get_component("embedder")
    assert isinstance(embedder, VLLMDocumentEmbedder)
    assert (embedder.batch_size, embedder.progress_bar, embedder.instructions) == (5, False, None)
    loaded.run({"embedder": {"documents": documents()}})
    # the reloaded writer holds its own store: query the reloaded pipeline's store
    reloaded_store = loaded.get_component("writer").document_store
    hits = query_pipeline(reloaded_store).run({"embedder": {"text": TEXTS[3]}})
    assert hits["retriever"]["documents"][0].meta["n"] == 3


def test_query_pipeline_yaml_round_trip(server: respx.Route) -> None:
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    indexing(store, pipeline)
    pipeline.run({"embedder": {"documents": documents()}})
    yaml_text = query_pipeline(store).dumps()
    assert API_KEY not in yaml_text
    loaded = Pipeline.loads(yaml_text)
    loaded.get_component("retriever").document_store = store
    hits = loaded.run({"embedder": {"text": TEXTS[7]}})["retriever"]["documents"]
    assert hits[0].meta["n"] == 7


def test_pipeline_run_async_uses_run_async(server: respx.Route) -> None:
    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    indexing(store, pipeline)

    async def go() -> dict:
        result = await pipeline.run_async({"embedder": {"documents": documents()}})
        await pipeline.get_component("embedder").close_async()
        return result

    assert asyncio.run(go())["writer"]["documents_written"] == len(TEXTS)
    hits = query_pipeline(store).run({"embedder": {"text": TEXTS[4]}})
    assert hits["retriever"]["documents"][0].meta["n"] == 4
