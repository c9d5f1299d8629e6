"""What stands between client and server: bytes_only bodies, a proxy refusing binary answers
(the state machine, then the client over respx), vectors of the wrong width, TLS settings."""

from __future__ import annotations

import ssl

import httpx
import numpy as np
import pytest

from vllm_embed import APIError, ConfigValueError, EmbeddingClient, VectorWidthError
from vllm_embed._tls import certificate_error, check_verify, ssl_context
from vllm_embed._wire import EncodingState, build_body, decode_response, unframed_layout
from vllm_embed_testing.respx_vllm import FakeServer, expected

VECS = expected(["a", "b", "c"], 16)


# -- bytes_only bodies -----------------------------------------------------------------------


def test_bytes_only_body_decodes_by_length() -> None:
    raw = VECS.astype("<f4").tobytes()
    d = decode_response(
        content=raw,
        content_type="application/octet-stream",
        metadata_header=None,
        n_inputs=3,
        url="u",
    )
    assert d.encoding == "bytes_only" and d.prompt_tokens == 0
    np.testing.assert_array_equal(d.vectors, VECS)


def test_bytes_only_float16_uses_the_dtype_asked() -> None:
    raw = VECS.astype("<f2").tobytes()
    d = decode_response(
        content=raw,
        content_type="application/octet-stream",
        metadata_header=None,
        n_inputs=3,
        url="u",
        embed_dtype="float16",
    )
    assert d.vectors.shape == (3, 16)
    np.testing.assert_allclose(d.vectors, VECS, atol=2e-3)


def test_bytes_only_body_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(APIError, match="not 3 rows of float32"):
        decode_response(
            content=b"\0" * 20,
            content_type="application/octet-stream",
            metadata_header=None,
            n_inputs=3,
            url="u",
        )


def test_unframed_layout() -> None:
    layout = unframed_layout("application/octet-stream", None, str(3 * 16 * 4), 3)
    assert layout is not None and (layout.dim, layout.nbytes) == (16, 192)
    assert unframed_layout("application/octet-stream", '{"data": []}', "192", 3) is None
    assert unframed_layout("application/json", None, "192", 3) is None
    assert unframed_layout("application/octet-stream", None, "190", 3) is None


def test_binary_bodies_ask_little_endian_and_never_normalize() -> None:
    import json

    for enc in ("bytes", "bytes_only"):
        body = json.loads(build_body(model="m", inputs=["x"], encoding=enc, embed_dtype="float16"))
        assert body["endianness"] == "little" and body["embed_dtype"] == "float16"
        assert "normalize" not in body
    body = json.loads(build_body(model="m", inputs=["x"], encoding="base64"))
    assert "embed_dtype" not in body and "endianness" not in body
    body = json.loads(
        build_body(model="m", inputs=["x"], encoding="bytes", truncate_prompt_tokens=10)
    )
    assert body["truncation_side"] == "right"


# -- the state machine ------------------------------------------------------------------------


def test_proxy_refusal_moves_bytes_to_bytes_only_and_is_confirmed() -> None:
    state = EncodingState(("bytes", "bytes_only", "base64", "float"))
    assert state.blocked("bytes", 256, "u") is True
    assert state.current("u", 256) == "bytes_only" and state.suspended
    state.confirm()
    assert not state.suspended and "bytes" in state.rejected
    assert state.current("u", 1) == "bytes_only"


def test_refusal_in_the_next_encoding_restores_everything() -> None:
    state = EncodingState(("bytes", "bytes_only", "base64", "float"))
    assert state.blocked("bytes", 256, "u")
    state.restore()  # the next encoding was refused the same way: a dead upstream
    assert state.candidates == ("bytes", "bytes_only", "base64", "float")
    assert state.current("u", 256) == "bytes" and state.rejected == []


def test_without_bytes_only_bytes_is_kept_for_small_batches() -> None:
    state = EncodingState(("bytes", "base64", "float"))
    assert state.blocked("bytes", 256, "u")
    assert state.current("u", 256) == "base64"
    assert state.current("u", 128) == "bytes"
    assert state.set_aside("bytes", 200) and not state.set_aside("bytes", 100)
    state.confirm()
    assert state.current("u", 129) == "base64" and state.current("u", 10) == "bytes"


