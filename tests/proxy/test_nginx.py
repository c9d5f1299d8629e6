"""The client with default settings through a stock nginx, over TLS with a private CA,
with a gateway's own header and a path prefix (fake vLLM behind a real nginx)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from vllm_embed import (
    AsyncEmbeddingClient,
    AuthenticationError,
    EmbeddingClient,
    RetryPolicy,
    TLSCertificateError,
)
from vllm_embed_testing.corpus import mixed_texts

N_TEXTS = 1000


def _direct(upstream, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    with EmbeddingClient(upstream.base_url, encoding="float") as client:
        return client.embed(texts)


def test_default_client_through_default_nginx(nginx, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(N_TEXTS)
    started = time.monotonic()
    with EmbeddingClient(nginx.base_url) as client:
        out = client.embed(texts)
        elapsed = time.monotonic() - started
        assert out.shape == (N_TEXTS, 384)
        np.testing.assert_array_equal(out, _direct(fake_upstream, texts))
        # nginx refused the bytes answer's header, the client moved to bytes_only at once
        assert client.stats.proxy_refusals >= 1
        assert client.stats.retries == 0
        assert client.stats.encodings == {nginx.base_url: "bytes_only"}
        # and stays there: another call asks nothing twice
        before = client.stats.requests
        client.embed(texts[:300])
        assert client.stats.requests == before + 2  # 256 + 44, no refusal
    assert "upstream sent too big header" in nginx.error_log_text()
    assert elapsed < 10, elapsed  # no backoff sleeps (was 12.5 s of retries, then 502)


def test_async_client_through_default_nginx(nginx, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(600)

    async def run() -> tuple[np.ndarray, int]:
        async with AsyncEmbeddingClient(nginx.base_url) as client:
            out = await client.embed(texts)
            return out, client.stats.retries

    out, retries = asyncio.run(run())
    np.testing.assert_array_equal(out, _direct(fake_upstream, texts))
    assert retries == 0


def test_small_calls_keep_bytes_and_token_counts(nginx) -> None:  # type: ignore[no-untyped-def]
    # A short batch's metadata header fits nginx's buffer: bytes (with usage) passes.
    with EmbeddingClient(nginx.base_url) as client:
        info = client.embed_with_info(["one short text", "two"])
        assert info.prompt_tokens > 0
        assert client.stats.encodings == {nginx.base_url: "bytes"}
        assert client.stats.proxy_refusals == 0


def test_server_without_bytes_only_behind_nginx(nginx_old_vllm, old_vllm_upstream) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(N_TEXTS)
    with EmbeddingClient(nginx_old_vllm.base_url) as client:
        out = client.embed(texts)
        np.testing.assert_array_equal(out, _direct(old_vllm_upstream, texts))
        assert client.stats.retries == 0
        # big batches: base64; small ones still go as bytes (their header fits)
        assert client.stats.encodings[nginx_old_vllm.base_url] == "base64"
        client.embed_query("a short query")
        assert client.stats.encodings[nginx_old_vllm.base_url] == "bytes"


def test_tls_with_private_ca_and_path_prefix(nginx, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    texts = mixed_texts(300)
    with EmbeddingClient(nginx.tls_base_url, verify=str(nginx.ca_path)) as client:
        assert client.health() is True  # /embed/health: the prefix's root
        assert client.model_name() == "minilm"
        out = client.embed(texts)
    np.testing.assert_array_equal(out, _direct(fake_upstream, texts))


def test_tls_ca_from_ssl_cert_file(nginx, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.ca_path))
    with EmbeddingClient(nginx.tls_base_url) as client:
        assert client.embed(["hello"]).shape == (1, 384)


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_unknown_ca_is_named_at_once_not_retried(nginx, twin) -> None:  # type: ignore[no-untyped-def]
    retry = RetryPolicy(max_attempts=5, initial_delay=1.0)
    started = time.monotonic()
    if twin == "sync":
        with (
            EmbeddingClient(nginx.tls_base_url, retry=retry) as client,
            pytest.raises(TLSCertificateError) as info,
        ):
            client.embed(["hello"])
        retries = client.stats.retries
    else:

        async def run() -> int:
            async with AsyncEmbeddingClient(nginx.tls_base_url, retry=retry) as client:
                await client.embed(["hello"])
            return 0

        with pytest.raises(TLSCertificateError) as info:
            asyncio.run(run())
        retries = 0
    assert time.monotonic() - started < 3  # no 1 s, 2 s, 4 s backoff
    assert retries == 0
    message = str(info.value)
    assert "verify=" in message and "SSL_CERT_FILE" in message
    assert "certificate" in message.lower()


def test_verify_false_skips_the_check(nginx) -> None:  # type: ignore[no-untyped-def]
    with EmbeddingClient(nginx.tls_base_url, verify=False) as client:
        assert client.embed(["hello"]).shape == (1, 384)


def test_gateway_header(nginx_gateway) -> None:  # type: ignore[no-untyped-def]
    with (
        EmbeddingClient(nginx_gateway.base_url, retry=RetryPolicy.none()) as client,
        pytest.raises(AuthenticationError),
    ):
        client.embed(["hello"])
    headers = {"X-Gateway-Key": "gw-secret-1"}
    with EmbeddingClient(nginx_gateway.base_url, headers=headers) as client:
        assert client.embed(mixed_texts(300)).shape == (300, 384)
        assert "gw-secret-1" not in repr(client)
