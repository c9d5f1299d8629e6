"""The core client against a live vLLM CPU server (all-MiniLM-L6-v2 served as ``minilm``).

Each test states one promise of the client as users would check it: same vectors as
sentence-transformers, same vectors over every transport, order kept under
concurrency, discovery, the errors users meet, Matryoshka, and a server that goes
away mid-run. Nothing is mocked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from vllm_embed import (
    APIConnectionError,
    AuthenticationError,
    ContextLengthError,
    DimensionsNotSupportedError,
    EmbeddingClient,
    ModelNotFoundError,
    RetryPolicy,
    Timeout,
)
from vllm_embed_testing.corpus import (
    DEMO_CORPUS,
    EDGE_TEXTS,
    mixed_texts,
    text_of_exact_tokens,
    thousand_word_text,
    tokenize_counter,
)
from vllm_embed_testing.proxy import TCPProxy
from vllm_embed_testing.vllm import LiveServer, reference_embeddings

DIM = 384
MAX_MODEL_LEN = 256
REFERENCE_TEXTS = [text for _, text in DEMO_CORPUS] + list(EDGE_TEXTS)
MakeClient = Callable[..., EmbeddingClient]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="session")
def reference(vllm_server: LiveServer) -> np.ndarray:
    """sentence-transformers' vectors for REFERENCE_TEXTS, from the server env."""
    return reference_embeddings(vllm_server.python, vllm_server.model_path, REFERENCE_TEXTS)


# -- vectors ----------------------------------------------------------------------


def test_vectors_equal_sentence_transformers(
    vllm_server: LiveServer, make_client: MakeClient, reference: np.ndarray
) -> None:
    vectors = make_client(vllm_server).embed(REFERENCE_TEXTS)
    assert vectors.shape == (len(REFERENCE_TEXTS), DIM)
    assert vectors.dtype == np.float32
    cos = _cosines(vectors, reference)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.999, f"text {worst} {REFERENCE_TEXTS[worst]!r}: cosine {cos[worst]}"


async def test_async_vectors_equal_sentence_transformers(
    vllm_server: LiveServer, make_async_client: Any, reference: np.ndarray
) -> None:
    client = make_async_client(vllm_server)
    vectors = await client.embed(REFERENCE_TEXTS)
    assert _cosines(vectors, reference).min() >= 0.999


def test_transports_give_the_same_vectors(vllm_server: LiveServer, make_client: MakeClient) -> None:
    texts = REFERENCE_TEXTS[:20]
    by_encoding = {
        enc: make_client(vllm_server, encoding=enc).embed(texts)
        for enc in ("bytes", "base64", "float")
    }
    np.testing.assert_array_equal(by_encoding["bytes"], by_encoding["base64"])
    np.testing.assert_allclose(by_encoding["float"], by_encoding["bytes"], rtol=0, atol=1e-6)


