"""Rerank and score: request bodies, the server's shape negotiated, answers parsed (no I/O).

vLLM serves the same reranker (a cross-encoder, or an embedding model scored by cosine)
under several routes and shapes; other servers use some of them:

=========  ===============================  ==========================================
shape      route                            request / answer
=========  ===============================  ==========================================
``vllm``   ``{root}/rerank``                ``{"query", "documents", "top_n"}`` ->
                                            ``{"results": [{"index", "relevance_score"}]}``
           (also Infinity's, Jina's shape)
``jina``   ``{base}/rerank`` (``/v1``)      the same
``cohere`` ``{root}/v2/rerank``             the same
``tei``    ``{root}/rerank``                ``{"query", "texts"}`` -> ``[{"index", "score"}]``
=========  ===============================  ==========================================

The first shape an endpoint answers is remembered for it (:class:`RerankRoutes`): a 404
moves to the next route, a 422 that asks for ``texts`` moves to TEI's shape. ``/score``
(vLLM) scores pairs: one text against many, or two equal-length lists pairwise.

A long document list is split into batches of ``batch_size`` documents (requests in flight
as for embeddings); every document gets its score, the results are ranked on the client
(score descending, ties by input order) and cut to ``top_n``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import APIError, InvalidInputError, RerankNotSupportedError
from vllm_embed._http_errors import error_from_response
from vllm_embed._wire import parse_error_body

__all__ = [
    "RerankResult",
    "RerankRoutes",
    "check_documents",
    "parse_rerank",
    "parse_score",
    "rank",
    "rerank_body",
    "score_body",
]

#: (shape, relative to: "root" | "base", path), tried in this order.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("vllm", "root", "/rerank"),
    ("jina", "base", "/rerank"),
    ("cohere", "root", "/v2/rerank"),
)
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class RerankResult:
    """One document of a rerank: its position in the input, its score and its text."""

    index: int
    score: float
    document: str


class RerankRoutes:
    """Which rerank route and body shape each endpoint answers (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: base_url -> (index into ROUTES, "documents" | "texts")
        self._known: dict[str, tuple[int, str]] = {}

    def get(self, base_url: str) -> tuple[int, str]:
        return self._known.get(base_url, (0, "documents"))

    def set(self, base_url: str, route: int, field: str) -> None:
        with self._lock:
            self._known[base_url] = (route, field)

    def url(self, root_url: str, base_url: str) -> str:
        route, _ = self.get(base_url)
        _, relative, path = ROUTES[route]
        return (root_url if relative == "root" else base_url) + path

    def next_route(self, base_url: str, url: str) -> None:
        """The endpoint answered 404 on its route: try the next one, or raise."""
        route, field = self.get(base_url)
        if route + 1 >= len(ROUTES):
            raise RerankNotSupportedError(
                f"The server at {url} has no rerank route (tried /rerank, /v1/rerank and "
                "/v2/rerank). Serve a cross-encoder or embedding model with vLLM (its "
                "pooling runner answers /rerank), or TEI / Infinity with a reranker.",
                url=url,
            )
        self.set(base_url, route + 1, field)


def check_documents(query: object, documents: object, what: str = "rerank") -> list[str]:
    """The documents as a list of strings; a clear error for anything else."""
    if not isinstance(query, str):
        raise InvalidInputError(
            f"{what}() takes the query as a string, got {type(query).__name__}."
        )
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence):
        raise InvalidInputError(
            f"{what}() takes the documents as a list of strings, got {type(documents).__name__}."
        )
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            kind = "None" if doc is None else f"a {type(doc).__name__}"
            raise InvalidInputError(
                f"Document {i} is {kind}, not a string. Pass the documents' texts "
                "(e.g. [d.page_content for d in docs])."
            )
    return docs


def rerank_body(model: str, query: str, documents: Sequence[str], field: str) -> bytes:
    """One rerank request: every document scored (the client ranks and cuts)."""
    if field == "texts":  # TEI
        return _json_encode(
            {"query": query, "texts": list(documents), "return_text": False}
        ).encode()
    payload: dict[str, Any] = {"model": model, "query": query, "documents": list(documents)}
    payload["top_n"] = len(documents)
    return _json_encode(payload).encode("utf-8")


def asks_for_texts(status: int, content: bytes) -> bool:
    """A 422 whose body names the ``texts`` field: TEI's rerank shape."""
    return status == 422 and b"texts" in content


def _bad(url: str, why: str) -> APIError:
    return APIError(
        f"The server at {url} sent a rerank / score answer the client cannot read ({why}).",
        url=url,
    )


def parse_rerank(content: bytes, n: int, url: str) -> npt.NDArray[np.float32]:
    """Every document's score, in input order, from any of the shapes above."""
    try:
        doc = json.loads(content)
    except ValueError as exc:
        raise _bad(url, "not JSON") from exc
    items: Any = doc
    if isinstance(doc, dict):
        items = doc.get("results", doc.get("data"))
    if not isinstance(items, list):
        raise _bad(url, "no results list")
    scores = np.full(n, np.nan, dtype=np.float32)
    try:
        for item in items:
            index = int(item["index"])
            value = item.get("relevance_score", item.get("score"))
            if not 0 <= index < n or value is None:
                raise ValueError(f"result {item!r}")
            scores[index] = float(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(url, f"bad result: {exc}") from exc
    if np.isnan(scores).any():
        missing = int(np.isnan(scores).sum())
        raise _bad(url, f"{missing} of {n} documents came back without a score")
    return scores


def score_body(model: str, text_1: str | Sequence[str], text_2: Sequence[str]) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "text_1": text_1 if isinstance(text_1, str) else list(text_1),
        "text_2": list(text_2),
    }
    return _json_encode(payload).encode("utf-8")


