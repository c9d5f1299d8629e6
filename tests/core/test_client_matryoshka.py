"""Matryoshka ``dimensions``: sent to the server; refusal explained; client-side opt-in."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from vllm_embed import DimensionsNotSupportedError
from vllm_embed_testing.respx_vllm import FakeServer, expected


def test_dimensions_are_sent(router, make_client) -> None:
    srv = FakeServer(router, matryoshka=True)
    c = make_client(srv.url, dimensions=4)
    out = c.embed(["a", "b"])
    assert out.shape == (2, 4)
    assert srv.embed_requests[0]["dimensions"] == 4
    assert c.dimension() == 4


def test_refusal_explains_hf_overrides(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, dimensions=4)
    with pytest.raises(DimensionsNotSupportedError) as info:
        c.embed(["a"])
    msg = str(info.value)
    assert "--hf-overrides" in msg and '{"is_matryoshka": true}' in msg
    assert "client_side_dimensions=True" in msg
    assert info.value.status_code == 400


def test_client_side_truncation_and_renormalisation(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, dimensions=4, client_side_dimensions=True)
    out = c.embed(["a", "b"])
    full = expected(["a", "b"], 8)[:, :4]
    np.testing.assert_allclose(out, full / np.linalg.norm(full, axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    c.embed(["c"])
    # Refused once, then never sent again to that endpoint.
    assert ["dimensions" in r for r in srv.embed_requests] == [True, False, False]


def test_server_ignoring_dimensions(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = lambda req: httpx.Response(
        200, json={"data": [{"index": 0, "embedding": [1.0] * 8}], "usage": {"prompt_tokens": 1}}
    )
    c = make_client(srv.url, model="fake-model", dimensions=4)
    with pytest.raises(DimensionsNotSupportedError, match="ignored dimensions=4"):
        c.embed(["a"])


def test_dimensions_larger_than_the_model(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, dimensions=16, client_side_dimensions=True)
    with pytest.raises(DimensionsNotSupportedError, match="only 8-dimensional"):
        c.embed(["a"])
