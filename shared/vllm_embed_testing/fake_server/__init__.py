"""A fast fake vLLM / OpenAI-compatible embedding server, run in its own process.

Tests and benchmarks talk to it over real HTTP on 127.0.0.1::

    from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

    with FakeEmbeddingServer(dim=8, api_key="k") as server:
        client = EmbeddingClient(server.base_url, api_key="k")
        vectors = client.embed(["a", "b"])
        assert (vectors[1] == fake_vector("b", 8)).all()
        assert server.requests_served == 1

What it answers (shapes follow vLLM 0.32, see shared/notes/vllm-cpu-server.md):

- ``POST /v1/embeddings``: ``encoding_format`` ``float``, ``base64``, ``bytes`` (raw vectors in
  the body, JSON ``metadata`` response header) and ``bytes_only``; ``embed_dtype`` ``float32``
  or ``float16``; ``endianness``; ``dimensions`` (truncate and renormalise, or 400 when the
  server is not Matryoshka); ``truncate_prompt_tokens``; an encoding missing from
  ``encodings`` gets the 400 an old vLLM gives.
- ``GET /v1/models`` (items carry ``max_model_len``), ``GET /health``, ``GET /version``,
  ``POST /tokenize``.
- With ``api_key``: a wrong or missing key on ``/v1/*`` gets 401 ``{"error": "Unauthorized"}``.
- ``GET /_fake/stats``: counters for tests (never counted, never failed, never protected).

The fake tokenizer is one token per whitespace-separated word plus two special tokens, so
``"a b c"`` is 5 tokens. The vector of a text is deterministic (seeded by a hash of the text),
L2-normalised and different for every text: :func:`fake_vector` computes the same float32
values in the test's own process.

Speed: a raw ``asyncio.Protocol`` (no framework), keep-alive HTTP/1.1, and every text's
encoded vector (raw bytes, base64, JSON floats) cached, so a response is one ``bytes.join``.
One server process answers well over 100,000 vectors/s of dimension 1024; the client under
test is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FakeEmbeddingServer",
    "FakeServerConfig",
    "InProcessFakeVLLM",
    "fake_token_count",
    "fake_vector",
]

ALL_ENCODINGS = ("float", "base64", "bytes", "bytes_only")
_START_TIMEOUT = 30.0
_CACHE_LIMIT = 50_000
_ANSWER_CACHE_BYTES = 256 * 2**20


# --------------------------------------------------------------------------------------------
# Deterministic vectors and tokens (shared by the server and the tests' own process)
# --------------------------------------------------------------------------------------------


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def fake_vector(text: str, dim: int, dimensions: int | None = None) -> np.ndarray:
    """The float32 vector the fake server returns for ``text`` (L2-normalised).

    ``dimensions`` gives the Matryoshka answer: the first ``dimensions`` values renormalised.
    A text the server truncated (``truncate_prompt_tokens``) is embedded as its kept words
    joined by single spaces: ``fake_vector(" ".join(text.split()[:kept]), dim)``.
    """
    rng = np.random.default_rng(_seed(text))
    vector = rng.standard_normal(dim, dtype=np.float32)
    if dimensions is not None:
        vector = vector[:dimensions]
    norm = np.float32(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32)


def fake_token_vectors(text: str, dim: int) -> np.ndarray:
    """The ``(tokens, dim)`` float32 rows a ``token_embed`` fake answers for ``text``: one
    L2-normalised row per token ([CLS], one per word, [SEP]), as vLLM's token_embed does."""
    words = text.split()
    tokens = ["[CLS]", *words, "[SEP]"]
    return np.stack([fake_vector(f"{text}\x00{i}:{t}", dim) for i, t in enumerate(tokens)])


