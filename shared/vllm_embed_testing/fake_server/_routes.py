"""The fake server's routes other than ``/v1/embeddings``: ``/health``, ``/version``,
``/v1/models``, ``/tokenize``, ``/pooling`` (token_embed), the rerank routes and ``/score``;
plus the request helpers every route uses. Mixed into :class:`._app._App`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from ._config import FakeServerConfig, _Answer, _HTTPError, _openai_error, _Request
from ._vectors import (
    _fake_token_ids,
    fake_chat_text,
    fake_token_count,
    fake_token_vectors,
    fake_vector,
)


class _Routes:
    """Route handlers of :class:`._app._App` that do not embed (state lives in ``_App``)."""

    config: FakeServerConfig
    pooled: dict[bytes, _Answer]

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
