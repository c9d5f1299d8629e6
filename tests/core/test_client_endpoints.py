"""Several base URLs: batches spread over healthy endpoints, failover, all-down error."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest

from vllm_embed import NoHealthyEndpointError, RetryPolicy
from vllm_embed_testing.respx_vllm import FakeServer, expected

TEXTS = [f"t{i}" for i in range(40)]


def test_batches_are_spread_over_endpoints(router, make_client) -> None:
    a = FakeServer(router, base="http://a.test:8000")
    b = FakeServer(router, base="http://b.test:8000")
    c = make_client([a.url, b.url], model="fake-model", batch_size=4, max_concurrency=4)
    np.testing.assert_allclose(c.embed(TEXTS), expected(TEXTS, 8), rtol=1e-6)
    na, nb = len(a.embed_requests), len(b.embed_requests)
    assert na + nb == 10
    assert na >= 1 and nb >= 1  # the first two batches always go to different replicas


def test_fewest_outstanding_wins(router, make_client) -> None:
    """Four requests in flight at once over two replicas: always two on each."""
    a = FakeServer(router, base="http://a.test:8000")
    b = FakeServer(router, base="http://b.test:8000")
    c = make_client([a.url, b.url], model="fake-model", batch_size=1, max_concurrency=4)
    for srv in (a, b):
        route = srv.embed_route
        original = route.side_effect
        if c.is_async:

            async def slow(request, _orig=original):
                await asyncio.sleep(0.02)
                return _orig(request)

            route.side_effect = slow
        else:
            route.side_effect = _gated(original)
    c.embed(TEXTS[:8])
    assert (len(a.embed_requests), len(b.embed_requests)) == (4, 4)


_BARRIER = threading.Barrier(4, timeout=10)


def _gated(original):
    def gated(request):
        _BARRIER.wait()  # all four requests of a wave are in flight together
        return original(request)

    return gated


def test_failover_when_one_endpoint_is_down(router, make_client) -> None:
    up = FakeServer(router, base="http://up.test:8000")
    router.route(host="down.test").mock(side_effect=httpx.ConnectError("refused"))
    c = make_client(
        ["http://down.test:8000/v1", up.url],
        model="fake-model",
        batch_size=2,
        max_concurrency=2,
        retry=RetryPolicy(max_attempts=3, initial_delay=0),
    )
    for _ in range(3):
        np.testing.assert_allclose(c.embed(TEXTS[:10]), expected(TEXTS[:10], 8), rtol=1e-6)
    down_calls = router.routes[-1].call_count
    # The dead replica is tried, marked down, and left alone during its cool-down.
    assert 1 <= down_calls <= 2
    assert len(up.embed_requests) == 15
    assert c.sleeps == []  # failover does not wait: another endpoint was healthy


def test_endpoint_comes_back_after_cooldown(router, make_client) -> None:
    a = FakeServer(router, base="http://a.test:8000")
    b = FakeServer(router, base="http://b.test:8000")
    c = make_client([a.url, b.url], model="fake-model", batch_size=1, max_concurrency=1)
    pool = c.client._pool
    pool.mark_down(pool.endpoints[0])
    c.embed(["x", "y"])
    assert len(a.embed_requests) == 0 and len(b.embed_requests) == 2
    pool.endpoints[0].down_until = 0.0  # cool-down over
    c.embed(["x", "y", "z", "w"])
    assert len(a.embed_requests) >= 1


def test_all_endpoints_down(router, make_client) -> None:
    router.route(host="a.test").mock(side_effect=httpx.ConnectError("refused"))
    router.route(host="b.test").mock(side_effect=httpx.ConnectError("refused"))
    c = make_client(
        ["http://a.test/v1", "http://b.test/v1"],
        model="m",
        truncate="error",
        retry=RetryPolicy(max_attempts=2, initial_delay=0),
    )
    c.client._max_model_len_known = True  # skip discovery: this test is about embeddings
    with pytest.raises(NoHealthyEndpointError, match=r"http://a\.test/v1, http://b\.test/v1"):
        c.embed(["x"])


def test_discovery_uses_a_healthy_endpoint(router, make_client) -> None:
    router.route(host="down.test").mock(side_effect=httpx.ConnectError("refused"))
    up = FakeServer(router, base="http://up.test:8000")
    c = make_client(["http://down.test/v1", up.url], batch_size=1)
    c.client._pool.mark_down(c.client._pool.endpoints[0])
    assert c.model_name() == "fake-model"
    assert c.health() is True
