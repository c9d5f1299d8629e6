"""VLLMEmbeddingModel inside pydantic-ai's own ``Embedder``: translation, and nothing more.

Every test talks HTTP to the project's fake vLLM through respx (no sockets); its vectors
are deterministic per text, so a wrong text, order, instruction or dimension fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import respx
from pydantic_ai import Embedder
from pydantic_ai.embeddings import EmbeddingResult
from pydantic_ai.models import override_allow_model_requests

from vllm_embed import (
    ConfigValueError,
    ContextLengthError,
    EmbeddingClient,
    Instructions,
)
from vllm_embed_pydantic_ai import VLLMEmbeddingModel
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

TEXTS = ["Jupiter is the largest planet.", "Mercury is closest to the Sun.", "Mars is red."]
PREFIXES = Instructions(query="query: ", document="passage: ")


def make(**kwargs: Any) -> VLLMEmbeddingModel:
    params: dict[str, Any] = {"model": MODEL, "api_key": API_KEY}
    params.update(kwargs)
    return VLLMEmbeddingModel(BASE_URL, **params)


async def test_embedder_documents_equal_the_core_clients(server: respx.Route) -> None:
    embedder = Embedder(make())
    result = await embedder.embed_documents(TEXTS)
    with EmbeddingClient(BASE_URL, api_key=API_KEY, model=MODEL) as core:
        expected = core.embed_documents(TEXTS)
    assert isinstance(result, EmbeddingResult)
    np.testing.assert_array_equal(np.array(result.embeddings, dtype=np.float32), expected)
    assert list(result.inputs) == TEXTS
    assert (result.input_type, result.model_name, result.provider_name) == (
        "document",
        MODEL,
        "vllm",
    )
    assert result.usage.input_tokens == sum(len(t.split()) + 2 for t in TEXTS)
    assert result["Mars is red."] == result.embeddings[2]


async def test_query_and_document_get_their_instructions(server: respx.Route) -> None:
    embedder = Embedder(make(instructions=PREFIXES))
    query = await embedder.embed_query("biggest planet?")
    docs = await embedder.embed_documents(TEXTS[:2])
    assert embedding_inputs(server) == [
        ["query: biggest planet?"],
        [f"passage: {t}" for t in TEXTS[:2]],
    ]
    np.testing.assert_allclose(query.embeddings[0], fake_vector("query: biggest planet?", DIM))
    np.testing.assert_allclose(docs.embeddings[1], fake_vector(f"passage: {TEXTS[1]}", DIM))
    assert query.input_type == "query"


async def test_retrieval_with_the_embedder_finds_the_same_text(server: respx.Route) -> None:
    # instructions off: a query equal to a document must come back as that document
    embedder = Embedder(make(instructions=None))
    docs = np.array((await embedder.embed_documents(TEXTS)).embeddings)
    query = np.array((await embedder.embed_query(TEXTS[1])).embeddings[0])
    assert int(np.argmax(docs @ query)) == 1


def test_sync_methods(server: respx.Route, sync_models: list[VLLMEmbeddingModel]) -> None:
    model = make()
    sync_models.append(model)
    embedder = Embedder(model)
    first = embedder.embed_query_sync("hello")
    second = embedder.embed_documents_sync(["hello", "world"])
    np.testing.assert_allclose(first.embeddings[0], fake_vector("hello", DIM), rtol=1e-6)
    np.testing.assert_allclose(second.embeddings[1], fake_vector("world", DIM), rtol=1e-6)


async def test_dimensions_setting_asks_the_server(server: respx.Route) -> None:
    embedder = Embedder(make(), settings={"dimensions": 8})
    result = await embedder.embed_documents(["a b"])
    bodies = [
        json.loads(c.request.content) for c in server.calls if "embeddings" in str(c.request.url)
    ]
    assert bodies[-1]["dimensions"] == 8
    np.testing.assert_allclose(
        result.embeddings[0], fake_vector("a b", DIM, dimensions=8), rtol=1e-6
    )
    # the model's defaults are untouched: a call without the setting gets DIM values
    plain = await Embedder(make()).embed_documents(["a b"])
    assert len(plain.embeddings[0]) == DIM


async def test_truncate_false_refuses_a_too_long_text(server: respx.Route) -> None:
    long_text = " ".join(f"w{i}" for i in range(600))  # the fake's max_model_len is 512
    model = make()
    with pytest.raises(ContextLengthError):
        await model.embed([long_text], input_type="document", settings={"truncate": False})
    cut = await model.embed([long_text], input_type="document", settings={"truncate": True})
    assert cut.provider_details == {"truncated": 1, "truncated_indices": [0]}


async def test_extra_headers_are_sent(server: respx.Route) -> None:
    model = make()
    await model.embed(["x"], input_type="query", settings={"extra_headers": {"X-Trace": "t1"}})
    assert server.calls.last.request.headers["X-Trace"] == "t1"
    assert server.calls.last.request.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_unsupported_setting_is_a_named_error(server: respx.Route) -> None:
    with pytest.raises(ConfigValueError, match="extra_body"):
        await make().embed(["x"], input_type="query", settings={"extra_body": {"a": 1}})
    assert not embedding_inputs(server)


async def test_empty_input_sends_nothing(server: respx.Route) -> None:
    result = await make().embed([], input_type="document")
    assert list(result.embeddings) == []
    assert not server.calls


async def test_model_requests_can_be_forbidden(server: respx.Route) -> None:
    with override_allow_model_requests(False), pytest.raises(RuntimeError):
        await Embedder(make()).embed_query("x")
    assert not server.calls


async def test_cache_answers_repeats_without_a_request(server: respx.Route, tmp_path: Path) -> None:
    model = make(cache=str(tmp_path / "cache.sqlite"))
    embedder = Embedder(model)
    try:
        first = await embedder.embed_documents(TEXTS)
        again = await embedder.embed_documents(TEXTS)
    finally:
        await model.aclose()  # closes the cache it opened
    sent = [text for batch in embedding_inputs(server) for text in batch if text in TEXTS]
    assert sorted(sent) == sorted(TEXTS)  # once each (the core also sends a cache probe)
    assert again.embeddings == first.embeddings


async def test_served_model_is_discovered(server: respx.Route) -> None:
    model = VLLMEmbeddingModel(BASE_URL, api_key=API_KEY)
    assert model.model_name == ""
    result = await Embedder(model).embed_query("x")
    assert result.model_name == model.model_name == MODEL
    assert await model.max_input_tokens() == 512


def test_from_config(
    server: respx.Route, tmp_path: Path, sync_models: list[VLLMEmbeddingModel]
) -> None:
    path = tmp_path / "app.json"
    config = {"embedder": {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY}}
    path.write_text(json.dumps(config))
    model = VLLMEmbeddingModel.from_config(path, instructions=PREFIXES)
    sync_models.append(model)
    result = Embedder(model).embed_query_sync("q")
    assert embedding_inputs(server) == [["query: q"]]
    np.testing.assert_allclose(result.embeddings[0], fake_vector("query: q", DIM), rtol=1e-6)


def test_api_key_from_the_environment_and_never_shown(
    server: respx.Route, monkeypatch: pytest.MonkeyPatch, sync_models: list[VLLMEmbeddingModel]
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    model = VLLMEmbeddingModel(BASE_URL, model=MODEL)
    sync_models.append(model)
    Embedder(model).embed_query_sync("x")
    assert server.calls.last.request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in f"{model!r} {model.base_url}"


def test_url_credentials_are_never_shown() -> None:
    model = VLLMEmbeddingModel("http://user:pa55word@vllm.test/v1", api_key=API_KEY)
    assert model.base_url == BASE_URL
    assert "pa55word" not in repr(model) and API_KEY not in repr(model)


async def test_given_client_is_used_and_exclusive(server: respx.Route) -> None:
    from vllm_embed import AsyncEmbeddingClient

    async with AsyncEmbeddingClient(BASE_URL, api_key=API_KEY, model=MODEL) as client:
        model = VLLMEmbeddingModel(client=client)
        result = await Embedder(model).embed_documents(["x"])
        np.testing.assert_allclose(result.embeddings[0], fake_vector("x", DIM), rtol=1e-6)
        with pytest.raises(ConfigValueError, match="configure that client instead"):
            await model.embed(["x"], input_type="query", settings={"dimensions": 4})
        with pytest.raises(ConfigValueError, match="either client="):
            VLLMEmbeddingModel(client=client, cache="x.sqlite")
