"""The LangChain adapter against a live vLLM CPU server (all-MiniLM-L6-v2 served as ``minilm``).

LangChain's own ``EmbeddingsIntegrationTests`` (PyPI ``langchain-tests``) plus what a
LangChain user checks: the vectors are the core client's, retrieval through
``InMemoryVectorStore`` finds the right sentence, long inputs are truncated, a wrong key
is a clear error that does not show the key.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from vllm_embed import AuthenticationError, EmbeddingClient, InvalidInputError
from vllm_embed_langchain import VLLMEmbeddings
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES, thousand_word_text
from vllm_embed_testing.vllm import LiveServer

DIM = 384


class TestVLLMEmbeddingsIntegration(EmbeddingsIntegrationTests):
    """LangChain's standard suite, pointed at the session's live server."""

    live: LiveServer

    @pytest.fixture(autouse=True)
    def _live_server(self, vllm_server: LiveServer) -> None:
        self.live = vllm_server

    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "base_url": self.live.base_url,
            "api_key": self.live.api_key,
            "model": self.live.model,
        }


@pytest.fixture
def make_embeddings() -> Iterator[Callable[..., VLLMEmbeddings]]:
    """``make_embeddings(server, **fields)``: a VLLMEmbeddings whose sync client is closed
    after the test (users need not close one: a collected one closes its sockets)."""
    made: list[VLLMEmbeddings] = []

    def factory(server: LiveServer, **kwargs: Any) -> VLLMEmbeddings:
        fields = {"base_url": server.base_url, "api_key": server.api_key, "model": server.model}
        emb = VLLMEmbeddings(**{**fields, **kwargs})
        made.append(emb)
        return emb

    yield factory
    for emb in made:
        emb.close()


def test_vectors_are_the_core_clients(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    texts = [text for _, text in DEMO_CORPUS[:10]]
    emb = make_embeddings(vllm_server)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected = core.embed_documents(texts)
        query = core.embed_query("Which planet is the biggest?")
    got = np.array(emb.embed_documents(texts), dtype=np.float32)
    assert got.shape == (10, DIM)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(emb.embed_query("Which planet is the biggest?"), query, atol=1e-5)


async def test_async_matches_sync(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    emb = make_embeddings(vllm_server)
    texts = [text for _, text in DEMO_CORPUS]
    sync = np.array(emb.embed_documents(texts))
    concurrent = np.array(await emb.aembed_documents(texts))
    np.testing.assert_allclose(concurrent, sync, atol=1e-5)
    await emb.aclose()


def test_in_memory_vector_store_retrieval(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    store = InMemoryVectorStore(make_embeddings(vllm_server))
    store.add_texts(
        [text for _, text in DEMO_CORPUS], metadatas=[{"topic": t} for t, _ in DEMO_CORPUS]
    )
    for query in DEMO_QUERIES:
        best = store.similarity_search(query.text, k=1)[0]
        assert best.metadata["topic"] == query.topic, (query.text, best.page_content)


def test_long_input_is_truncated_not_refused(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    vectors = make_embeddings(vllm_server).embed_documents([thousand_word_text(), "short"])
    assert len(vectors) == 2 and len(vectors[0]) == DIM
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-3


def test_wrong_key_is_a_clear_error_without_the_key(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    wrong = "sk-definitely-wrong-0000"
    with pytest.raises(AuthenticationError) as info:
        make_embeddings(vllm_server, api_key=wrong, model=None).embed_query("x")
    assert wrong not in str(info.value)
    assert vllm_server.api_key not in str(info.value)


def test_bad_input_and_empty_list(
    make_embeddings: Callable[..., VLLMEmbeddings], vllm_server: LiveServer
) -> None:
    emb = make_embeddings(vllm_server)
    assert emb.embed_documents([]) == []
    with pytest.raises(InvalidInputError):
        emb.embed_documents(["fine", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        emb.embed_query(None)  # type: ignore[arg-type]


def test_example_runs(vllm_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parents[2] / "examples" / "langchain_retrieval.py"
    main = runpy.run_path(str(example))["main"]
    assert main(vllm_server.base_url, vllm_server.api_key, vllm_server.model) == 0
    assert "5/5 questions" in capsys.readouterr().out
