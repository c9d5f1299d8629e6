"""Encodings: vLLM bytes (fast and slow paths), base64, float; negotiation state; bodies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vllm_embed import APIError, EncodingNotSupportedError
from vllm_embed._wire import (
    EncodingState,
    build_body,
    decode_response,
    preference_for,
    quick_layout,
    rejects_encoding,
)
from vllm_embed_testing.respx_vllm import expected, json_response, vllm_bytes_response

TEXTS = ["alpha", "beta", "gamma", "delta"]
VECS = expected(TEXTS, 16)


def _decode(resp, n: int = 4):
    return decode_response(
        content=resp.content,
        content_type=resp.headers.get("content-type", ""),
        metadata_header=resp.headers.get("metadata"),
        n_inputs=n,
        url="http://x/v1",
    )


def test_bytes_fast_path_is_a_zero_copy_view() -> None:
    resp = vllm_bytes_response(VECS, prompt_tokens=11, model="m")
    d = _decode(resp)
    assert d.encoding == "bytes"
    assert d.prompt_tokens == 11
    assert d.model == "m"
    np.testing.assert_array_equal(d.vectors, VECS)
    # One np.frombuffer over the body: the result shares memory with the response bytes.
    assert d.vectors.base is not None
    assert not d.vectors.flags.owndata


def test_bytes_out_of_order_items_are_reordered() -> None:
    resp = vllm_bytes_response(VECS, order=[2, 0, 3, 1])
    np.testing.assert_array_equal(_decode(resp).vectors, VECS)


def test_bytes_float16_and_big_endian() -> None:
    d16 = _decode(vllm_bytes_response(VECS, embed_dtype="float16"))
    assert d16.vectors.dtype == np.float16
    np.testing.assert_allclose(d16.vectors.astype(np.float32), VECS, atol=1e-3)
    dbe = _decode(vllm_bytes_response(VECS, endianness="big"))
    np.testing.assert_array_equal(dbe.vectors.astype(np.float32), VECS)


def test_bytes_native_endianness_is_little() -> None:
    resp = vllm_bytes_response(VECS)
    meta = resp.headers["metadata"].replace('"little"', '"native"')
    d = decode_response(
        content=resp.content,
        content_type="application/octet-stream",
        metadata_header=meta,
        n_inputs=4,
        url="u",
    )
    np.testing.assert_array_equal(d.vectors, VECS)


def test_base64_and_float() -> None:
    d = _decode(json_response(VECS, "base64", prompt_tokens=3))
    assert d.encoding == "base64" and d.prompt_tokens == 3
    np.testing.assert_array_equal(d.vectors, VECS)
    f = _decode(json_response(VECS, "float"))
    assert f.encoding == "float" and f.vectors.dtype == np.float32
    np.testing.assert_allclose(f.vectors, VECS, rtol=1e-6)


def test_json_items_sorted_by_index() -> None:
    resp = json_response(VECS, "float")
    doc = json.loads(resp.content)
    doc["data"].reverse()
    d = decode_response(
        content=json.dumps(doc).encode(),
        content_type="application/json",
        metadata_header=None,
        n_inputs=4,
        url="u",
    )
    np.testing.assert_allclose(d.vectors, VECS, rtol=1e-6)


@pytest.mark.parametrize(
    ("content", "ctype", "meta", "n", "why"),
    [
        (b"<html>", "text/html", None, 1, "neither JSON"),
        (b'{"nope": 1}', "application/json", None, 1, "no 'data'"),
        (b'{"data": [{"embedding": [1, 2]}]}', "application/json", None, 2, "1 vectors for 2"),
        (
            b'{"data": [{"embedding": [1]}, {"embedding": [1, 2]}]}',
            "application/json",
            None,
            2,
            "bad",
        ),
        (b"\x00" * 8, "application/octet-stream", "not json", 1, "metadata"),
        (
            b"\x00" * 8,
            "application/octet-stream",
            json.dumps({"data": [{"index": 0, "start": 0, "end": 8, "shape": [4]}]}),
            1,
            "inconsistent",
        ),
    ],
)
def test_unreadable_responses_raise_api_error(content, ctype, meta, n, why) -> None:
    with pytest.raises(APIError, match=why):
        decode_response(
            content=content, content_type=ctype, metadata_header=meta, n_inputs=n, url="u"
        )


def test_build_body_sends_vllm_fields_only_when_needed() -> None:
    plain = json.loads(build_body(model="m", inputs=["a"], encoding="base64"))
    assert plain == {"model": "m", "input": ["a"], "encoding_format": "base64"}
    full = json.loads(
        build_body(
            model="m",
            inputs=("a", "é"),
            encoding="bytes",
            embed_dtype="float16",
            dimensions=64,
            truncate_prompt_tokens=255,
        )
    )
    assert full == {
        "model": "m",
        "input": ["a", "é"],
        "encoding_format": "bytes",
        "endianness": "little",
        "embed_dtype": "float16",
        "dimensions": 64,
        "truncate_prompt_tokens": 255,
        "truncation_side": "right",
    }
    # float16 is only requested with bytes, whose metadata names the dtype.
    assert "embed_dtype" not in json.loads(
        build_body(model="m", inputs=["a"], encoding="base64", embed_dtype="float16")
    )


REJECT_TABLE = [
    (
        400,
        {"error": {"message": "encoding_format: Input should be 'float' or 'base64'"}},
        "bytes",
        True,
    ),
    (422, {"detail": [{"loc": ["body", "encoding_format"], "msg": "bad"}]}, "base64", True),
    (400, "unknown encoding format", "base64", True),
    (400, {"error": {"message": "maximum context length"}}, "bytes", False),
    (500, "encoding_format", "bytes", False),
    (400, "encoding_format", "float", False),  # float is the last resort, never "rejected"
]


@pytest.mark.parametrize(("status", "body", "enc", "rejected"), REJECT_TABLE)
def test_rejects_encoding(status, body, enc, rejected) -> None:
    assert rejects_encoding(status, body, enc) is rejected


def test_encoding_state_only_shrinks() -> None:
    state = EncodingState(preference_for("auto"))
    assert state.current("u") == "bytes"
    state.reject("bytes")
    state.reject("bytes")
    assert state.current("u") == "bytes_only"
    state.reject("bytes_only")
    assert state.current("u") == "base64"
    state.reject("base64")
    state.reject("float")
    with pytest.raises(EncodingNotSupportedError, match="encoding='auto'"):
        state.current("u")
    assert state.rejected == ["bytes", "bytes_only", "base64", "float"]


def test_preference_for() -> None:
    assert preference_for("auto") == ("bytes", "bytes_only", "base64", "float")
    assert preference_for("bytes_only") == ("bytes_only",)
    assert preference_for("float") == ("float",)
    with pytest.raises(ValueError, match="encoding"):
        preference_for("msgpack")


def test_quick_layout_reads_vllm_headers_without_parsing_items() -> None:
    resp = vllm_bytes_response(VECS, prompt_tokens=9, model="m")
    layout = quick_layout(resp.headers["metadata"], 4)
    assert layout is not None
    assert (layout.dim, layout.nbytes, layout.prompt_tokens, layout.model) == (16, 256, 9, "m")
    assert layout.dtype == np.dtype("<f4")
    # Wrong count, reordered items or another formatting: not the quick case.
    assert quick_layout(resp.headers["metadata"], 3) is None
    reordered = vllm_bytes_response(VECS, order=[1, 0, 2, 3]).headers["metadata"]
    assert quick_layout(reordered, 4) is None
    compact = json.dumps(json.loads(resp.headers["metadata"]), separators=(",", ":"))
    assert quick_layout(compact, 4) is None


def test_compact_metadata_still_decodes_through_the_full_parser() -> None:
    resp = vllm_bytes_response(VECS, prompt_tokens=5)
    compact = json.dumps(json.loads(resp.headers["metadata"]), separators=(",", ":"))
    d = decode_response(
        content=resp.content,
        content_type="application/octet-stream",
        metadata_header=compact,
        n_inputs=4,
        url="u",
    )
    np.testing.assert_array_equal(d.vectors, VECS)
    assert d.prompt_tokens == 5
