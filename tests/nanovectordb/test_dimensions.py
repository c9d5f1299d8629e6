"""``embedding_dim=`` on every call (LightRAG's ``send_dimensions=True``) and the LightRAG
builder's clear error when lightrag-hku is missing (this session does not install it)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import respx

from vllm_embed import (
    AsyncEmbeddingClient,
    DimensionMismatchError,
    DimensionsNotSupportedError,
    InvalidInputError,
)
from vllm_embed_nanovectordb import (
    VLLMEmbeddingFunction,
    alightrag_embedding_func,
    lightrag_embedding_func,
)
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount

KW = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY, "instructions": None}


def _sent_dimensions(route: respx.Route) -> list[int | None]:
    return [
        json.loads(call.request.content).get("dimensions")
        for call in route.calls
        if call.request.url.path.endswith("/embeddings")
    ]


async def test_the_served_dimension_is_checked_and_not_sent(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**KW)
    out = await fn(["a", "b"], embedding_dim=DIM)
    assert out.shape == (2, DIM)
    np.testing.assert_allclose(out[1], fake_vector("b", DIM), rtol=1e-6)
    assert set(_sent_dimensions(server)) == {None}


async def test_another_width_is_asked_for_as_a_matryoshka_size(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**KW)
    out = await fn(["a", "b"], context="query", embedding_dim=8)
    assert out.dtype == np.float32 and out.shape == (2, 8)
    np.testing.assert_allclose(out[0], fake_vector("a", DIM, 8), rtol=1e-5)
    again = await fn(["c"], embedding_dim=8)
    assert again.shape == (1, 8)
    assert _sent_dimensions(server)[-2:] == [8, 8]
    assert fn.embedding_dim == DIM  # the function's own width is unchanged
    await fn.aclose()


async def test_a_server_that_is_not_matryoshka_gives_the_core_error() -> None:
    with respx.mock(assert_all_called=False) as router:
        mount(router, matryoshka=False)
        fn = VLLMEmbeddingFunction(**KW)
        with pytest.raises(DimensionsNotSupportedError, match="dimensions"):
            await fn(["a"], embedding_dim=8)
        assert (await fn(["a"], embedding_dim=DIM)).shape == (1, DIM)


async def test_a_client_of_your_own_is_never_changed(server: respx.Route) -> None:
    client = AsyncEmbeddingClient(**KW)
    fn = VLLMEmbeddingFunction(client)
    with pytest.raises(DimensionMismatchError, match="dimensions=8") as info:
        await fn(["a"], embedding_dim=8)
    assert (info.value.expected, info.value.actual) == (8, DIM)
    assert (await fn(["a"], embedding_dim=DIM)).shape == (1, DIM)
    await client.aclose()


async def test_a_declared_dimension_the_server_does_not_produce(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(embedding_dim=1024, **KW)
    with pytest.raises(DimensionMismatchError, match="1024"):
        await fn(["a"], embedding_dim=1024)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16"])
async def test_a_bad_width_is_a_named_error(server: respx.Route, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="embedding_dim"):
        await VLLMEmbeddingFunction(**KW)(["a"], embedding_dim=bad)  # type: ignore[arg-type]
    assert server.call_count == 0


async def test_empty_batch_with_a_width_makes_no_request(server: respx.Route) -> None:
    out = await VLLMEmbeddingFunction(**KW)([], embedding_dim=8)
    assert out.shape == (0, 8) and server.call_count == 0


async def test_the_lightrag_builders_name_the_missing_package(
    server: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lightrag", None)
    monkeypatch.setitem(sys.modules, "lightrag.utils", None)
    with pytest.raises(ImportError, match="pip install lightrag-hku"):
        await alightrag_embedding_func(**KW)
    with pytest.raises(ImportError, match="pip install lightrag-hku"):
        lightrag_embedding_func(**KW)
    assert server.call_count == 0
