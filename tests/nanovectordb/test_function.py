"""VLLMEmbeddingFunction: the async ``func(texts) -> ndarray`` of nano-vectordb / LightRAG."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
from typing import Any

import numpy as np
import pytest
import respx

from vllm_embed import (
    AsyncEmbeddingClient,
    DimensionMismatchError,
    EmbeddingClient,
    InvalidInputError,
)
from vllm_embed_nanovectordb import VLLMEmbeddingFunction, l2_normalize
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

KW = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY, "instructions": None}


def test_construction_makes_no_request(server: respx.Route) -> None:
    VLLMEmbeddingFunction(**KW)
    VLLMEmbeddingFunction(EmbeddingClient(**KW))
    assert server.call_count == 0


async def test_call_returns_float32_rows_in_input_order(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**KW)
    texts = ["a video of a dog", "a cat on a sofa", ""]
    vectors = await fn(texts)
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert vectors.shape == (3, DIM)
    np.testing.assert_allclose(vectors, np.stack([fake_vector(t, DIM) for t in texts]), rtol=1e-6)
    assert inspect.iscoroutinefunction(fn.__call__)


async def test_rows_are_l2_normalised_even_if_the_server_does_not() -> None:
    raw = [[3.0, 4.0], [0.0, 2.0]]
    with respx.mock() as router:
        router.get(f"{BASE_URL}/models").respond(json={"data": [{"id": MODEL}]})
        router.post(f"{BASE_URL}/embeddings").respond(
            json={
                "data": [{"index": i, "embedding": v} for i, v in enumerate(raw)],
                "model": MODEL,
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )
        fn = VLLMEmbeddingFunction(encoding="float", **KW)
        vectors = await fn(["a", "b"])
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_l2_normalize_leaves_zero_rows_zero() -> None:
    out = l2_normalize(np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0], [2**-0.5, 2**-0.5]], rtol=1e-6)


async def test_resolve_reads_dimension_and_max_model_len_once(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(AsyncEmbeddingClient(**KW))
    assert await fn.resolve() is fn
    assert fn.embedding_dim == DIM
    assert fn.max_token_size == 512  # the fake server's max_model_len
    calls = server.call_count
    await fn.resolve()
    assert server.call_count == calls


def test_sync_dimension_with_a_sync_client(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**KW)
    assert fn.dimension() == DIM
    assert fn.embedding_dim == DIM and fn.max_token_size == 512


def test_max_token_size_given_wins(server: respx.Route) -> None:
    assert VLLMEmbeddingFunction(max_token_size=128, **KW).max_token_size == 128
    assert server.call_count == 0


async def test_declared_dimension_is_checked(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(embedding_dim=1024, **KW)
    with pytest.raises(DimensionMismatchError, match=r"1024.*16") as info:
        await fn.resolve()
    assert (info.value.expected, info.value.actual) == (1024, DIM)


async def test_kinds_pick_the_core_instructions(server: respx.Route) -> None:
    kw = {**KW, "instructions": "e5"}
    await VLLMEmbeddingFunction(**kw)(["doc"])
    await VLLMEmbeddingFunction(kind="query", **kw)(["q"])
    await VLLMEmbeddingFunction(kind="raw", **kw)(["r"])
    await VLLMEmbeddingFunction(**kw).embed_query("one")
    assert embedding_inputs(server) == [["passage: doc"], ["query: q"], ["r"], ["query: one"]]


async def test_a_sync_client_runs_in_a_thread(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(EmbeddingClient(**KW))
    results = await asyncio.gather(fn(["x"]), fn(["y"]))
    np.testing.assert_allclose(results[1][0], fake_vector("y", DIM), rtol=1e-6)
    assert fn.embedding_dim == DIM  # learnt from the answer, no probe needed


async def test_empty_list_with_known_dimension_makes_no_request(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(embedding_dim=DIM, **KW)
    out = await fn([])
    assert out.shape == (0, DIM) and out.dtype == np.float32
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [None, "one string", {"a": 1}])
async def test_non_list_input_is_a_named_error(server: respx.Route, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="list of strings"):
        await VLLMEmbeddingFunction(**KW)(bad)  # type: ignore[arg-type]
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [["ok", None], [1]])
async def test_bad_items_get_the_core_error(server: respx.Route, bad: list[object]) -> None:
    with pytest.raises(InvalidInputError):
        await VLLMEmbeddingFunction(**KW)(bad)  # type: ignore[arg-type]
    assert not embedding_inputs(server)


def test_repr_hides_the_key(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**KW)
    fn.dimension()
    assert API_KEY not in repr(fn) and "embedding_dim=16" in repr(fn)


def test_client_and_kwargs_together_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="either a client"):
        VLLMEmbeddingFunction(EmbeddingClient(**KW), model="other")


async def test_from_config_checks_the_declared_dimension(
    server: respx.Route, tmp_path: object
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "vllm-embed.toml"
    path.write_text(
        f'base_url = "{BASE_URL}"\nmodel = "{MODEL}"\napi_key = "{API_KEY}"\ndimension = 384\n'
    )
    with pytest.raises(DimensionMismatchError, match="384"):
        await VLLMEmbeddingFunction.from_config(path).resolve()
    path.write_text(
        f'base_url = "{BASE_URL}"\nmodel = "{MODEL}"\napi_key = "{API_KEY}"\ndimension = {DIM}\n'
    )
    fn = await VLLMEmbeddingFunction.from_config(path).resolve()
    assert fn.embedding_dim == DIM


async def test_lightrag_context_argument_picks_the_instruction(server: respx.Route) -> None:
    fn = VLLMEmbeddingFunction(**{**KW, "instructions": "e5"})
    await fn(["chunk"], context="document")
    await fn(["question"], context="query")
    assert embedding_inputs(server) == [["passage: chunk"], ["query: question"]]
    with pytest.raises(InvalidInputError, match="context"):
        await fn(["x"], context="summary")  # type: ignore[arg-type]


def test_deep_copies_are_the_function_itself(server: respx.Route) -> None:
    """LightRAG deep-copies its config (dataclasses.asdict) including the EmbeddingFunc's func:
    like a plain function, the embedding function must survive that as itself."""

    @dataclasses.dataclass
    class EmbeddingFuncShape:  # the fields LightRAG's EmbeddingFunc has
        embedding_dim: int
        max_token_size: int | None
        func: Any

    fn = VLLMEmbeddingFunction(**KW)
    fn.dimension()  # clients and locks exist now
    config = dataclasses.asdict(EmbeddingFuncShape(fn.embedding_dim, fn.max_token_size, fn))
    assert config["func"] is fn and copy.deepcopy(fn) is fn and copy.copy(fn) is fn


async def test_cache_pass_through(server: respx.Route, tmp_path) -> None:
    fn = VLLMEmbeddingFunction(**KW, cache=tmp_path / "nv.sqlite")
    first = await fn(["p", "q"])
    calls = server.call_count
    again = await fn(["q", "p"])
    assert server.call_count == calls
    np.testing.assert_array_equal(again, first[[1, 0]])
    await fn.aclose()  # the cache's SQLite connections (Python 3.13 warns otherwise)
