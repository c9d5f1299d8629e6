"""Encoding negotiation per endpoint: bytes > bytes_only > base64 > float, remembered, never
re-asked."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed import EncodingNotSupportedError
from vllm_embed_testing.respx_vllm import FakeServer, expected

TEXTS = ["a", "b c", "d"]


def _asked(srv: FakeServer) -> list[str]:
    return [r["encoding_format"] for r in srv.embed_requests]


@pytest.mark.parametrize(
    ("supported", "first_call", "settled"),
    [
        (("float", "base64", "bytes"), ["bytes"], "bytes"),
        (("float", "base64", "bytes_only"), ["bytes", "bytes_only"], "bytes_only"),
        (("float", "base64"), ["bytes", "bytes_only", "base64"], "base64"),  # vLLM 0.11, OpenAI
        (("float",), ["bytes", "bytes_only", "base64", "float"], "float"),  # TEI, Ollama
    ],
)
def test_falls_back_and_remembers(router, make_client, supported, first_call, settled) -> None:
    srv = FakeServer(router, encodings=supported)
    c = make_client(srv.url, model="fake-model")
    np.testing.assert_allclose(c.embed(TEXTS), expected(TEXTS, 8), rtol=1e-6)
    assert _asked(srv) == first_call
    c.embed(TEXTS)
    c.embed(TEXTS)
    # A rejected format is never asked again; the settled one is reused.
    assert _asked(srv)[len(first_call) :] == [settled, settled]
    assert c.stats.encodings == {srv.url: settled}


def test_server_that_ignores_encoding_format(router, make_client) -> None:
    srv = FakeServer(router, encodings=("float",), ignore_unknown_encoding=True)
    c = make_client(srv.url, model="fake-model")
    np.testing.assert_allclose(c.embed(TEXTS), expected(TEXTS, 8), rtol=1e-6)
    c.embed(TEXTS)
    c.embed(TEXTS)
    c.embed(TEXTS)
    # bytes answered with JSON floats: bytes is dropped, then bytes_only and base64
    # likewise, then float.
    assert _asked(srv) == ["bytes", "bytes_only", "base64", "float"]


def test_encoding_is_remembered_per_endpoint(router, make_client) -> None:
    new = FakeServer(router, base="http://new.test:8000", encodings=("float", "base64", "bytes"))
    old = FakeServer(router, base="http://old.test:8000", encodings=("float", "base64"))
    c = make_client([new.url, old.url], model="fake-model", batch_size=1, max_concurrency=1)
    for _ in range(3):
        c.embed(["x", "y"])
    assert set(_asked(new)) == {"bytes"}
    assert _asked(old)[:2] == ["bytes", "bytes_only"] and set(_asked(old)[2:]) == {"base64"}
    assert _asked(old).count("bytes") == 1 and _asked(old).count("bytes_only") == 1
    assert c.stats.encodings == {new.url: "bytes", old.url: "base64"}


def test_explicit_encoding_that_the_server_rejects(router, make_client) -> None:
    srv = FakeServer(router, encodings=("float",))
    c = make_client(srv.url, model="fake-model", encoding="base64")
    with pytest.raises(EncodingNotSupportedError, match="encoding='auto'"):
        c.embed(TEXTS)
    with pytest.raises(EncodingNotSupportedError):
        c.embed(TEXTS)
    assert _asked(srv) == ["base64"]  # not asked a second time


def test_explicit_float(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", encoding="float")
    c.embed(TEXTS)
    assert _asked(srv) == ["float"]


def test_float16_transfer(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", embed_dtype="float16")
    out = c.embed(TEXTS)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected(TEXTS, 8), atol=2e-3)
    assert srv.embed_requests[0]["embed_dtype"] == "float16"
