"""rerank() and score(): ranked results, batching, the server's shape negotiated and
remembered, errors (both twins, respx fake vLLM scoring by cosine)."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed import (
    InvalidInputError,
    ModelNotFoundError,
    RerankNotSupportedError,
    RerankResult,
)
from vllm_embed_testing.respx_vllm import FakeServer, expected

DOCS = [f"document number {i} about topic {i % 7}" for i in range(23)]
QUERY = "which document is about topic 3?"


def _cosine_order(query: str, docs: list[str], dim: int = 8) -> list[int]:
    q = expected([query], dim)[0]
    scores = expected(docs, dim) @ q
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def test_rerank_ranks_every_document_like_the_cosines(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", batch_size=5)
    results = c.rerank(QUERY, DOCS)
    assert all(isinstance(r, RerankResult) for r in results)
    assert [r.index for r in results] == _cosine_order(QUERY, DOCS)
    assert all(r.document == DOCS[r.index] for r in results)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    # batched like embeddings: 23 documents in batches of 5
    assert sorted(len(body["documents"]) for _, body in srv.score_requests) == [3, 5, 5, 5, 5]
    assert {path for path, _ in srv.score_requests} == {"/rerank"}


def test_top_n_keeps_the_best(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", batch_size=4)
    top = c.rerank(QUERY, DOCS, top_n=3)
    assert [r.index for r in top] == _cosine_order(QUERY, DOCS)[:3]
    with pytest.raises(InvalidInputError, match="top_n"):
        c.rerank(QUERY, DOCS, top_n=0)


@pytest.mark.parametrize(
    ("shape", "paths"),
    [
        ("jina", ["/rerank", "/v1/rerank"]),
        ("cohere", ["/rerank", "/v1/rerank", "/v2/rerank"]),
        ("tei", ["/rerank", "/rerank"]),
    ],
)
def test_the_servers_shape_is_negotiated_and_remembered(  # type: ignore[no-untyped-def]
    router, make_client, shape, paths
) -> None:
    srv = FakeServer(router, rerank=shape)
    c = make_client(srv.url, model="fake-model")
    first = c.rerank(QUERY, DOCS[:6])
    assert [r.index for r in first] == _cosine_order(QUERY, DOCS[:6])
    assert [path for path, _ in srv.score_requests] == paths
    c.rerank(QUERY, DOCS[6:9])
    assert len(srv.score_requests) == len(paths) + 1  # remembered: one request
    if shape == "tei":
        assert "texts" in srv.score_requests[-1][1]


def test_a_server_without_rerank_is_a_named_error(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router, rerank="none")
    c = make_client(srv.url, model="fake-model")
    with pytest.raises(RerankNotSupportedError, match="no rerank route"):
        c.rerank(QUERY, DOCS[:2])
    with pytest.raises(RerankNotSupportedError, match="no /score route"):
        c.score(QUERY, DOCS[:2])


def test_unknown_model_is_not_taken_for_a_missing_route(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="nope")
    with pytest.raises(ModelNotFoundError):
        c.rerank(QUERY, DOCS[:2])


def test_empty_and_bad_inputs(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model")
    assert c.rerank(QUERY, []) == []
    assert srv.score_requests == []
    with pytest.raises(InvalidInputError, match="Document 1 is None"):
        c.rerank(QUERY, ["a", None])
    with pytest.raises(InvalidInputError, match="list of strings"):
        c.rerank(QUERY, "one string")
    with pytest.raises(InvalidInputError, match="query as a string"):
        c.rerank(["q"], ["a"])


def test_score_one_against_many_and_pairwise(router, make_client) -> None:  # type: ignore[no-untyped-def]
    srv = FakeServer(router)
    c = make_client(srv.url, model="fake-model", batch_size=4)
    one_to_many = c.score(QUERY, DOCS[:9])
    np.testing.assert_allclose(
        one_to_many, expected(DOCS[:9], 8) @ expected([QUERY], 8)[0], rtol=1e-5
    )
    pairs = c.score(DOCS[:5], DOCS[5:10])
    want = np.sum(expected(DOCS[:5], 8) * expected(DOCS[5:10], 8), axis=1)
    np.testing.assert_allclose(pairs, want, rtol=1e-5)
    with pytest.raises(InvalidInputError, match="equal length"):
        c.score(DOCS[:2], DOCS[:3])
