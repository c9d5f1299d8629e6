"""VLLMEmbedder inside DSPy itself: ``dspy.Embedder`` over it, and a
``dspy.retrievers.Embeddings`` retriever built on it.

Every test talks HTTP to the project's fake vLLM through respx (no sockets); its vectors
are deterministic per text, so a wrong text, order, side or instruction fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dspy
import numpy as np
import pytest
import respx

from vllm_embed import ConfigValueError, EmbeddingClient, Instructions, InvalidInputError
from vllm_embed_dspy import VLLMEmbedder, embeddings_retriever
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import (
    API_KEY,
    BASE_URL,
    DIM,
    MODEL,
    embedding_inputs,
    expected,
)

CORPUS = [
    "Jupiter is the largest planet.",
    "Mercury is closest to the Sun.",
    "Mars is red.",
    "Saturn has rings.",
]
PREFIXES = Instructions(query="query: ", document="passage: ")


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[VLLMEmbedder] = []

    def factory(**kwargs: Any) -> VLLMEmbedder:
        params: dict[str, Any] = {"model": MODEL, "api_key": API_KEY}
        params.update(kwargs)
        embedder = VLLMEmbedder(BASE_URL, **params)
        made.append(embedder)
        return embedder

    yield factory
    for embedder in made:
        embedder.close()


def test_dspy_embedder_returns_the_core_clients_vectors(server: respx.Route, make: Any) -> None:
    embedder = dspy.Embedder(make(), batch_size=3, caching=False)
    vectors = embedder(CORPUS)
    # dspy.Embedder's batch_size: 3 texts per call to the callable, the core sends each
    assert [len(batch) for batch in embedding_inputs(server)] == [3, 1]
    with EmbeddingClient(BASE_URL, api_key=API_KEY, model=MODEL) as core:
        want = core.embed_documents(CORPUS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(CORPUS), DIM)
    np.testing.assert_array_equal(vectors, want)
    single = embedder("Mars is red.")  # DSPy's single-text form: one row
    np.testing.assert_array_equal(single, want[2])


async def test_dspy_embedder_async_call(server: respx.Route, make: Any) -> None:
    embedder = dspy.Embedder(make(instructions=PREFIXES), caching=False)
    vectors = await embedder.acall(CORPUS[:2])
    np.testing.assert_allclose(vectors, expected([f"passage: {t}" for t in CORPUS[:2]], DIM))


def test_query_and_document_sides(server: respx.Route, make: Any) -> None:
    base = make(instructions=PREFIXES)
    docs = dspy.Embedder(base.documents, caching=False)(CORPUS[:1])
    query = dspy.Embedder(base.query, caching=False)(["biggest?"])
    per_call = dspy.Embedder(base, caching=False)(["biggest?"], kind="query")
    raw = base.with_kind("raw")(["plain"])
    assert embedding_inputs(server) == [
        [f"passage: {CORPUS[0]}"],
        ["query: biggest?"],
        ["query: biggest?"],
        ["plain"],
    ]
    np.testing.assert_allclose(query[0], fake_vector("query: biggest?", DIM))
    np.testing.assert_array_equal(per_call, query)
    np.testing.assert_allclose(docs[0], fake_vector(f"passage: {CORPUS[0]}", DIM))
    np.testing.assert_allclose(raw[0], fake_vector("plain", DIM))
    assert base.query.client is base.client  # the sides share one client


def test_retriever_finds_the_right_passage(server: respx.Route, make: Any) -> None:
    # instructions off: a query equal to a passage must retrieve that passage first
    retriever = embeddings_retriever(CORPUS, make(instructions=None), k=2)
    found = retriever("Mars is red.")
    assert found.passages[0] == "Mars is red." and found.indices[0] == 2
    assert len(found.passages) == 2


def test_retriever_embeds_corpus_as_documents_and_queries_as_queries(
    server: respx.Route, make: Any
) -> None:
    retriever = embeddings_retriever(CORPUS, make(instructions=PREFIXES), k=4)
    found = retriever("biggest planet?")
    inputs = embedding_inputs(server)
    assert inputs[0] == [f"passage: {t}" for t in CORPUS]
    assert inputs[-1] == ["query: biggest planet?"]
    # the ranking is the one the vectors of those texts give (computed here, independently)
    docs = expected([f"passage: {t}" for t in CORPUS], DIM)
    scores = docs @ fake_vector("query: biggest planet?", DIM)
    assert found.indices == [int(i) for i in np.argsort(-scores)]


def test_dspy_cache_keys_separate_sides_and_models(server: respx.Route, make: Any) -> None:
    texts = ["cache me once"]
    base = make(instructions=PREFIXES)
    first = dspy.Embedder(base)(texts)  # caching=True: DSPy's default
    again = dspy.Embedder(base)(texts)
    as_query = dspy.Embedder(base.query)(texts)
    other_dims = dspy.Embedder(make(instructions=PREFIXES, dimensions=8))(texts)
    assert embedding_inputs(server).count(["passage: cache me once"]) == 2  # DIM and 8 dims
    assert embedding_inputs(server).count(["query: cache me once"]) == 1
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(as_query[0], fake_vector("query: cache me once", DIM))
    np.testing.assert_allclose(
        other_dims[0], fake_vector("passage: cache me once", DIM, dimensions=8), rtol=1e-6
    )


def test_cache_key_never_holds_the_key(server: respx.Route, make: Any) -> None:
    embedder = make()
    name = embedder.__name__
    assert API_KEY not in name and API_KEY not in repr(embedder)
    assert MODEL in name and "document" in name and BASE_URL in name
    assert VLLMEmbedder.__name__ == "VLLMEmbedder"


def test_core_cache_pass_through(server: respx.Route, make: Any, tmp_path: Path) -> None:
    embedder = make(cache=str(tmp_path / "cache.sqlite"))
    first = embedder(CORPUS)
    again = embedder(list(reversed(CORPUS)))
    sent = [t for batch in embedding_inputs(server) for t in batch if t in CORPUS]
    assert sorted(sent) == sorted(CORPUS)  # each text once (the core also sends a probe)
    np.testing.assert_array_equal(again, first[::-1])


def test_bad_input_and_settings_are_named_errors(server: respx.Route, make: Any) -> None:
    embedder = make()
    with pytest.raises(InvalidInputError, match="list of strings"):
        embedder("one text")
    with pytest.raises(ConfigValueError, match="kind must be"):
        embedder(["x"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ConfigValueError, match="kind must be"):
        VLLMEmbedder(BASE_URL, kind="queries")  # type: ignore[arg-type]
    assert embedder([]).shape == (0, DIM)
    with EmbeddingClient(BASE_URL, api_key=API_KEY) as client, pytest.raises(ConfigValueError):
        VLLMEmbedder(client=client, cache="x.sqlite")


def test_given_client(server: respx.Route) -> None:
    with EmbeddingClient(BASE_URL, api_key=API_KEY, model=MODEL) as client:
        embedder = VLLMEmbedder(client=client, kind="query")
        vectors = dspy.Embedder(embedder, caching=False)(["x"])
        assert embedder.client is client
        embedder.close()  # does not close the caller's client
        np.testing.assert_array_equal(client.embed_query("x"), vectors[0])


def test_from_config(server: respx.Route, make: Any, tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    config = {"embedder": {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY}}
    path.write_text(json.dumps(config))
    embedder = VLLMEmbedder.from_config(path, kind="query", instructions=PREFIXES)
    try:
        vectors = dspy.Embedder(embedder, caching=False)(["q"])
    finally:
        embedder.close()
    assert embedding_inputs(server) == [["query: q"]]
    np.testing.assert_allclose(vectors[0], fake_vector("query: q", DIM), rtol=1e-6)
