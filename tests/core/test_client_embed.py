"""Embedding through both twins: order, batching, pipelining, empty inputs, helpers, stats."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest
import respx

from vllm_embed import Instructions, InvalidInputError
from vllm_embed_testing.respx_vllm import FakeServer, expected

TEXTS = [f"text number {i}" for i in range(23)]


def test_embed_returns_float32_in_input_order_across_batches(server, make_client) -> None:
    c = make_client(server.url, batch_size=5, max_concurrency=3)
    out = c.embed(TEXTS)
    assert out.dtype == np.float32 and out.shape == (23, 8)
    np.testing.assert_allclose(out, expected(TEXTS, 8), rtol=1e-6)
    sent = [r["input"] for r in server.embed_requests]
    assert sorted(len(b) for b in sent) == [3, 5, 5, 5, 5]
    assert sorted(t for b in sent for t in b) == sorted(TEXTS)
    assert c.stats.requests == 5 and c.stats.inputs == 23


def test_token_budget_splits_batches(server, make_client) -> None:
    long = ["word " * 60] * 4  # ~102 estimated tokens each
    c = make_client(server.url, batch_size=64, max_tokens_per_request=250, truncate="error")
    server.max_model_len = None
    c.embed(long)
    assert [len(r["input"]) for r in server.embed_requests] == [2, 2]


def test_empty_list_returns_zero_rows_with_the_dimension(server, make_client) -> None:
    c = make_client(server.url)
    out = c.embed([])
    assert out.shape == (0, 8) and out.dtype == np.float32
    # The dimension was probed once with one short input and is cached.
    assert len(server.embed_requests) == 1
    assert c.embed([]).shape == (0, 8)
    assert c.dimension() == 8
    assert len(server.embed_requests) == 1


def test_dimension_comes_from_earlier_results_without_a_probe(server, make_client) -> None:
    c = make_client(server.url)
    c.embed(["a", "b"])
    assert c.dimension() == 8
    assert len(server.embed_requests) == 1


def test_empty_strings_are_valid_inputs(server, make_client) -> None:
    c = make_client(server.url)
    out = c.embed(["", "x", ""])
    np.testing.assert_allclose(out, expected(["", "x", ""], 8), rtol=1e-6)


@pytest.mark.parametrize("bad", [["ok", None], ["ok", 1.5], "just a string"])
def test_invalid_inputs_are_refused_before_any_request(server, make_client, bad) -> None:
    c = make_client(server.url, model="fake-model")
    with pytest.raises(InvalidInputError):
        c.embed(bad)
    assert server.embed_requests == []


def test_query_and_document_instructions(router, make_client) -> None:
    srv = FakeServer(router, model="intfloat/e5-small-v2")
    c = make_client(srv.url)
    q = c.embed_query("what is vllm")
    assert q.shape == (8,)
    np.testing.assert_allclose(q, expected(["query: what is vllm"], 8)[0], rtol=1e-6)
    docs = c.embed_documents(["vLLM is fast"])
    np.testing.assert_allclose(docs, expected(["passage: vLLM is fast"], 8), rtol=1e-6)
    raw = c.embed(["plain"])
    np.testing.assert_allclose(raw, expected(["plain"], 8), rtol=1e-6)
    assert [r["input"] for r in srv.embed_requests] == [
        ["query: what is vllm"],
        ["passage: vLLM is fast"],
        ["plain"],
    ]


def test_instructions_override_and_disable(router, make_client) -> None:
    srv = FakeServer(router, model="Qwen/Qwen3-Embedding-0.6B")
    c = make_client(srv.url, instructions=Instructions.qwen3("Find clips"))
    c.embed_query("car chase")
    c.embed_documents(["a clip"])
    off = make_client(srv.url, instructions=None)
    off.embed_query("car chase")
    assert [r["input"] for r in srv.embed_requests] == [
        ["Instruct: Find clips\nQuery: car chase"],
        ["a clip"],
        ["car chase"],
    ]


def test_embed_query_refuses_non_strings(server, make_client) -> None:
    c = make_client(server.url)
    with pytest.raises(InvalidInputError, match="one string"):
        c.embed_query(None)
    with pytest.raises(InvalidInputError, match="one string"):
        c.embed_query(["a"])


def test_list_helpers_give_python_floats(server, make_client) -> None:
    c = make_client(server.url)
    docs = c.embed_documents_list(["a", "b"])
    assert isinstance(docs, list) and len(docs) == 2 and len(docs[0]) == 8
    assert all(type(x) is float for row in docs for x in row)
    q = c.embed_query_list("a")
    assert type(q) is list and all(type(x) is float for x in q)
    assert q == pytest.approx(docs[0])


def test_embed_with_info(server, make_client) -> None:
    c = make_client(server.url)
    info = c.embed_with_info(["a b", "c"], kind="document")
    assert info.vectors.shape == (2, 8)
    assert info.prompt_tokens == (2 + 2) + (1 + 2)
    assert info.truncated == 0 and info.truncated_indices == []
    assert info.model == "fake-model"


def test_normalize_option(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = lambda req: httpx.Response(
        200, json={"data": [{"index": 0, "embedding": [3.0, 4.0]}], "usage": {"prompt_tokens": 1}}
    )
    c = make_client(srv.url, model="fake-model", normalize=True, encoding="float")
    np.testing.assert_allclose(c.embed(["x"]), [[0.6, 0.8]], rtol=1e-6)


def test_requests_are_pipelined(router, make_client) -> None:
    """With max_concurrency=4, four requests are in flight at the same time (sync too)."""
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", batch_size=1, max_concurrency=4)
    if c.is_async:
        import asyncio

        state = {"in": 0, "peak": 0}
        route = srv.embed_route
        original = route.side_effect

        async def slow(request):
            state["in"] += 1
            state["peak"] = max(state["peak"], state["in"])
            await asyncio.sleep(0.01)
            state["in"] -= 1
            return original(request)

        route.side_effect = slow
        c.embed([f"t{i}" for i in range(12)])
        assert state["peak"] == 4
    else:
        barrier = threading.Barrier(4, timeout=10)
        route = srv.embed_route
        original = route.side_effect

        def gated(request):
            barrier.wait()  # only passes when 4 requests are in flight at once
            return original(request)

        route.side_effect = gated
        out = c.embed([f"t{i}" for i in range(8)])
        np.testing.assert_allclose(out, expected([f"t{i}" for i in range(8)], 8), rtol=1e-6)


def test_request_headers_and_body_shape(server, make_client) -> None:
    c = make_client(server.url, model="fake-model", headers={"X-Team": "search"})
    c.embed(["a"])
    req = server.router.calls.last.request
    assert req.headers["x-team"] == "search"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.content)
    assert body["model"] == "fake-model" and body["encoding_format"] == "bytes"


def test_no_network_in_constructor(router, make_client) -> None:
    c = make_client("http://nowhere.test:1/v1", api_key="k", dimensions=64)
    assert len(router.calls) == 0
    assert c.base_urls == ("http://nowhere.test:1/v1",)


def test_context_manager_closes(server) -> None:
    from vllm_embed import EmbeddingClient

    with EmbeddingClient(server.url) as c:
        c.embed(["a"])
        http = c._http_client
    assert http is not None and http.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        c.embed(["a"])


async def test_async_context_manager_closes(server) -> None:
    from vllm_embed import AsyncEmbeddingClient

    async with AsyncEmbeddingClient(server.url) as c:
        out = await c.embed(["a", "b"])
        http = c._http_client
    assert out.shape == (2, 8)
    assert http is not None and http.is_closed


def test_user_supplied_http_client_is_not_closed(server) -> None:
    from vllm_embed import EmbeddingClient

    own = httpx.Client()
    with EmbeddingClient(server.url, http_client=own) as c:
        c.embed(["a"])
    assert not own.is_closed
    own.close()


def test_respx_is_the_only_transport(router: respx.MockRouter) -> None:
    """Sanity: the router refuses unmocked hosts (so no test talks to a real network)."""
    with pytest.raises(respx.models.AllMockedAssertionError):
        httpx.get("http://unmocked.test/")


def test_async_client_survives_several_event_loops(server) -> None:
    """Frameworks call async code with asyncio.run() per call: each loop gets its own pool."""
    import asyncio

    from vllm_embed import AsyncEmbeddingClient

    c = AsyncEmbeddingClient(server.url)
    first = asyncio.run(c.embed(["a"]))
    second = asyncio.run(c.embed(["b"]))
    np.testing.assert_allclose(np.vstack([first, second]), expected(["a", "b"], 8), rtol=1e-6)
    asyncio.run(c.aclose())