def fake_chat_text(messages: Any, *, multimodal: bool = True) -> str:
    """The text the fake embeds for a conversation: ``role: text`` lines, an image part as
    ``<image:...>`` (the first 16 hex digits of its data's sha256, or of its URL)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    lines = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ValueError("each message needs a string or a list of parts as content")
        texts = []
        for part in parts:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                if not multimodal:
                    raise ValueError("fake-model is not a multimodal model")
                url = str(part.get("image_url", {}).get("url", ""))
                data = (
                    base64.b64decode(url.split(",", 1)[1])
                    if url.startswith("data:")
                    else url.encode()
                )
                texts.append(f"<image:{hashlib.sha256(data).hexdigest()[:16]}>")
            else:
                raise ValueError(f"unknown content part type {part.get('type')!r}")
        lines.append(f"{message.get('role')}: {' '.join(texts)}")
    return "\n".join(lines)


def fake_token_count(text: str, add_special_tokens: bool = True) -> int:
    """Tokens the fake server counts for ``text``: one per word (+2 special tokens)."""
    return len(text.split()) + (2 if add_special_tokens else 0)


def _fake_token_ids(text: str, add_special_tokens: bool = True) -> list[int]:
    ids = [1000 + _seed(word) % 28000 for word in text.split()]
    return [101, *ids, 102] if add_special_tokens else ids


# --------------------------------------------------------------------------------------------
# Configuration (sent to the child process as JSON)
# --------------------------------------------------------------------------------------------


@dataclass
class FakeServerConfig:
    """Everything the child process needs; see :class:`FakeEmbeddingServer` for meanings."""

    dim: int = 384
    model: str = "fake-model"
    encodings: list[str] = field(default_factory=lambda: ["float", "base64", "bytes", "bytes_only"])
    api_key: str | None = None
    rate_limit: float | None = None
    max_model_len: int = 512
    fail_after: int | None = None
    fail_mode: str | int = "drop"
    fail_count: int | None = None
    delay: float = 0.0
    stall: float = 0.0
    stall_rate: float = 0.0
    stall_seed: int = 0
    matryoshka: bool = True
    version: str | None = "0.32.0"
    cpus: list[int] | None = None
    #: The names /v1/models lists and /v1/embeddings accepts (default: just ``model``).
    models: list[str] | None = None
    #: False: /v1/models items carry no ``max_model_len`` (older servers, proxies).
    list_max_model_len: bool = True
    #: False: /tokenize answers 404 (servers without vLLM's tokenizer routes).
    tokenize: bool = True
    #: False: /health answers 404 (a proxy that hides it).
    health: bool = True
    #: True: an encoding missing from ``encodings`` is ignored and floats come back (as some
    #: OpenAI-compatible servers do) instead of vLLM's 400.
    ignore_unknown_encoding: bool = False
    #: Which rerank routes it serves, scoring by the cosine of the fake vectors: ``"vllm"``
    #: (``/rerank``, ``/v1/rerank``, ``/v2/rerank`` and ``/score``, as vLLM does), ``"jina"``
    #: (``/v1/rerank`` only), ``"cohere"`` (``/v2/rerank`` only), ``"tei"`` (``/rerank``
    #: taking ``texts``, answering a bare list of ``index`` / ``score``), ``"none"``.
    rerank: str = "vllm"
    #: ``"embed"`` (default) or ``"token_embed"``: a server started with
    #: ``--pooler-config '{"task": "token_embed"}'``: ``/pooling`` answers one vector per
    #: token (:func:`fake_token_vectors`) and ``/v1/embeddings`` answers 501.
    pooling_task: str = "embed"
    #: True: ``messages`` on /v1/embeddings are rendered (:func:`fake_chat_text`); False:
    #: 400 like a vLLM whose model has no chat template.
    chat_template: bool = False
    #: True: ``image_url`` parts are accepted (their bytes hashed into the text); False:
    #: 400 "... is not a multimodal model".
    multimodal: bool = False


# --------------------------------------------------------------------------------------------
# The child process: HTTP protocol and request handling
# --------------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _Entry:
    """One text's vector in every encoding the server may send, computed on first use."""

    __slots__ = ("_b64", "_json", "_raw", "vector")

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector
        self._raw: dict[tuple[str, str], bytes] = {}
        self._b64: dict[tuple[str, str], bytes] = {}
        self._json: bytes | None = None

    def raw(self, dtype: str, endianness: str) -> bytes:
        key = (dtype, endianness)
        data = self._raw.get(key)
        if data is None:
            array = self.vector.astype(np.float16 if dtype == "float16" else np.float32)
            if endianness not in ("native", sys.byteorder):
                array = array.byteswap()
            data = self._raw[key] = array.tobytes()
        return data

    def b64(self, dtype: str, endianness: str) -> bytes:
        key = (dtype, endianness)
        data = self._b64.get(key)
        if data is None:
            data = self._b64[key] = base64.b64encode(self.raw(dtype, endianness))
        return data

    def floats(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.vector.tolist()).encode()
        return self._json


class _HTTPError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _openai_error(status: int, message: str, param: str | None = None) -> _HTTPError:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    return _HTTPError(
        status, {"error": {"message": message, "type": kind, "param": param, "code": status}}
    )


