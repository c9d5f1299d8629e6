"""Retries through both twins: what is retried, Retry-After, bounds, final errors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from vllm_embed import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from vllm_embed_testing.respx_vllm import FakeServer, expected

FAST = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.0)


def _fail(status: int, headers: dict[str, str] | None = None, body: object = None):
    return lambda req: httpx.Response(
        status, headers=headers, json=body or {"error": {"message": "boom"}}
    )


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 504])
def test_retryable_statuses_are_retried(router, make_client, status) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(status)
    srv.hooks[1] = _fail(status)
    c = make_client(srv.url, model="fake-model", retry=FAST)
    np.testing.assert_allclose(c.embed(["a"]), expected(["a"], 8), rtol=1e-6)
    assert len(srv.embed_requests) == 3
    assert c.stats.retries == 2
    assert c.sleeps == [0.01, 0.02]  # exponential backoff


def test_502_in_two_encodings_is_the_servers_and_retried(router, make_client) -> None:
    # A 502 to `bytes` may be a proxy refusing its header: `bytes_only` is asked at once.
    # Refused again, the 502 is the server's (behind the proxy): `bytes` is restored and
    # the ordinary retries take over, with backoff.
    srv = FakeServer(router)
    srv.hooks[0] = _fail(502)
    srv.hooks[1] = _fail(502)
    srv.hooks[2] = _fail(502)
    c = make_client(srv.url, model="fake-model", retry=FAST)
    np.testing.assert_allclose(c.embed(["a"]), expected(["a"], 8), rtol=1e-6)
    asked = [r["encoding_format"] for r in srv.embed_requests]
    assert asked == ["bytes", "bytes_only", "bytes", "bytes_only"]
    assert c.stats.retries == 1 and c.sleeps == [0.01]
    assert c.stats.encodings == {srv.url: "bytes_only"}


@pytest.mark.parametrize("status", [413, 431])
def test_413_431_refused_in_every_encoding_are_final(router, make_client, status) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(status, body={"error": {"message": "nope"}})
    srv.hooks[1] = _fail(status, body={"error": {"message": "nope"}})
    c = make_client(srv.url, model="fake-model", retry=FAST)
    with pytest.raises(APIStatusError) as info:
        c.embed(["a"])
    assert info.value.status_code == status
    # Asked once more in the next binary encoding (a proxy's limit?), then final.
    assert [r["encoding_format"] for r in srv.embed_requests] == ["bytes", "bytes_only"]
    assert c.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_never_retried(router, make_client, status) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(status, body={"error": {"message": "nope"}})
    c = make_client(srv.url, model="fake-model", retry=FAST)
    with pytest.raises(APIStatusError) as info:
        c.embed(["a"])
    assert info.value.status_code == status
    assert len(srv.embed_requests) == 1
    assert c.sleeps == []


def test_retry_after_is_honoured(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(429, {"retry-after": "3"})
    srv.hooks[1] = _fail(503, {"retry-after-ms": "1500"})
    c = make_client(srv.url, model="fake-model", retry=FAST)
    c.embed(["a"])
    assert c.sleeps == [3.0, 1.5]


def test_exhausted_retries_raise_the_final_error(router, make_client) -> None:
    srv = FakeServer(router)
    for i in range(10):
        srv.hooks[i] = _fail(503, body={"error": {"message": "engine dead"}})
    c = make_client(srv.url, model="fake-model", retry=FAST)
    with pytest.raises(ServerError, match="engine dead") as info:
        c.embed(["a"])
    assert info.value.status_code == 503
    assert len(srv.embed_requests) == 4


def test_rate_limit_after_retries(router, make_client) -> None:
    srv = FakeServer(router)
    for i in range(10):
        srv.hooks[i] = _fail(429)
    c = make_client(srv.url, model="fake-model", retry=RetryPolicy(max_attempts=2, initial_delay=0))
    with pytest.raises(RateLimitError, match="max_concurrency"):
        c.embed(["a"])


def test_total_time_is_bounded(router, make_client) -> None:
    """A Retry-After longer than the remaining budget ends retrying at once."""
    srv = FakeServer(router)
    srv.hooks[0] = _fail(429, {"retry-after": "3600"})
    c = make_client(srv.url, model="fake-model", retry=RetryPolicy(total_timeout=30))
    with pytest.raises(RateLimitError):
        c.embed(["a"])
    assert c.sleeps == []
    assert len(srv.embed_requests) == 1


def test_retries_disabled(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(500)
    c = make_client(srv.url, model="fake-model", retry=RetryPolicy.none())
    with pytest.raises(ServerError):
        c.embed(["a"])
    assert len(srv.embed_requests) == 1


def test_connection_errors_are_retried_then_named(router, make_client) -> None:
    router.route(host="down.test").mock(side_effect=httpx.ConnectError("refused"))
    c = make_client("http://down.test:8000/v1", model="m", retry=FAST)
    with pytest.raises(APIConnectionError, match=r"http://down\.test:8000/v1") as info:
        c.embed(["a"])
    assert "Is the server up" in str(info.value)
    assert info.value.url == "http://down.test:8000/v1"
    assert router.routes[-1].call_count == 4


def test_timeouts_become_api_timeout_error(router, make_client) -> None:
    srv = FakeServer(router)
    for i in range(2):
        srv.hooks[i] = lambda req: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=req))
    c = make_client(srv.url, model="fake-model", retry=RetryPolicy(max_attempts=2, initial_delay=0))
    with pytest.raises(APITimeoutError, match="timed out"):
        c.embed(["a"])


def test_a_timeout_then_success(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = lambda req: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=req))
    c = make_client(srv.url, model="fake-model", retry=FAST)
    np.testing.assert_allclose(c.embed(["a"]), expected(["a"], 8), rtol=1e-6)
    assert c.stats.retries == 1


def test_auth_and_bad_request_classes(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = _fail(401, body={"error": "Unauthorized"})
    srv.hooks[1] = _fail(400, body={"error": {"message": "bad"}})
    c = make_client(srv.url, model="fake-model", retry=FAST)
    with pytest.raises(AuthenticationError):
        c.embed(["a"])
    with pytest.raises(BadRequestError):
        c.embed(["a"])


def test_errors_carry_status_body_and_request_id(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = lambda req: httpx.Response(
        400, headers={"x-request-id": "req-42"}, json={"error": {"message": "bad input"}}
    )
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(BadRequestError) as info:
        c.embed(["a"])
    err = info.value
    assert (err.status_code, err.request_id, err.url) == (400, "req-42", srv.url)
    assert err.body == {"error": {"message": "bad input"}}
    assert "bad input" in str(err)
