"""crewAI knowledge with VLLMEmbeddingFunction as its custom embedder (crewAI's
``CustomProvider(embedding_callable=...)``, built by
``vllm_embed_chroma.crewai.crewai_embedder``): sources saved
through crewAI's Chroma storage, searched back, no LLM involved.

crewAI's ``search`` logs and returns ``[]`` on any error, so every test asserts what
came back, not only that nothing was raised.

Every test runs on crewAI's default store (local Qdrant since crewAI 1.15.44, Chroma
before) and on Chroma set explicitly with ``set_rag_config`` (what users who keep their
Chroma knowledge do).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import pytest
import respx
from chromadb.config import Settings
from crewai.knowledge.knowledge import Knowledge
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.rag.chromadb.config import ChromaDBConfig
from crewai.rag.chromadb.constants import DEFAULT_STORAGE_PATH
from crewai.rag.config import utils as rag_config

from vllm_embed_chroma import VLLMEmbeddingFunction
from vllm_embed_chroma.crewai import crewai_embedder
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

FACTS = [
    "Jupiter is the largest planet in the solar system.",
    "Mars is called the red planet.",
    "Venus is the hottest planet.",
]

#: What crewAI's Qdrant adapter embeds once to learn the dimension of a custom embedder
#: (``crewai/rag/qdrant/embedding_adapter.py``); crewAI's Chroma storage sends no probe.
CREWAI_PROBE = "dimension probe"


def embedder(**config: Any) -> Any:
    settings = {
        "base_url": BASE_URL,
        "model": MODEL,
        "dimension": DIM,  # recorded as given: no probe request
        "api_key": API_KEY,
        "instructions": None,
    }
    settings.update(config)
    provider = crewai_embedder(**settings)
    assert issubclass(provider.embedding_callable, VLLMEmbeddingFunction)
    return provider


@pytest.fixture(params=["default", "chromadb"])
def provider(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store crewAI's knowledge is kept in: its default, or Chroma set explicitly
    (crewAI replaces the configured embedding function by the knowledge's embedder)."""
    before = rag_config._rag_context.get()
    if request.param == "chromadb":
        function = VLLMEmbeddingFunction(base_url=BASE_URL, model=MODEL, dimension=DIM)
        rag_config.set_rag_config(ChromaDBConfig(embedding_function=function))
    try:
        # crewAI before 1.15.44 has no get_rag_provider: its only default was Chroma
        active = getattr(rag_config, "get_rag_provider", lambda: "chromadb")
        yield active()
    finally:
        rag_config._rag_context.set(before)


def saved_texts(server: respx.Route, provider: str, prefix: str = "") -> list[str]:
    """Every text sent to the server, sorted, less crewAI's one Qdrant dimension probe."""
    texts = [t for batch in embedding_inputs(server) for t in batch]
    probes = texts.count(prefix + CREWAI_PROBE)
    assert probes <= (1 if provider == "qdrant" else 0), texts
    return sorted(t for t in texts if t != prefix + CREWAI_PROBE)


def knowledge(name: str, **config: Any) -> Knowledge:
    sources = [StringKnowledgeSource(content=fact) for fact in FACTS]
    return Knowledge(collection_name=name, sources=sources, embedder=embedder(**config))


def test_knowledge_sources_saved_and_searched_through_the_function(
    server: respx.Route, provider: str
) -> None:
    name = f"planets{uuid.uuid4().hex[:8]}"
    kb = knowledge(name)
    kb.add_sources()
    assert saved_texts(server, provider) == sorted(FACTS)
    for fact in FACTS:
        hits = kb.query([fact], results_limit=1, score_threshold=0.0)
        assert [h["content"] for h in hits] == [fact]
    if provider != "chromadb":
        return

    # crewAI's Chroma directory recorded the function (and no key)
    # (chromadb allows one set of settings per directory in a process: crewAI's)
    settings = Settings(
        persist_directory=DEFAULT_STORAGE_PATH,
        allow_reset=True,
        is_persistent=True,
        anonymized_telemetry=False,
    )
    client = chromadb.PersistentClient(path=DEFAULT_STORAGE_PATH, settings=settings)
    collection = client.get_collection(f"knowledge_{name}")
    record = collection.configuration_json["embedding_function"]
    assert record["name"] == "vllm-embed"
    assert record["config"]["model"] == MODEL
    assert API_KEY.encode() not in (Path(DEFAULT_STORAGE_PATH) / "chroma.sqlite3").read_bytes()


def test_query_and_document_instructions_reach_the_server(
    server: respx.Route, provider: str
) -> None:
    kb = knowledge(f"e5{uuid.uuid4().hex[:8]}", instructions="e5")
    kb.add_sources()
    saved = saved_texts(server, provider, prefix="passage: ")
    assert saved == sorted(f"passage: {fact}" for fact in FACTS)
    kb.query(["which planet is red"], results_limit=1, score_threshold=0.0)
    if provider == "chromadb":
        assert embedding_inputs(server)[-1] == ["query: which planet is red"]
    else:
        # crewAI's Qdrant adapter embeds queries through the documents' path (the
        # README's crewAI section says so): the text arrives, as a document
        assert embedding_inputs(server)[-1] == ["passage: which planet is red"]