def parse_score(content: bytes, n: int, url: str) -> npt.NDArray[np.float32]:
    """``/score``'s ``data[i].score``, in input order."""
    try:
        doc = json.loads(content)
        items = doc["data"]
        scores = np.full(n, np.nan, dtype=np.float32)
        for i, item in enumerate(items):
            scores[int(item.get("index", i))] = float(item["score"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise _bad(url, f"bad /score answer: {exc}") from exc
    if np.isnan(scores).any():
        raise _bad(url, "some pairs came back without a score")
    return scores


def rank(
    documents: Sequence[str], scores: npt.NDArray[np.float32], top_n: int | None
) -> list[RerankResult]:
    """Results by score, highest first (ties keep input order), cut to ``top_n``."""
    order = np.argsort(-scores, kind="stable")
    if top_n is not None:
        order = order[:top_n]
    return [RerankResult(int(i), float(scores[i]), documents[i]) for i in order]


def check_top_n(top_n: object) -> int | None:
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise InvalidInputError(f"top_n must be a positive integer or None, got {top_n!r}.")
    return top_n


#: ``post(request_for)``: the client's POST with failover and retries, where
#: ``request_for(endpoint) -> (url, body)``; returns ``(endpoint, reply)`` for any status
#: that is not retried (``BaseEmbeddingClient._post_steps``).
Post = Callable[[Callable[[Any], tuple[str, bytes]]], Generator[Any, Any, tuple[Any, Any]]]


def _final_error(ep: Any, reply: Any, model: str) -> Exception:
    return error_from_response(
        reply.status,
        parse_error_body(reply.content),
        url=ep.display_url,
        request_id=reply.headers.get("x-request-id"),
        model=model,
    )


def _route_missing(status: int, content: bytes) -> bool:
    # 404 / 405 for the path itself (FastAPI's {"detail": "Not Found"}, a proxy's page),
    # not vLLM's 404 for an unknown model ("The model `x` does not exist.").
    return status in (404, 405) and b"does not exist" not in content


def rerank_steps(
    post: Post, routes: RerankRoutes, model: str, query: str, documents: Sequence[str]
) -> Generator[Any, Any, npt.NDArray[np.float32]]:
    """Every document's score for ``query`` (one request; the route negotiated)."""

    def request_for(ep: Any) -> tuple[str, bytes]:
        _, field = routes.get(ep.base_url)
        return routes.url(ep.root_url, ep.base_url), rerank_body(model, query, documents, field)

    for _ in range(2 * len(ROUTES) + 2):
        ep, reply = yield from post(request_for)
        if reply.status == 200:
            return parse_rerank(reply.content, len(documents), ep.display_url)
        route, field = routes.get(ep.base_url)
        if _route_missing(reply.status, reply.content):
            routes.next_route(ep.base_url, ep.display_url)
            continue
        if field != "texts" and asks_for_texts(reply.status, reply.content):
            routes.set(ep.base_url, route, "texts")
            continue
        raise _final_error(ep, reply, model)
    raise RuntimeError("rerank negotiation did not settle")  # pragma: no cover


def score_steps(
    post: Post, model: str, text_1: str | Sequence[str], text_2: Sequence[str]
) -> Generator[Any, Any, npt.NDArray[np.float32]]:
    """``/score`` (vLLM, on the server root; ``/v1/score`` as a fallback)."""
    body = score_body(model, text_1, text_2)
    for under in ("root", "base"):

        def request_for(ep: Any, under: str = under) -> tuple[str, bytes]:
            return (ep.root_url if under == "root" else ep.base_url) + "/score", body

        ep, reply = yield from post(request_for)
        if reply.status == 200:
            return parse_score(reply.content, len(text_2), ep.display_url)
        if _route_missing(reply.status, reply.content) and under == "root":
            continue
        if _route_missing(reply.status, reply.content):
            raise RerankNotSupportedError(
                f"The server at {ep.display_url} has no /score route. Serve the model with "
                "vLLM's pooling runner (it answers /score for cross-encoders and embedding "
                "models), or use rerank().",
                url=ep.display_url,
            )
        raise _final_error(ep, reply, model)
    raise RuntimeError("score negotiation did not settle")  # pragma: no cover


def check_pairs(text_1: object, text_2: object) -> tuple[str | list[str], list[str]]:
    """``score()``'s inputs: one text and a list, or two lists of equal length."""
    second = check_documents("", text_2, "score")
    if isinstance(text_1, str):
        return text_1, second
    first = check_documents("", text_1, "score")
    if len(first) != len(second):
        raise InvalidInputError(
            f"score() takes one text and a list, or two lists of equal length; got "
            f"{len(first)} and {len(second)} texts."
        )
    return first, second
