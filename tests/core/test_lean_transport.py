"""The lean transport (stdlib http.client, plain http) against a real local server.

These tests open sockets to 127.0.0.1 (the project's fake server runs in its own process);
everything else in tests/core runs with sockets disabled and picks the httpx transport
(conftest.py); the tests here pick the lean one (the default for plain http).
"""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    EmbeddingClient,
    ModelNotFoundError,
    RetryPolicy,
    Timeout,
)
from vllm_embed._transports import LeanTransport, choose_transport
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)


def _expected(texts: list[str], dim: int) -> np.ndarray:
    return np.stack([fake_vector(t, dim) for t in texts])


@pytest.fixture(autouse=True)
def _lean_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the lean transport: undo conftest's choice of httpx."""
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP")


def _lean_used(c: EmbeddingClient) -> bool:
    transports = list(c._transports.values())
    return (
        bool(transports)
        and all(isinstance(t, LeanTransport) for t in transports)
        and c._lean is not None
        and c._lean.connections_opened > 0
    )


@pytest.mark.enable_socket
def test_vectors_read_straight_into_the_output_in_order() -> None:
    texts = [f"sentence {i}" for i in range(1000)]
    with (
        FakeEmbeddingServer(dim=64) as srv,
        EmbeddingClient(srv.base_url, batch_size=37, max_concurrency=4) as c,
    ):
        out = c.embed(texts)
        assert _lean_used(c)
        np.testing.assert_array_equal(out, _expected(texts, 64))
        info = c.embed_with_info(texts[:5])
        assert info.prompt_tokens == sum(len(t.split()) + 2 for t in texts[:5])
        assert c.stats.encodings == {srv.base_url: "bytes"}
        assert srv.stats()["last_request"]["json"]["encoding_format"] == "bytes"


@pytest.mark.enable_socket
def test_error_answers_on_the_lean_path() -> None:
    with FakeEmbeddingServer(dim=8, api_key="right") as srv:
        with EmbeddingClient(srv.base_url, api_key="wrong", model="fake-model") as c:
            with pytest.raises(AuthenticationError) as info:
                c.embed(["a"])
            assert info.value.body == {"error": "Unauthorized"}
            assert "wrong" not in str(info.value)
        with (
            EmbeddingClient(srv.base_url, api_key="right", model="nope") as c,
            pytest.raises(ModelNotFoundError, match="fake-model"),
        ):
            c.embed(["a"])


@pytest.mark.enable_socket
def test_float16_and_fallback_encodings() -> None:
    texts = ["x", "y y", "z"]
    with (
        FakeEmbeddingServer(dim=16) as srv,
        EmbeddingClient(srv.base_url, embed_dtype="float16") as c,
    ):
        np.testing.assert_allclose(c.embed(texts), _expected(texts, 16), atol=2e-3)
    with (
        FakeEmbeddingServer(dim=16, encodings=("float", "base64")) as srv,
        EmbeddingClient(srv.base_url) as c,
    ):
        np.testing.assert_array_equal(c.embed(texts), _expected(texts, 16))
        np.testing.assert_array_equal(c.embed(texts), _expected(texts, 16))
        assert c.stats.encodings == {srv.base_url: "base64"}


@pytest.mark.enable_socket
def test_dropped_connection_is_retried_on_a_new_connection() -> None:
    texts = [f"t{i}" for i in range(10)]
    with (
        FakeEmbeddingServer(dim=8, fail_after=1, fail_mode="drop", fail_count=1) as srv,
        EmbeddingClient(
            srv.base_url, model="fake-model", batch_size=5, max_concurrency=1, retry=FAST_RETRY
        ) as c,
    ):
        np.testing.assert_array_equal(c.embed(texts), _expected(texts, 8))
        # The kept-alive connection was dropped: resent once on a fresh connection.
        assert srv.stats()["failures"] == 1
        assert srv.stats()["connections"] >= 2


@pytest.mark.enable_socket
def test_503_is_retried() -> None:
    with (
        FakeEmbeddingServer(dim=8, fail_after=0, fail_mode=503, fail_count=2) as srv,
        EmbeddingClient(srv.base_url, model="fake-model", retry=FAST_RETRY) as c,
    ):
        np.testing.assert_array_equal(c.embed(["a"]), _expected(["a"], 8))
        assert c.stats.retries == 2


