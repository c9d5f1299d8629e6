"""crewAI knowledge with VLLMEmbeddingFunction as its custom embedder (crewAI's
``CustomProvider(embedding_callable=...)``, built by
``vllm_embed_chroma.crewai.crewai_embedder``): sources saved
through crewAI's Chroma storage, searched back, no LLM involved.

crewAI's ``search`` logs and returns ``[]`` on any error, so every test asserts what
came back, not only that nothing was raised.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import chromadb
import respx
from chromadb.config import Settings
from crewai.knowledge.knowledge import Knowledge
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.rag.chromadb.constants import DEFAULT_STORAGE_PATH

from vllm_embed_chroma import VLLMEmbeddingFunction
from vllm_embed_chroma.crewai import crewai_embedder
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

FACTS = [
    "Jupiter is the largest planet in the solar system.",
    "Mars is called the red planet.",
    "Venus is the hottest planet.",
]


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


def knowledge(name: str, **config: Any) -> Knowledge:
    sources = [StringKnowledgeSource(content=fact) for fact in FACTS]
    return Knowledge(collection_name=name, sources=sources, embedder=embedder(**config))


def test_knowledge_sources_saved_and_searched_through_the_function(
    server: respx.Route,
) -> None:
    name = f"planets{uuid.uuid4().hex[:8]}"
    kb = knowledge(name)
    kb.add_sources()
    assert sorted(t for batch in embedding_inputs(server) for t in batch) == sorted(FACTS)
    for fact in FACTS:
        hits = kb.query([fact], results_limit=1, score_threshold=0.0)
        assert [h["content"] for h in hits] == [fact]

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


def test_query_and_document_instructions_reach_the_server(server: respx.Route) -> None:
    kb = knowledge(f"e5{uuid.uuid4().hex[:8]}", instructions="e5")
    kb.add_sources()
    saved = sorted(t for batch in embedding_inputs(server) for t in batch)
    assert saved == sorted(f"passage: {fact}" for fact in FACTS)
    kb.query(["which planet is red"], results_limit=1, score_threshold=0.0)
    assert embedding_inputs(server)[-1] == ["query: which planet is red"]