def test_client_picks_bytes_on_this_server(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    client = make_client(vllm_server)
    client.embed(["negotiate"])
    assert set(client.stats.encodings.values()) == {"bytes"}


def test_float16_transfer_is_within_float16_error(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    texts = REFERENCE_TEXTS[:20]
    full = make_client(vllm_server).embed(texts)
    half = make_client(vllm_server, embed_dtype="float16").embed(texts)
    assert half.dtype == np.float32
    # float16 has an 11-bit significand: relative error <= 2**-11 per component.
    np.testing.assert_allclose(half, full, rtol=2**-10, atol=1e-4)
    assert not np.array_equal(half, full), "vectors were not sent as float16"


def test_two_thousand_mixed_texts_complete_and_in_order(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    texts = mixed_texts(2000)
    client = make_client(vllm_server, max_concurrency=4, batch_size=64)
    vectors = client.embed(texts)
    assert vectors.shape == (2000, DIM)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    # Order: rows equal the same texts embedded alone, one request each.
    probe = [0, 1, 2, 3, 4, 5, 6, 777, 1001, 1500, 1998, 1999]
    single = make_client(vllm_server, max_concurrency=1)
    alone = np.stack([single.embed([texts[i]])[0] for i in probe])
    assert _cosines(vectors[probe], alone).min() >= 0.9999
    # Neighbours differ (a shifted result would pair rows with the wrong texts).
    assert _cosines(vectors[probe[:-1]], alone[1:]).max() < 0.999
    empty = [i for i, t in enumerate(texts) if t == ""]
    assert len(empty) > 100
    np.testing.assert_allclose(vectors[empty], vectors[empty[0]][None, :].repeat(len(empty), 0))
    assert client.stats.inputs >= 2000


async def test_async_mixed_texts_in_order(
    vllm_server: LiveServer, make_async_client: Any, make_client: MakeClient
) -> None:
    texts = mixed_texts(280)
    vectors = await make_async_client(vllm_server, max_concurrency=4, batch_size=32).embed(texts)
    expected = make_client(vllm_server, batch_size=280).embed(texts)
    assert _cosines(vectors, expected).min() >= 0.9999


# -- discovery --------------------------------------------------------------------


def test_discovery(vllm_server: LiveServer, make_client: MakeClient) -> None:
    client = make_client(vllm_server, model=None)
    models = client.models()
    assert [m.id for m in models] == ["minilm"]
    assert models[0].max_model_len == MAX_MODEL_LEN
    assert client.model_name() == "minilm"
    assert client.max_model_len() == MAX_MODEL_LEN
    assert client.dimension() == DIM
    version = client.version()
    assert version is not None and version.startswith("0.")
    assert client.health() is True
    assert client.embed([]).shape == (0, DIM)


def test_health_is_false_when_nothing_listens() -> None:
    from vllm_embed.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with EmbeddingClient(url, model="minilm", retry=RetryPolicy.none(), timeout=5.0) as client:
        assert client.health() is False


# -- errors as users meet them ----------------------------------------------------


def test_wrong_api_key_is_an_authentication_error(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    wrong = "sk-definitely-wrong-key-123"
    with pytest.raises(AuthenticationError) as info:
        make_client(vllm_server, api_key=wrong, model="minilm").embed(["x"])
    assert info.value.status_code == 401
    assert wrong not in str(info.value)
    assert vllm_server.api_key not in str(info.value)


def test_missing_api_key_is_an_authentication_error(
    vllm_server: LiveServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("VLLM_EMBED_API_KEY", "VLLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(AuthenticationError):
        make_client(vllm_server, api_key=None, model="minilm").embed(["x"])


def test_unknown_model_lists_what_is_served(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        make_client(vllm_server, model="nope").embed(["x"])
    assert info.value.available == ["minilm"]
    assert "minilm" in str(info.value)
    assert "nope" in str(info.value)


def test_long_text_with_truncate_error_names_the_limit(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    client = make_client(vllm_server, truncate="error")
    with pytest.raises(ContextLengthError) as info:
        client.embed(["short one", thousand_word_text()])
    assert info.value.max_model_len == MAX_MODEL_LEN
    assert info.value.input_index == 1
    assert str(MAX_MODEL_LEN) in str(info.value)


def test_long_text_by_default_is_embedded_and_counted(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    client = make_client(vllm_server)
    result = client.embed_with_info(["short one", thousand_word_text()])
    assert result.vectors.shape == (2, DIM)
    assert np.isfinite(result.vectors).all()
    assert result.truncated == 1
    assert result.truncated_indices == [1]
    assert client.stats.truncated == 1


def _in_thread(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the run) after ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer within {seconds:.0f} s: the call hangs"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_input_of_exactly_max_model_len_tokens_returns(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    count = tokenize_counter(vllm_server.root_url, vllm_server.model)
    text = text_of_exact_tokens(count, MAX_MODEL_LEN)
    assert count(text) == MAX_MODEL_LEN
    # The client (default truncate="end") cuts to max_model_len - 1 and answers.
    result = _in_thread(lambda: make_client(vllm_server).embed_with_info([text]), 120)
    assert result.vectors.shape == (1, DIM)
    # The server itself also answers an untruncated max_model_len input (no hang).
    raw = _in_thread(
        lambda: httpx.post(
            f"{vllm_server.base_url}/embeddings",
            json={"model": vllm_server.model, "input": [text]},
            headers={"Authorization": f"Bearer {vllm_server.api_key}"},
            timeout=120,
            trust_env=False,
        ),
        150,
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["usage"]["prompt_tokens"] == MAX_MODEL_LEN


# -- Matryoshka -------------------------------------------------------------------


def test_dimensions_on_the_plain_server_is_the_matryoshka_error(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    with pytest.raises(DimensionsNotSupportedError) as info:
        make_client(vllm_server, dimensions=128).embed(["x"])
    assert "128" in str(info.value)
    assert "matryoshka" in str(info.value).lower()


def test_client_side_dimensions_on_the_plain_server(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    full = make_client(vllm_server).embed(REFERENCE_TEXTS[:8])
    cut = make_client(vllm_server, dimensions=128, client_side_dimensions=True).embed(
        REFERENCE_TEXTS[:8]
    )
    assert cut.shape == (8, 128)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    assert _cosines(cut, full[:, :128]).min() >= 0.9999


def test_dimensions_on_the_matryoshka_server(
    vllm_matryoshka_server: LiveServer, make_client: MakeClient
) -> None:
    texts = REFERENCE_TEXTS[:8]
    client = make_client(vllm_matryoshka_server, dimensions=128)
    vectors = client.embed(texts)
    assert vectors.shape == (8, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    full = make_client(vllm_matryoshka_server).embed(texts)
    assert full.shape == (8, DIM)
    assert _cosines(vectors, full[:, :128]).min() >= 0.999
    assert client.dimension() == 128


# -- the server goes away ---------------------------------------------------------


def test_server_gone_mid_run_is_a_connection_error_not_a_hang(
    vllm_server: LiveServer, make_client: MakeClient
) -> None:
    host, port = vllm_server.root_url.removeprefix("http://").rsplit(":", 1)
    proxy = TCPProxy(host, int(port))
    retry = RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=0.5, total_timeout=20)
    client = make_client(
        vllm_server,
        base_url=proxy.base_url,
        model="minilm",
        retry=retry,
        timeout=Timeout(total=30, connect=2),
        batch_size=16,
        max_concurrency=2,
    )
    client.embed(["warm up"])  # the proxy works
    cut = threading.Timer(1.0, proxy.close)
    cut.start()
    try:
        with pytest.raises(APIConnectionError) as info:
            _in_thread(lambda: client.embed(mixed_texts(4000)), 120)
    finally:
        cut.cancel()
        proxy.close()
    assert f"127.0.0.1:{proxy.port}" in str(info.value)
    assert vllm_server.api_key not in str(info.value)
    assert client.stats.retries >= 1
    # The real server is unharmed: the shared fixture keeps serving.
    assert make_client(vllm_server).embed(["still up"]).shape == (1, DIM)
