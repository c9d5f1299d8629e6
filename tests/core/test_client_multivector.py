"""embed_multivector() over /pooling (token_embed) and maxsim(): rows per token in input
order, encodings negotiated (bytes > base64 > float), errors (both twins, respx fake)."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed import BadRequestError, InvalidInputError, maxsim
from vllm_embed_testing.fake_server import fake_token_vectors
from vllm_embed_testing.respx_vllm import FakeServer

TEXTS = ["late interaction", "one", "a longer text with several words in it", ""]


def _encodings(srv: FakeServer) -> list[str]:
    return [body["encoding_format"] for path, body in srv.score_requests if path == "/pooling"]


@pytest.mark.parametrize(
    ("supported", "asked"),
    [
        (("float", "base64", "bytes", "bytes_only"), ["bytes"]),
        (("float", "base64"), ["bytes", "float"]),  # base64's width is learned from floats once
        (("float",), ["bytes", "float"]),
    ],
)
def test_rows_per_token_in_input_order(router, make_client, supported, asked) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, pooling_task="token_embed", encodings=supported)
    c = make_client(srv.url, model="fake-model")
    out = c.embed_multivector(TEXTS)
    assert len(out) == len(TEXTS)
    for text, rows in zip(TEXTS, out, strict=True):
        assert rows.dtype == np.float32
        np.testing.assert_allclose(rows, fake_token_vectors(text, 8), rtol=1e-6)
    assert _encodings(srv) == asked
    c.embed_multivector(TEXTS[:1])
    settled = "base64" if "base64" in supported and "bytes" not in supported else asked[-1]
    assert _encodings(srv)[-1] == settled


def test_batches_are_small_and_keep_order(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, pooling_task="token_embed")
    c = make_client(srv.url, model="fake-model")
    texts = [f"text {i} " + "w " * (i % 5) for i in range(40)]
    out = c.embed_multivector(texts)
    assert [len(r) for r in out] == [len(fake_token_vectors(t, 8)) for t in texts]
    sizes = [len(body["input"]) for path, body in srv.score_requests if path == "/pooling"]
    assert max(sizes) <= 16 and sum(sizes) == 40
    np.testing.assert_allclose(out[37], fake_token_vectors(texts[37], 8), rtol=1e-6)


def test_query_instruction_applies(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, pooling_task="token_embed", model="intfloat/e5-small-v2")
    c = make_client(srv.url, instructions="auto")
    (rows,) = c.embed_multivector(["find me"], kind="query")
    np.testing.assert_allclose(rows, fake_token_vectors("query: find me", 8), rtol=1e-6)


def test_a_plain_embedding_server_says_so(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)  # pooling task "embed": token_embed is refused
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(BadRequestError, match="token_embed"):
        c.embed_multivector(["x"])
    assert c.embed_multivector([]) == []


def test_maxsim_is_colbert_late_interaction() -> None:
    q = fake_token_vectors("what is late interaction", 8)
    docs = [fake_token_vectors(t, 8) for t in ("late interaction models", "bread and butter")]
    want = [sum(max(float(a @ b) for b in d) for a in q) for d in docs]
    np.testing.assert_allclose(maxsim(q, docs), want, rtol=1e-5)
    assert maxsim(q, [np.empty((0, 8), np.float32)])[0] == 0.0
    with pytest.raises(InvalidInputError, match="expected"):
        maxsim(q, [np.ones((3, 4))])
