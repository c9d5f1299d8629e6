"""The DSPy adapter against a live vLLM CPU server (all-MiniLM-L6-v2 as ``minilm``).

DSPy's own ``dspy.Embedder`` over ``VLLMEmbedder`` gives the core client's vectors, and
a ``dspy.retrievers.Embeddings`` built by ``embeddings_retriever`` answers the demo
queries with a passage of the right topic.
"""

from __future__ import annotations

import os
import runpy
import tempfile
from collections.abc import Iterator
from pathlib import Path

# DSPy fixes its disk cache directory when imported: keep it out of the home directory.
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="vllm-embed-dspy-cache-"))

import dspy
import numpy as np
import pytest

from vllm_embed import EmbeddingClient
from vllm_embed_dspy import VLLMEmbedder, embeddings_retriever
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384
TEXTS = [text for _, text in DEMO_CORPUS]


@pytest.fixture
def embedder(vllm_server: LiveServer) -> Iterator[VLLMEmbedder]:
    made = VLLMEmbedder(vllm_server.base_url, api_key=vllm_server.api_key)
    yield made
    made.close()


def test_vectors_are_the_core_clients(vllm_server: LiveServer, embedder: VLLMEmbedder) -> None:
    got = dspy.Embedder(embedder, batch_size=16, caching=False)(TEXTS)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected = core.embed_documents(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_retriever_answers_the_demo_queries(embedder: VLLMEmbedder) -> None:
    retriever = embeddings_retriever(TEXTS, embedder, k=3, caching=False)
    for query in DEMO_QUERIES:
        found = retriever(query.text)
        assert DEMO_CORPUS[found.indices[0]][0] == query.topic, (query.text, found.passages)
        assert found.passages[0] == TEXTS[found.indices[0]]


def test_example_runs(vllm_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parents[2] / "examples" / "dspy_retriever.py"
    main = runpy.run_path(str(example))["main"]
    assert main(vllm_server.base_url, vllm_server.api_key, vllm_server.model) == 0
    assert "5/5 questions" in capsys.readouterr().out
