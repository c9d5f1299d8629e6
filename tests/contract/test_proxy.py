"""Live vLLM behind a stock nginx (Debian's, default proxy settings), as deployed: the
default client through it, over TLS with a private CA and a path prefix."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest

from vllm_embed import EmbeddingClient, TLSCertificateError
from vllm_embed_testing.corpus import mixed_texts
from vllm_embed_testing.nginx import NginxError, NginxProxy
from vllm_embed_testing.vllm import LiveServer


@pytest.fixture(scope="module")
def nginx(
    vllm_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxProxy]:
    upstream = urlsplit(vllm_server.root_url).netloc
    try:
        proxy = NginxProxy(upstream, tmp_path_factory.mktemp("nginx-live")).start()
    except NginxError as exc:
        pytest.fail(f"nginx could not be started:\n{exc}", pytrace=False)
    yield proxy
    proxy.stop()


def test_default_client_through_nginx_equals_direct(
    vllm_server: LiveServer, nginx: NginxProxy
) -> None:
    texts = mixed_texts(600)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as direct:
        expected = direct.embed(texts)
        assert direct.stats.encodings == {vllm_server.base_url: "bytes"}
    with EmbeddingClient(nginx.base_url, api_key=vllm_server.api_key) as client:
        out = client.embed(texts)
        assert client.stats.retries == 0
        assert client.stats.proxy_refusals >= 1
        assert client.stats.encodings == {nginx.base_url: "bytes_only"}
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert "upstream sent too big header" in nginx.error_log_text()


def test_tls_private_ca_and_path_prefix(vllm_server: LiveServer, nginx: NginxProxy) -> None:
    texts = mixed_texts(300)
    with EmbeddingClient(
        nginx.tls_base_url, api_key=vllm_server.api_key, verify=str(nginx.ca_path)
    ) as client:
        assert client.health() is True
        assert client.max_model_len() == 256  # /v1/models through the prefix
        out = client.embed(texts)
        query = client.embed_query("a query through the gateway")
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as direct:
        np.testing.assert_allclose(out, direct.embed(texts), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            query, direct.embed_query("a query through the gateway"), rtol=1e-5, atol=1e-6
        )
    with (
        EmbeddingClient(nginx.tls_base_url, api_key=vllm_server.api_key) as client,
        pytest.raises(TLSCertificateError),
    ):
        client.embed(["no CA given"])
