"""A real nginx (Debian's, default proxy settings) in front of the fake vLLM server.

One nginx and one fake server per session (started on first use, stopped at the end);
nginx that cannot start fails the run with its error log (never a skip). Sockets: loopback
only (the nox session passes ``--allow-hosts=127.0.0.1``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vllm_embed._settings import ENV_VAR_NAMES
from vllm_embed_testing.fake_server import FakeEmbeddingServer
from vllm_embed_testing.nginx import NginxError, NginxProxy

#: vLLM's default metadata header at this batch and dimension (about 110 bytes a row) is
#: several times nginx's one-page proxy_buffer_size.
DIM = 384


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's settings and CA variables stay out; the default transports are used."""
    for name in (*ENV_VAR_NAMES, "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP", raising=False)


def _start(upstream: FakeEmbeddingServer, work, **kwargs) -> NginxProxy:  # type: ignore[no-untyped-def]
    try:
        return NginxProxy(f"127.0.0.1:{upstream.port}", work, **kwargs).start()
    except NginxError as exc:
        pytest.fail(f"nginx could not be started:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeEmbeddingServer]:
    """A fake vLLM 0.32 (every encoding, bytes_only included)."""
    with FakeEmbeddingServer(dim=DIM, model="minilm") as server:
        yield server


@pytest.fixture(scope="session")
def nginx(fake_upstream, tmp_path_factory) -> Iterator[NginxProxy]:  # type: ignore[no-untyped-def]
    proxy = _start(fake_upstream, tmp_path_factory.mktemp("nginx"))
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def old_vllm_upstream() -> Iterator[FakeEmbeddingServer]:
    """A vLLM with ``bytes`` but without ``bytes_only``."""
    with FakeEmbeddingServer(
        dim=DIM, model="minilm", encodings=("float", "base64", "bytes")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def nginx_old_vllm(old_vllm_upstream, tmp_path_factory) -> Iterator[NginxProxy]:  # type: ignore[no-untyped-def]
    proxy = _start(old_vllm_upstream, tmp_path_factory.mktemp("nginx-old"))
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def nginx_gateway(fake_upstream, tmp_path_factory) -> Iterator[NginxProxy]:  # type: ignore[no-untyped-def]
    """nginx that answers 401 itself unless ``X-Gateway-Key: gw-secret-1`` is sent."""
    proxy = _start(
        fake_upstream,
        tmp_path_factory.mktemp("nginx-gw"),
        required_header=("X-Gateway-Key", "gw-secret-1"),
    )
    yield proxy
    proxy.stop()
