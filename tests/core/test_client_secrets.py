"""API keys: where they come from, and that they never appear in reprs, errors or logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from vllm_embed import APIConnectionError, AuthenticationError, EmbeddingClient, RetryPolicy, Secret
from vllm_embed_testing.respx_vllm import FakeServer

KEY = "sk-SUPER-secret-123"


def test_api_key_is_sent_as_bearer(router, make_client) -> None:
    srv = FakeServer(router, api_key=KEY)
    c = make_client(srv.url, api_key=KEY)
    c.embed(["a"])
    assert srv.router.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("var", ["VLLM_EMBED_API_KEY", "VLLM_API_KEY", "OPENAI_API_KEY"])
def test_api_key_from_environment(router, make_client, monkeypatch, var) -> None:
    srv = FakeServer(router, api_key=KEY)
    monkeypatch.setenv(var, KEY)
    c = make_client(srv.url)
    c.embed(["a"])
    assert srv.embed_requests


def test_env_precedence(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai")
    monkeypatch.setenv("VLLM_API_KEY", "vllm")
    c = EmbeddingClient("http://h/v1")
    assert c._headers["Authorization"] == "Bearer vllm"


def test_base_url_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fallback:1/v1")
    assert EmbeddingClient().base_urls == ("http://fallback:1/v1",)
    monkeypatch.setenv("VLLM_EMBED_BASE_URL", "http://mine:2")
    assert EmbeddingClient().base_urls == ("http://mine:2/v1",)


def test_explicit_authorization_header_wins(router, make_client) -> None:
    srv = FakeServer(router, api_key="other")
    c = make_client(srv.url, api_key=KEY, headers={"Authorization": "Bearer other"})
    c.embed(["a"])
    assert srv.router.calls.last.request.headers["authorization"] == "Bearer other"


def test_secret_object_is_accepted(server, make_client) -> None:
    c = make_client(server.url, api_key=Secret(KEY))
    c.embed(["a"])
    assert server.router.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_wrong_key_gives_authentication_error_without_the_key(router, make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    srv = FakeServer(router, api_key="right")
    c = make_client(srv.url, api_key=KEY, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(AuthenticationError) as info:
        c.embed(["a"])
    err = info.value
    assert err.status_code == 401 and err.body == {"error": "Unauthorized"}
    assert "Unauthorized" in str(err) and "VLLM_API_KEY" in str(err)
    for text in (
        str(err),
        repr(err),
        repr(err.body),
        repr(c.client),
        str(c.client.stats),
        caplog.text,
    ):
        assert KEY not in text
    assert "***" in repr(c.client)


def test_key_never_in_logs_during_retries(router, make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    srv = FakeServer(router, api_key=KEY)
    srv.hooks[0] = lambda req: httpx.Response(503, json={"error": {"message": "busy"}})
    c = make_client(srv.url, api_key=KEY, retry=RetryPolicy(max_attempts=2, initial_delay=0))
    c.embed(["a"])
    assert "retrying" in caplog.text
    assert KEY not in caplog.text


def test_credentials_in_url_are_redacted(router, make_client) -> None:
    router.route(host="h.test").mock(side_effect=httpx.ConnectError("refused"))
    c = make_client("http://user:pa55word@h.test/v1", model="m", retry=RetryPolicy.none())
    assert "pa55word" not in repr(c.client)
    with pytest.raises(APIConnectionError) as info:
        c.embed(["a"])
    assert "pa55word" not in str(info.value)
    assert "http://***@h.test/v1" in str(info.value)  # named, its credentials masked