def test_bytes_only_rejected_by_the_server_after_a_refusal_limits_bytes() -> None:
    state = EncodingState(("bytes", "bytes_only", "base64", "float"))
    assert state.blocked("bytes", 64, "u")
    state.reject("bytes_only")  # the server (400) has no bytes_only
    assert state.current("u", 64) == "base64" and state.current("u", 32) == "bytes"


def test_non_binary_or_last_encoding_is_not_blocked() -> None:
    state = EncodingState(("base64", "float"))
    assert state.blocked("base64", 256, "u") is False
    only = EncodingState(("bytes_only",))
    assert only.blocked("bytes_only", 256, "u") is False  # nothing else to try
    assert only.candidates == ("bytes_only",)


# -- the client over respx: proxy refusals, width changes --------------------------------------


def _proxy_502(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, text="<html>502 Bad Gateway</html>")


def test_client_renegotiates_a_proxy_502_without_sleeping(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    srv.hooks[0] = _proxy_502
    c = make_client(srv.url, model="fake-model")
    np.testing.assert_allclose(c.embed(["a", "b"]), expected(["a", "b"], 8), rtol=1e-6)
    assert [r["encoding_format"] for r in srv.embed_requests] == ["bytes", "bytes_only"]
    assert c.sleeps == [] and c.stats.retries == 0 and c.stats.proxy_refusals == 1
    c.embed(["c"])
    assert srv.embed_requests[-1]["encoding_format"] == "bytes_only"


def _narrow(request: httpx.Request) -> httpx.Response:
    # A gateway that ignored encoding_format and mangled the vectors: 4 wide instead of 8.
    n = len(__import__("json").loads(request.content)["input"])
    data = [{"index": i, "embedding": [0.5] * 4, "object": "embedding"} for i in range(n)]
    return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": n}})


def test_a_narrower_answer_is_a_named_error_and_never_cached(  # type: ignore[no-untyped-def]
    router, make_client, tmp_path
) -> None:
    srv = FakeServer(router)
    cache = tmp_path / "emb.sqlite"
    c = make_client(srv.url, model="fake-model", cache=str(cache))
    c.embed(["first"])  # the server's width is learned: 8
    srv.hooks[len(srv.embed_requests)] = _narrow
    with pytest.raises(VectorWidthError, match="4-wide vectors where this client's earlier"):
        c.embed(["second", "third"])
    # the bad rows were not cached: a later call asks the server again and gets 8 wide
    out = c.embed(["second", "third"])
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out, expected(["second", "third"], 8), rtol=1e-6)


# -- TLS settings -------------------------------------------------------------------------------


def test_check_verify(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert check_verify(True) is True and check_verify(False) is False
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert check_verify(ca) == str(ca)
    with pytest.raises(ConfigValueError, match="no such CA file"):
        check_verify(tmp_path / "missing.pem")
    with pytest.raises(ConfigValueError, match="verify must be"):
        check_verify(3)


def test_a_bad_ca_file_is_named(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigValueError, match="could not be loaded"):
        ssl_context(str(bad))
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    with pytest.raises(ConfigValueError, match="SSL_CERT_FILE"):
        ssl_context(True)


def test_verify_false_and_context_passthrough() -> None:
    ctx = ssl_context(False)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    mine = ssl.create_default_context()
    assert ssl_context(mine) is mine


def test_certificate_error_is_found_in_the_chain() -> None:
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed")
    outer = httpx.ConnectError("boom")
    outer.__cause__ = inner
    err = certificate_error(outer, "https://gw/v1")
    assert err is not None and "verify=" in str(err) and err.url == "https://gw/v1"
    assert certificate_error(httpx.ConnectError("refused"), "u") is None


def test_client_validates_verify_at_construction(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigValueError, match="no such CA file"):
        EmbeddingClient("https://gw/v1", verify=str(tmp_path / "nope.pem"))
