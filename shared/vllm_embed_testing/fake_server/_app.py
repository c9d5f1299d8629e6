"""The fake server's state, routing, failure-injection counters and ``/v1/embeddings``
(validation, truncation, Matryoshka ``dimensions``, float / base64 / bytes answers)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from ._config import FakeServerConfig, _Answer, _HTTPError, _openai_error, _Request
from ._routes import _Routes
from ._vectors import _Entry, fake_vector

_CACHE_LIMIT = 50_000
_ANSWER_CACHE_BYTES = 256 * 2**20


class _App(_Routes):
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