@pytest.mark.enable_socket
def test_hung_server_times_out() -> None:
    with (
        FakeEmbeddingServer(dim=8, fail_after=0, fail_mode="hang") as srv,
        EmbeddingClient(
            srv.base_url,
            model="fake-model",
            timeout=Timeout(total=0.5, connect=0.5),
            retry=RetryPolicy(max_attempts=2, initial_delay=0),
            truncate="error",
        ) as c,
    ):
        c._max_model_len_known = True  # the hung server would not answer /v1/models
        with pytest.raises(APITimeoutError, match="timed out"):
            c.embed(["a"])


@pytest.mark.enable_socket
def test_nothing_listening_is_a_connection_error() -> None:
    with FakeEmbeddingServer(dim=8) as srv:
        url = srv.base_url
    with EmbeddingClient(url, model="m", retry=RetryPolicy(max_attempts=2, initial_delay=0)) as c:
        c._max_model_len_known = True
        with pytest.raises(APIConnectionError, match="Is the server up"):
            c.embed(["a"])


@pytest.mark.parametrize(
    ("url", "env", "allowed"),
    [
        ("http://127.0.0.1:8000/v1", {}, True),
        ("https://gpu.example/v1", {}, False),
        ("http://u:p@host/v1", {}, False),
        ("http://127.0.0.1:8000/v1", {"VLLM_EMBED_LEAN_HTTP": "0"}, False),
        ("http://gpu-box:8000/v1", {"HTTP_PROXY": "http://proxy:3128"}, False),
        (
            "http://gpu-box:8000/v1",
            {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "gpu-box"},
            True,
        ),
    ],
)
def test_which_transport_an_endpoint_gets(monkeypatch, url, env, allowed) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert choose_transport(url, http_client_given=False) == ("lean" if allowed else "httpx")
    assert choose_transport(url, http_client_given=True) == "httpx"


@pytest.mark.enable_socket
def test_user_http_client_disables_the_lean_path() -> None:
    import httpx

    with (
        FakeEmbeddingServer(dim=8) as srv,
        httpx.Client() as own,
        EmbeddingClient(srv.base_url, http_client=own) as c,
    ):
        c.embed(["a"])
        assert c._lean is None
        assert {type(t).__name__ for t in c._transports.values()} == {"HttpxTransport"}


@pytest.mark.enable_socket
async def test_async_twin_uses_the_lean_transport_on_its_event_loop() -> None:
    from vllm_embed import AsyncEmbeddingClient
    from vllm_embed._transports import AsyncLeanTransport

    texts = [f"sentence {i}" for i in range(300)]
    with FakeEmbeddingServer(dim=32) as srv:
        async with AsyncEmbeddingClient(srv.base_url, batch_size=16, max_concurrency=3) as c:
            out = await c.embed(texts)
            lean = c._lean
            assert isinstance(lean, AsyncLeanTransport)
            assert list(c._transports.values()) == [lean]
            # At most max_concurrency requests at once: connections are reused, not piled up.
            assert 1 <= lean.connections_opened <= 3
            np.testing.assert_array_equal(out, _expected(texts, 32))
            async with AsyncEmbeddingClient(srv.base_url, model="nope") as bad:
                with pytest.raises(ModelNotFoundError):
                    await bad.embed(["a"])
        assert lean._all == []  # closed by aclose()


@pytest.mark.enable_socket
async def test_async_lean_transport_failures() -> None:
    from vllm_embed import AsyncEmbeddingClient

    texts = [f"t{i}" for i in range(10)]
    with FakeEmbeddingServer(dim=8, fail_after=1, fail_mode="drop", fail_count=1) as srv:
        async with AsyncEmbeddingClient(
            srv.base_url, model="fake-model", batch_size=5, max_concurrency=1, retry=FAST_RETRY
        ) as c:
            np.testing.assert_array_equal(await c.embed(texts), _expected(texts, 8))
        assert srv.stats()["failures"] == 1
    with FakeEmbeddingServer(dim=8, fail_after=0, fail_mode="hang") as srv:
        async with AsyncEmbeddingClient(
            srv.base_url,
            model="fake-model",
            timeout=Timeout(total=0.5, connect=0.5),
            retry=RetryPolicy(max_attempts=2, initial_delay=0),
        ) as c:
            c._max_model_len_known = True
            with pytest.raises(APITimeoutError, match="timed out"):
                await c.embed(["a"])
        url = srv.base_url
    async with AsyncEmbeddingClient(
        url, model="m", retry=RetryPolicy(max_attempts=2, initial_delay=0)
    ) as c:
        c._max_model_len_known = True
        with pytest.raises(APIConnectionError, match="Is the server up"):
            await c.embed(["a"])