_Answer = tuple[int, dict[str, str], list[bytes]]
"""(status, extra headers, body parts): the parts are joined once, with the head."""


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _App:
    """Routes and state of one fake server (lives in the child process)."""

    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self.cache: dict[tuple[str, int | None], _Entry] = {}
        self.item_prefix: list[tuple[bytes, bytes]] = []
        self.embed_requests = 0
        self.vectors = 0
        self.failures_sent = 0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.paths: dict[str, int] = {}
        self.last_request: dict[str, Any] | None = None
        self.last_count = 0
        self.metadata_cache: dict[tuple[int, str, str, int], str] = {}
        # successful /v1/embeddings answers by request body (benchmarks repeat batches)
        self.answers: dict[bytes, tuple[_Answer, dict[str, Any], int]] = {}
        self.pooled: dict[bytes, _Answer] = {}
        self.answer_bytes = 0
        self.next_free = 0.0
        self.stalls = 0
        self.stall_random = random.Random(config.stall_seed)
        self.auth = f"Bearer {config.api_key}" if config.api_key is not None else None

    # -- failure injection ---------------------------------------------------------------
    def should_fail(self) -> bool:
        cfg = self.config
        if cfg.fail_after is None or self.embed_requests < cfg.fail_after:
            return False
        return cfg.fail_count is None or self.failures_sent < cfg.fail_count

    # -- vectors -------------------------------------------------------------------------
    def entry(self, key: str, dimensions: int | None) -> _Entry:
        entry = self.cache.get((key, dimensions))
        if entry is None:
            if len(self.cache) >= _CACHE_LIMIT:
                self.cache.clear()
            entry = _Entry(fake_vector(key, self.config.dim, dimensions))
            self.cache[(key, dimensions)] = entry
        return entry

    def prefixes(self, n: int, quoted: bool) -> list[tuple[bytes, bytes]]:
        while len(self.item_prefix) < n:
            i = len(self.item_prefix)
            head = b'{"index":%d,"object":"embedding","embedding":' % i
            self.item_prefix.append((head, head + b'"'))
        return self.item_prefix[:n]

    # -- routes --------------------------------------------------------------------------
    def handle(self, req: _Request) -> _Answer:
        """Answer one request: (status, extra headers, body parts). Raises nothing.

        Also usable in-process: :class:`InProcessFakeVLLM`."""
        path = req.path.split("?", 1)[0]
        self.paths[path] = self.paths.get(path, 0) + 1
        if path == "/v1/embeddings":
            self.embed_requests += 1
        try:
            return self._route(req)
        except _HTTPError as exc:
            body = exc.body if isinstance(exc.body, bytes) else json.dumps(exc.body).encode()
            return exc.status, {"content-type": "application/json", **exc.headers}, [body]

    def _route(self, req: _Request) -> _Answer:
        path = req.path.split("?", 1)[0]
        routes = {
            "/v1/embeddings": ("POST", self.embeddings),
            "/v1/models": ("GET", self.models),
            "/health": ("GET", self.health),
            "/version": ("GET", self.version),
            "/tokenize": ("POST", self.tokenize),
        }
        shape = self.config.rerank
        rerank_paths = {
            "vllm": ("/rerank", "/v1/rerank", "/v2/rerank"),
            "jina": ("/v1/rerank",),
            "cohere": ("/v2/rerank",),
            "tei": ("/rerank",),
        }.get(shape, ())
        for rerank_path in rerank_paths:
            routes[rerank_path] = ("POST", self.rerank)
        routes["/pooling"] = ("POST", self.pooling)
        if shape == "vllm":
            routes["/score"] = ("POST", self.score)
            routes["/v1/score"] = ("POST", self.score)
        if path not in routes:
            raise _HTTPError(404, {"detail": "Not Found"})
        method, handler = routes[path]
        if req.method != method:
            raise _HTTPError(405, {"detail": "Method Not Allowed"})
        protected = self.auth is not None and path.startswith("/v1/")
        if protected and req.headers.get("authorization") != self.auth:
            raise _HTTPError(401, {"error": "Unauthorized"})
        return handler(req)

    def _json_body(self, req: _Request) -> dict[str, Any]:
        try:
            payload = json.loads(req.body)
        except ValueError as exc:
            raise _openai_error(400, f"Invalid JSON body: {exc}") from None
        if not isinstance(payload, dict):
            raise _openai_error(400, "The request body must be a JSON object")
        return payload

    def health(self, req: _Request) -> _Answer:
        if not self.config.health:
            raise _HTTPError(404, {"detail": "Not Found"})
        return 200, {}, []

    def version(self, req: _Request) -> _Answer:
        if self.config.version is None:
            raise _HTTPError(404, {"detail": "Not Found"})
        body = json.dumps({"version": self.config.version}).encode()
        return 200, {"content-type": "application/json"}, [body]

    def models(self, req: _Request) -> _Answer:
        cfg = self.config
        items = []
        for name in cfg.models or [cfg.model]:
            item: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "vllm",
                "root": name,
                "parent": None,
                "max_model_len": cfg.max_model_len,
                "permission": [],
            }
            if not cfg.list_max_model_len:
                del item["max_model_len"]
            items.append(item)
        body = json.dumps({"object": "list", "data": items}).encode()
        return 200, {"content-type": "application/json"}, [body]

    def pooling(self, req: _Request) -> _Answer:
        """``/pooling`` with ``task: token_embed`` (multi-vector); any other task: 400.
        The same body twice gets the same answer from a small cache (benchmarks)."""
        cached = self.pooled.get(req.body)
        if cached is not None:
            return cached
        answer = self._pooling(req)
        status, headers, parts = answer
        answer = (status, headers, [b"".join(parts)])
        if status == 200:
            if len(self.pooled) >= 64:
                self.pooled.pop(next(iter(self.pooled)))
            self.pooled[req.body] = answer
        return answer

    def _pooling(self, req: _Request) -> _Answer:
        cfg = self.config
        payload = self._json_body(req)
        self._check_model(payload)
        task = payload.get("task")
        if task != "token_embed" or cfg.pooling_task != "token_embed":
            raise _openai_error(400, f"Task {task!r} is not supported by this server", "task")
        encoding = payload.get("encoding_format") or "float"
        if encoding not in cfg.encodings:
            raise _openai_error(
                400, f"encoding_format: Input should be one of {cfg.encodings}", "encoding_format"
            )
        dtype = payload.get("embed_dtype") or "float32"
        texts = payload.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _openai_error(400, "'input' must be a non-empty list of strings", "input")
        limit = payload.get("truncate_prompt_tokens")
        rows = []
        for text in texts:
            vectors = fake_token_vectors(text, cfg.dim)
            if isinstance(limit, int) and limit > 0 and len(vectors) > limit:
                vectors = np.concatenate([vectors[: limit - 1], vectors[-1:]])
            rows.append(vectors)
        tokens = sum(len(r) for r in rows)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        if encoding in ("bytes", "bytes_only"):
            np_dtype = np.dtype("<f2" if dtype == "float16" else "<f4")
            parts, items, start = [], [], 0
            for i, r in enumerate(rows):
                raw = r.astype(np_dtype).tobytes()
                end = start + len(raw)
                shape = list(r.shape)
                items.append({"index": i, "embed_dtype": dtype, "endianness": "little",
                              "start": start, "end": end, "shape": shape})  # fmt: skip
                parts.append(raw)
                start += len(raw)
            headers = {"content-type": "application/octet-stream"}
            if encoding == "bytes":
                meta = {"id": "pooling-fake", "model": cfg.model, "data": items, "usage": usage}
                headers["metadata"] = json.dumps(meta)
            return 200, headers, parts
        data = [
            {
                "index": i,
                "object": "pooling",
                "data": base64.b64encode(r.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else r.tolist(),
            }
            for i, r in enumerate(rows)
        ]
        doc = {"id": "pooling-fake", "object": "list", "model": cfg.model, "data": data,
               "usage": usage}  # fmt: skip
        return 200, {"content-type": "application/json"}, [json.dumps(doc).encode()]

    def _render_chat(self, messages: Any) -> str:
        """A conversation as the text the fake embeds: each message's text parts, and
        ``<image:sha256-prefix>`` for each image (see :func:`fake_chat_text`)."""
        if not self.config.chat_template:
            raise _openai_error(
                400,
                "As of transformers v4.44, default chat template is no longer allowed, so you "
                "must provide a chat template if the tokenizer does not define one.",
            )
        try:
            return fake_chat_text(messages, multimodal=self.config.multimodal)
        except ValueError as exc:
            raise _openai_error(400, str(exc)) from None

    def _check_model(self, payload: dict[str, Any]) -> None:
        cfg = self.config
        model = payload.get("model")
        if model is not None and model != cfg.model and model not in (cfg.models or ()):
            raise _openai_error(404, f"The model `{model}` does not exist.", "model")

    def _cosines(self, query: str, documents: list[Any]) -> list[float]:
        if not all(isinstance(d, str) for d in documents):
            raise _openai_error(400, "documents must be strings", "documents")
        q = fake_vector(query, self.config.dim)
        return [float(np.dot(q, fake_vector(d, self.config.dim))) for d in documents]

    def rerank(self, req: _Request) -> _Answer:
        payload = self._json_body(req)
        self._check_model(payload)
        query = payload.get("query")
        if self.config.rerank == "tei":
            texts = payload.get("texts")
            if not isinstance(query, str) or not isinstance(texts, list):
                detail = [{"loc": ["body", "texts"], "msg": "field required"}]
                raise _HTTPError(422, {"detail": detail})
            scores = self._cosines(query, texts)
            ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
            body = json.dumps([{"index": i, "score": scores[i]} for i in ranked]).encode()
            return 200, {"content-type": "application/json"}, [body]
        documents = payload.get("documents")
        if not isinstance(query, str) or not isinstance(documents, list):
            raise _openai_error(400, "query (a string) and documents (a list) are required")
        if not documents:
            raise _openai_error(400, "At least one text_pair element must be given")
        scores = self._cosines(query, documents)
        ranked = sorted(range(len(documents)), key=lambda i: -scores[i])
        top_n = payload.get("top_n") or len(documents)
        results = [
            {"index": i, "document": {"text": documents[i]}, "relevance_score": scores[i]}
            for i in ranked[:top_n]
        ]
        usage = {"total_tokens": sum(fake_token_count(d) for d in documents)}
        body = json.dumps({"id": "rerank-fake", "model": self.config.model,
                           "usage": usage, "results": results}).encode()  # fmt: skip
        return 200, {"content-type": "application/json"}, [body]

    def score(self, req: _Request) -> _Answer:
        payload = self._json_body(req)
        self._check_model(payload)
        first, second = payload.get("text_1"), payload.get("text_2")
        if isinstance(second, str):
            second = [second]
        if not isinstance(second, list):
            raise _openai_error(400, "text_2 must be a string or a list", "text_2")
        if isinstance(first, str):
            scores = self._cosines(first, second)
        elif isinstance(first, list) and len(first) == len(second):
            scores = [self._cosines(a, [b])[0] for a, b in zip(first, second, strict=True)]
        else:
            raise _openai_error(400, "text_1 and text_2 must have the same length", "text_1")
        data = [{"index": i, "object": "score", "score": v} for i, v in enumerate(scores)]
        body = json.dumps({"id": "score-fake", "model": self.config.model, "data": data})
        return 200, {"content-type": "application/json"}, [body.encode()]

    def tokenize(self, req: _Request) -> _Answer:
        if not self.config.tokenize:
            raise _HTTPError(404, {"detail": "Not Found"})
        payload = self._json_body(req)
        prompt = payload.get("prompt")
        if not isinstance(prompt, str):
            raise _openai_error(400, "'prompt' must be a string", "prompt")
        tokens = _fake_token_ids(prompt, bool(payload.get("add_special_tokens", True)))
        body = {"count": len(tokens), "max_model_len": self.config.max_model_len, "tokens": tokens}
        return 200, {"content-type": "application/json"}, [json.dumps(body).encode()]

    def embeddings(self, req: _Request) -> _Answer:
        cached = self.answers.get(req.body)
        if cached is not None:  # same request body as before: same answer
            answer, payload, count = cached
            self._record(req, payload, count)
            return answer
        payload = self._json_body(req)
        self._record(req, payload, 0)
        answer = self._embed(payload)
        status, headers, parts = answer
        body = b"".join(parts)
        answer = (status, headers, [body])
        if len(body) <= _ANSWER_CACHE_BYTES // 8:
            while self.answers and self.answer_bytes + len(body) > _ANSWER_CACHE_BYTES:
                oldest = self.answers.pop(next(iter(self.answers)))
                self.answer_bytes -= len(oldest[0][2][0])
            self.answers[req.body] = (answer, payload, self.last_count)
            self.answer_bytes += len(body)
        return answer

    def _record(self, req: _Request, payload: dict[str, Any], count: int) -> None:
        self.last_request = {"path": req.path, "headers": sorted(req.headers), "json": payload}
        self.last_count = count
        self.vectors += count

    def _embed(self, payload: dict[str, Any]) -> _Answer:
        """Validate one /v1/embeddings body and build the answer (as body parts)."""
        cfg = self.config
        if cfg.pooling_task == "token_embed":
            raise _openai_error(501, "The model does not support Embeddings API")
        self._check_model(payload)
        encoding = payload.get("encoding_format") or "float"
        if encoding not in cfg.encodings and cfg.ignore_unknown_encoding:
            encoding = "float"
        if encoding not in cfg.encodings:
            raise _openai_error(
                400,
                f"1 validation error: encoding_format: Input should be "
                f"{' or '.join(repr(e) for e in cfg.encodings)} (received {encoding!r})",
                "encoding_format",
            )
        dtype = payload.get("embed_dtype") or "float32"
        if dtype not in ("float32", "float16"):
            raise _openai_error(400, f"embed_dtype {dtype!r} is not supported", "embed_dtype")
        endianness = payload.get("endianness") or "native"
        if endianness not in ("native", "little", "big"):
            raise _openai_error(400, f"endianness {endianness!r} is not valid", "endianness")
        dimensions = self._dimensions(payload.get("dimensions"))
        if "messages" in payload:
            payload = {**payload, "input": [self._render_chat(payload["messages"])]}
        keys, tokens = self._inputs(payload)
        entries = [self.entry(key, dimensions) for key in keys]
        self.vectors += len(entries)
        self.last_count = len(entries)
        out_dim = dimensions or cfg.dim
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        if encoding in ("bytes", "bytes_only"):
            return self._bytes_response(entries, encoding, dtype, endianness, out_dim, usage)
        return self._json_response(entries, encoding, dtype, endianness, usage)

    def _dimensions(self, value: Any) -> int | None:
        if value is None:
            return None
        if not self.config.matryoshka:
            raise _openai_error(
                400,
                f"Model '{self.config.model}' does not support Matryoshka embeddings; "
                f"dimensions must be unset (received dimensions={value})",
                "dimensions",
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _openai_error(400, "dimensions must be a positive integer", "dimensions")
        if value > self.config.dim:
            raise _openai_error(
                400,
                f"dimensions={value} is larger than the model's {self.config.dim}",
                "dimensions",
            )
        return None if value == self.config.dim else value

    def _inputs(self, payload: dict[str, Any]) -> tuple[list[str], int]:
        """Vector keys for the inputs (after truncation) and the prompt token total."""
        cfg = self.config
        raw = payload.get("input")
        if isinstance(raw, str):
            items: list[Any] = [raw]
        elif isinstance(raw, list):
            items = raw
            if items and all(isinstance(x, int) for x in items):
                items = [items]  # one tokenised prompt
        else:
            raise _openai_error(400, "'input' must be a string or a list", "input")
        if not items:
            raise _openai_error(400, "You must pass at least one prompt", "input")
        truncate = payload.get("truncate_prompt_tokens")
        if truncate is not None:
            if not isinstance(truncate, int) or truncate < -1:
                raise _openai_error(400, "truncate_prompt_tokens must be >= -1", "input")
            if truncate > cfg.max_model_len:
                raise _openai_error(
                    400,
                    "truncate_prompt_tokens value is greater than max_model_len. "
                    "Please request a smaller truncation size.",
                )
            if truncate == -1:
                truncate = cfg.max_model_len
        special = 2 if payload.get("add_special_tokens", True) else 0
        left = payload.get("truncation_side") == "left"
        keys: list[str] = []
        total = 0
        for item in items:
            if isinstance(item, str):
                key, count = item, None
            elif isinstance(item, list) and all(isinstance(x, int) for x in item):
                key, count = "tokens:" + ",".join(map(str, item)), len(item)
            else:
                raise _openai_error(400, "each input must be a string or a list of ints", "input")
            if count is None:
                words = item.split()
                count = len(words) + special
                if truncate is not None and count > truncate:
                    keep = max(truncate - special, 0)
                    kept = words[len(words) - keep :] if left else words[:keep]
                    key, count = " ".join(kept), truncate
            elif truncate is not None and count > truncate:
                count = truncate
            if count > cfg.max_model_len:
                raise _openai_error(
                    400,
                    f"This model's maximum context length is {cfg.max_model_len} tokens. "
                    f"However, your prompt contains at least {cfg.max_model_len + 1} input "
                    f"tokens. Please reduce the length of the input prompt.",
                    "input_tokens",
                )
            keys.append(key)
            total += count
        return keys, total

    def _bytes_response(
        self,
        entries: list[_Entry],
        encoding: str,
        dtype: str,
        endianness: str,
        out_dim: int,
        usage: dict[str, int],
    ) -> _Answer:
        body = [e.raw(dtype, endianness) for e in entries]
        headers = {"content-type": "application/octet-stream"}
        if encoding == "bytes":
            items = self._metadata_items(len(entries), dtype, endianness, out_dim)
            # vLLM sends json.dumps() with the default separators (", " and ": ").
            headers["metadata"] = (
                f'{{"id": "embd-fake-{self.embed_requests}", "created": {int(time.time())}, '
                f'"model": {json.dumps(self.config.model)}, "data": {items}, '
                f'"usage": {json.dumps(usage)}}}'
            )
        return 200, headers, body

    def _metadata_items(self, n: int, dtype: str, endianness: str, out_dim: int) -> str:
        """The ``data`` list of the ``metadata`` header as JSON (cached per shape)."""
        key = (n, dtype, endianness, out_dim)
        text = self.metadata_cache.get(key)
        if text is None:
            size = out_dim * (2 if dtype == "float16" else 4)
            items = [
                {
                    "index": i,
                    "embed_dtype": dtype,
                    "endianness": endianness,
                    "start": i * size,
                    "end": (i + 1) * size,
                    "shape": [out_dim],
                }
                for i in range(n)
            ]
            text = self.metadata_cache[key] = json.dumps(items)
        return text

    def _json_response(
        self,
        entries: list[_Entry],
        encoding: str,
        dtype: str,
        endianness: str,
        usage: dict[str, int],
    ) -> _Answer:
        parts = [
            b'{"id":"embd-fake-%d","object":"list","created":%d,"model":%s,"data":['
            % (self.embed_requests, int(time.time()), json.dumps(self.config.model).encode())
        ]
        prefixes = self.prefixes(len(entries), encoding == "base64")
        if encoding == "base64":
            for i, entry in enumerate(entries):
                parts.append(prefixes[i][1])
                parts.append(entry.b64(dtype, endianness))
                parts.append(b'"},' if i + 1 < len(entries) else b'"}')
        else:
            for i, entry in enumerate(entries):
                parts.append(prefixes[i][0])
                parts.append(entry.floats())
                parts.append(b"}," if i + 1 < len(entries) else b"}")
        parts.append(
            b'],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":0,'
            b'"prompt_tokens_details":null}}' % (usage["prompt_tokens"], usage["total_tokens"])
        )
        return 200, {"content-type": "application/json"}, parts

    def stats(self) -> dict[str, Any]:
        return {
            "requests_served": self.embed_requests,
            "vectors": self.vectors,
            "failures": self.failures_sent,
            "connections": self.connections,
            "max_in_flight": self.max_in_flight,
            "stalls": self.stalls,
            "paths": dict(self.paths),
            "last_request": self.last_request,
        }


def _response_bytes(
    status: int, headers: dict[str, str], body: list[bytes], keep_alive: bool
) -> list[bytes]:
    """The HTTP response as [head, body]: a one-part body is sent without a copy."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {sum(map(len, body))}")
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if len(body) == 1 and len(body[0]) > 65536:
        return [head, body[0]]
    return [b"".join([head, *body])]


class InProcessFakeVLLM:
    """The fake server's request handling in the caller's process: no child, no socket.

    :mod:`vllm_embed_testing.respx_vllm` serves it through respx. Same config, same
    answers as :class:`FakeEmbeddingServer` (failure injection and delays aside: those
    belong to the connection).
    """

    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self._app = _App(config)

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` for one request (``path`` with its query string)."""
        request = _Request(
            method=method,
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            keep_alive=True,
        )
        status, extra, parts = self._app.handle(request)
        return status, extra, b"".join(parts)

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_fake/stats``."""
        return self._app.stats()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, app: _App) -> None:
        self.app = app
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed (rate-limited) response is pending
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.app.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._process()

    def _parse(self) -> _Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, version = [*head[0].split(" "), "", "", ""][:3]
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        return _Request(method, target, headers, body, keep_alive)

    def _process(self) -> None:
        while not self.busy and not self.closed:
            request = self._parse()
            if request is None:
                return
            self._answer(request)

    def _answer(self, req: _Request) -> None:
        app = self.app
        path = req.path.split("?", 1)[0]
        if path == "/_fake/stats":
            stats = json.dumps(app.stats()).encode()
            self._send(_response_bytes(200, {"content-type": "application/json"}, [stats], True))
            return
        if app.should_fail():
            app.failures_sent += 1
            self._fail(req)
            return
        status, headers, body = app.handle(req)
        cfg = app.config
        wait = 0.0
        if path == "/v1/embeddings" and status == 200:
            wait = cfg.delay
            if cfg.stall_rate and app.stall_random.random() < cfg.stall_rate:
                app.stalls += 1
                wait += cfg.stall
            if cfg.rate_limit:
                now = time.monotonic()
                start = max(now, app.next_free)
                app.next_free = start + max(app.last_count, 1) / cfg.rate_limit
                wait = max(wait, app.next_free - now)
        data = _response_bytes(status, headers, body, req.keep_alive)
        if wait <= 0:
            self._send(data, req.keep_alive)
            return
        self.busy = True
        app.in_flight += 1
        app.max_in_flight = max(app.max_in_flight, app.in_flight)
        asyncio.get_running_loop().call_later(wait, self._send_later, data, req.keep_alive)

    def _send_later(self, data: list[bytes], keep_alive: bool) -> None:
        self.app.in_flight -= 1
        self.busy = False
        self._send(data, keep_alive)
        self._process()

    def _send(self, data: list[bytes], keep_alive: bool = True) -> None:
        if self.transport is None or self.closed:
            return
        for chunk in data:
            self.transport.write(chunk)
        if not keep_alive:
            self.transport.close()
            self.closed = True

    def _fail(self, req: _Request) -> None:
        mode = self.app.config.fail_mode
        if mode == "drop":
            assert self.transport is not None
            self.transport.close()
            self.closed = True
        elif mode == "hang":
            self.busy = True  # never answer anything on this connection again
        else:
            status = int(mode)
            body = json.dumps(
                {"error": {"message": "fake failure", "type": "ServerError", "code": status}}
            ).encode()
            headers = {"content-type": "application/json"}
            self._send(_response_bytes(status, headers, [body], req.keep_alive), req.keep_alive)


async def _serve(config: FakeServerConfig) -> None:
    loop = asyncio.get_running_loop()
    app = _App(config)
    server = await loop.create_server(lambda: _Connection(app), "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def parent_gone() -> None:  # stdin is a pipe from the parent: EOF means it died
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, parent_gone)
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await stop.wait()


def _child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fake embedding server (child process)")
    parser.add_argument("config", help="FakeServerConfig as JSON")
    args = parser.parse_args(argv)
    config = FakeServerConfig(**json.loads(args.config))
    if config.cpus:
        os.sched_setaffinity(0, config.cpus)
    asyncio.run(_serve(config))


# --------------------------------------------------------------------------------------------
# The parent side
# --------------------------------------------------------------------------------------------


class FakeEmbeddingServer:
    """Start a fake embedding server in a child process (started by the constructor).

    Args:
        dim: Vector dimension.
        model: The one served model name (``/v1/models``); another ``model`` gets 404.
        encodings: ``encoding_format`` values accepted; others get 400 like an old vLLM.
            ``("float",)`` imitates TEI/Ollama, ``("float", "base64")`` vLLM before 0.11.
        api_key: If set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (else 401).
        rate_limit: Capacity in vectors per second: responses are delayed so that the server
            never delivers more (a request of n texts occupies it n/rate seconds, in arrival
            order, like a busy GPU). ``None``: as fast as possible.
        max_model_len: Reported by ``/v1/models`` and ``/tokenize``; longer inputs get 400
            unless ``truncate_prompt_tokens`` is sent.
        fail_after: After this many ``/v1/embeddings`` requests, every request (any route
            except ``/_fake/stats``) fails per ``fail_mode``, ``fail_count`` times
            (``None``: forever). ``fail_after=0, fail_mode=503, fail_count=2`` fails the first
            two requests with 503, then answers normally.
        fail_mode: ``"drop"`` (close the connection without answering), ``"hang"`` (never
            answer on that connection) or an HTTP status code.
        delay: Seconds added to every successful ``/v1/embeddings`` response.
        stall: Seconds added to a successful ``/v1/embeddings`` response now and then: to
            each with probability ``stall_rate`` (drawn from ``random.Random(stall_seed)``,
            so a run is repeatable). A replica that stalls; ``stats()["stalls"]`` counts them.
        matryoshka: Accept ``dimensions`` (truncate + renormalise); else 400 like vLLM.
        version: Answer of ``/version``; ``None`` makes ``/version`` a 404.
        cpus: Pin the server process to these CPU cores (``os.sched_setaffinity``).
        rerank: The rerank routes served (see :class:`FakeServerConfig`).
        pooling_task: ``"token_embed"``: a multi-vector server (``/pooling``).
    """

    def __init__(
        self,
        dim: int = 384,
        model: str = "fake-model",
        encodings: Sequence[str] = ("float", "base64", "bytes", "bytes_only"),
        api_key: str | None = None,
        rate_limit: float | None = None,
        max_model_len: int = 512,
        fail_after: int | None = None,
        *,
        fail_mode: str | int = "drop",
        fail_count: int | None = None,
        delay: float = 0.0,
        stall: float = 0.0,
        stall_rate: float = 0.0,
        stall_seed: int = 0,
        matryoshka: bool = True,
        version: str | None = "0.32.0",
        cpus: Sequence[int] | None = None,
        rerank: str = "vllm",
        pooling_task: str = "embed",
        chat_template: bool = False,
        multimodal: bool = False,
    ) -> None:
        unknown = set(encodings) - set(ALL_ENCODINGS)
        if unknown:
            raise ValueError(f"unknown encodings {sorted(unknown)}; choose from {ALL_ENCODINGS}")
        if fail_mode not in ("drop", "hang") and not isinstance(fail_mode, int):
            raise ValueError("fail_mode must be 'drop', 'hang' or an HTTP status code")
        self.config = FakeServerConfig(
            dim=dim,
            model=model,
            encodings=list(encodings),
            api_key=api_key,
            rate_limit=rate_limit,
            max_model_len=max_model_len,
            fail_after=fail_after,
            fail_mode=fail_mode,
            fail_count=fail_count,
            delay=delay,
            stall=stall,
            stall_rate=stall_rate,
            stall_seed=stall_seed,
            matryoshka=matryoshka,
            version=version,
            cpus=list(cpus) if cpus is not None else None,
            rerank=rerank,
            pooling_task=pooling_task,
            chat_template=chat_template,
            multimodal=multimodal,
        )
        self._final_stats: dict[str, Any] | None = None
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), json.dumps(asdict(self.config))],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,  # the child exits when this pipe closes (parent gone)
        )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"

    def __repr__(self) -> str:
        state = "stopped" if self.process.poll() is not None else self.root_url
        return f"FakeEmbeddingServer(dim={self.config.dim}, model={self.config.model!r}, {state})"

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=_START_TIMEOUT):
                raise RuntimeError(f"fake server did not start within {_START_TIMEOUT} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fake server exited at start (code {self.process.wait()})")
        return int(json.loads(line)["port"])

    def stats(self) -> dict[str, Any]:
        """Counters: requests_served, vectors, failures, connections (opened so far),
        max_in_flight (delayed responses pending at once), stalls, paths (hits per path),
        last_request (``{"path", "headers": [names], "json": body}`` of /v1/embeddings)."""
        if self._final_stats is not None:
            return self._final_stats
        url = f"{self.root_url}/_fake/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    @property
    def requests_served(self) -> int:
        """``/v1/embeddings`` requests answered so far (error answers included, injected
        failures not)."""
        return int(self.stats()["requests_served"])

    def stop(self) -> None:
        """Stop the child process (idempotent); counters stay readable afterwards."""
        if self.process.poll() is None:
            if self._final_stats is None:
                with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                    self._final_stats = self.stats()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdout, self.process.stdin):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> FakeEmbeddingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()


if __name__ == "__main__":
    _child_main()
