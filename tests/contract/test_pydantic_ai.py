"""The pydantic-ai adapter against a live vLLM CPU server (all-MiniLM-L6-v2 as ``minilm``).

pydantic-ai's own ``Embedder`` over ``VLLMEmbeddingModel``: its vectors are the core
client's, the demo queries find their topic among the demo corpus, the server's token
counts reach ``usage``, and the sync and async paths agree.
"""

from __future__ import annotations

import runpy
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from pydantic_ai import Embedder

from vllm_embed import EmbeddingClient
from vllm_embed_pydantic_ai import VLLMEmbeddingModel
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384
TEXTS = [text for _, text in DEMO_CORPUS]


@pytest.fixture
async def model(vllm_server: LiveServer) -> AsyncIterator[VLLMEmbeddingModel]:
    made = VLLMEmbeddingModel(vllm_server.base_url, api_key=vllm_server.api_key)
    yield made
    await made.aclose()


async def test_vectors_are_the_core_clients(
    vllm_server: LiveServer, model: VLLMEmbeddingModel
) -> None:
    result = await Embedder(model).embed_documents(TEXTS)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected = core.embed_documents(TEXTS)
    got = np.array(result.embeddings, dtype=np.float32)
    assert got.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert result.model_name == vllm_server.model == model.model_name
    assert result.provider_name == "vllm"
    assert result.usage.input_tokens is not None and result.usage.input_tokens > len(TEXTS)


async def test_queries_find_their_topic(model: VLLMEmbeddingModel) -> None:
    embedder = Embedder(model)
    docs = np.array((await embedder.embed_documents(TEXTS)).embeddings)
    queries = await embedder.embed_query([q.text for q in DEMO_QUERIES])
    scores = np.array(queries.embeddings) @ docs.T
    topics = [DEMO_CORPUS[int(i)][0] for i in scores.argmax(axis=1)]
    assert topics == [q.topic for q in DEMO_QUERIES]
    assert await embedder.max_input_tokens() == 256  # all-MiniLM-L6-v2's max_model_len


async def test_truncate_setting_on_a_long_text(model: VLLMEmbeddingModel) -> None:
    long_text = "the planets of the solar system " * 200
    cut = await model.embed([long_text], input_type="document", settings={"truncate": True})
    assert cut.provider_details is not None and cut.provider_details["truncated"] == 1
    assert len(cut.embeddings[0]) == DIM


def test_example_runs(vllm_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parents[2] / "examples" / "pydantic_ai_search.py"
    main = runpy.run_path(str(example))["main"]
    assert main(vllm_server.base_url, vllm_server.api_key, vllm_server.model) == 0
    assert "5/5 questions" in capsys.readouterr().out
