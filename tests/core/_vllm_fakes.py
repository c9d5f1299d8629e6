"""In-test fakes of a vLLM / OpenAI-compatible embeddings server for respx.

``vllm_bytes_response`` builds exactly what vLLM sends for ``encoding_format="bytes"``: the
raw vectors as the body and a JSON ``metadata`` header (per-item index, embed_dtype,
endianness, start, end, shape, plus usage). :class:`FakeServer` routes a whole server
(embeddings, models, tokenize, health, version) through a ``respx`` router and records
every request, so tests assert on what the client sent.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import respx

BASE = "http://vllm.test:8000"


def vector_for(text: str, dim: int) -> np.ndarray:
    """A deterministic unit vector per text (lets tests check order and content)."""
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def expected(texts: Sequence[str], dim: int) -> np.ndarray:
    if not texts:
        return np.empty((0, dim), np.float32)
    return np.stack([vector_for(t, dim) for t in texts])


def fake_tokens(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word, plus 2 specials."""
    return len(text.split()) + 2


def vllm_bytes_response(
    vectors: np.ndarray,
    *,
    embed_dtype: str = "float32",
    endianness: str = "little",
    prompt_tokens: int = 0,
    model: str = "fake-model",
    order: Sequence[int] | None = None,
) -> httpx.Response:
    """A vLLM ``encoding_format="bytes"`` response: vectors in the body, JSON metadata header.

    ``order`` writes items to the body in another order (offsets still correct).
    """
    np_dtype = {"float32": "f4", "float16": "f2"}[embed_dtype]
    dt = np.dtype(("<" if endianness == "little" else ">") + np_dtype)
    n = vectors.shape[0]
    order = list(range(n)) if order is None else list(order)
    chunks: list[bytes] = []
    items: list[dict[str, Any]] = []
    offset = 0
    for i in order:
        raw = vectors[i].astype(dt).tobytes()
        items.append(
            {
                "index": i,
                "embed_dtype": embed_dtype,
                "endianness": endianness,
                "start": offset,
                "end": offset + len(raw),
                "shape": [vectors.shape[1]],
            }
        )
        chunks.append(raw)
        offset += len(raw)
    meta = {
        "id": "embd-test",
        "created": 0,
        "model": model,
        "data": items,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return httpx.Response(
        200,
        content=b"".join(chunks),
        headers={"content-type": "application/octet-stream", "metadata": json.dumps(meta)},
    )


def json_response(
    vectors: np.ndarray, encoding: str, *, prompt_tokens: int = 0, model: str = "fake-model"
) -> httpx.Response:
    data = []
    for i, v in enumerate(vectors):
        emb: Any
        if encoding == "base64":
            emb = base64.b64encode(v.astype("<f4").tobytes()).decode()
        else:
            emb = [float(x) for x in v]
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        },
    )


@dataclass
class FakeServer:
    """A scripted embeddings server mounted on a respx router.

    ``encodings``: what it supports (others get vLLM's 400 naming encoding_format, or are
    ignored when ``ignore_unknown_encoding``); ``hooks`` can replace the answer to the
    n-th embeddings request (``hooks[n](request) -> Response | None``).
    """

    router: respx.MockRouter
    base: str = BASE
    dim: int = 8
    model: str = "fake-model"
    models: Sequence[str] | None = None
    encodings: Sequence[str] = ("float", "base64", "bytes")
    max_model_len: int | None = 64
    api_key: str | None = None
    matryoshka: bool = False
    tokenize: bool = True
    ignore_unknown_encoding: bool = False
    version: str = "0.32.0"
    hooks: dict[int, Callable[[httpx.Request], httpx.Response | None]] = field(default_factory=dict)
    embed_requests: list[dict[str, Any]] = field(default_factory=list)
    tokenize_requests: list[dict[str, Any]] = field(default_factory=list)
    models_calls: int = 0

    def __post_init__(self) -> None:
        r = self.router
        self.embed_route = r.post(f"{self.base}/v1/embeddings").mock(side_effect=self._embeddings)
        r.get(f"{self.base}/v1/models").mock(side_effect=self._models)
        r.post(f"{self.base}/tokenize").mock(side_effect=self._tokenize)
        r.get(f"{self.base}/health").mock(return_value=httpx.Response(200))
        r.get(f"{self.base}/version").mock(
            return_value=httpx.Response(200, json={"version": self.version})
        )

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def _auth_failed(self, request: httpx.Request) -> bool:
        return self.api_key is not None and request.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        )

    def _models(self, request: httpx.Request) -> httpx.Response:
        self.models_calls += 1
        if self._auth_failed(request):
            return httpx.Response(401, json={"error": "Unauthorized"})
        names = list(self.models) if self.models is not None else [self.model]
        data = [{"id": m, "object": "model", "owned_by": "vllm"} for m in names]
        if self.max_model_len is not None:
            for d in data:
                d["max_model_len"] = self.max_model_len
        return httpx.Response(200, json={"object": "list", "data": data})

    def _tokenize(self, request: httpx.Request) -> httpx.Response:
        if not self.tokenize:
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        self.tokenize_requests.append(body)
        count = fake_tokens(body["prompt"])
        return httpx.Response(
            200, json={"count": count, "max_model_len": self.max_model_len, "tokens": [0] * count}
        )

    def _embeddings(self, request: httpx.Request) -> httpx.Response:
        n = len(self.embed_requests)
        body = json.loads(request.content)
        self.embed_requests.append(body)
        hook = self.hooks.get(n)
        if hook is not None:
            answer = hook(request)
            if answer is not None:
                return answer
        if self._auth_failed(request):
            return httpx.Response(401, json={"error": "Unauthorized"})
        if body.get("model") != self.model:
            return httpx.Response(
                404,
                json={
                    "error": {
                        "message": f"The model `{body.get('model')}` does not exist.",
                        "type": "NotFoundError",
                        "code": 404,
                    }
                },
            )
        texts: list[str] = body["input"]
        if not texts:
            return httpx.Response(
                400, json={"error": {"message": "You must pass at least one prompt"}}
            )
        dims = body.get("dimensions")
        if dims is not None and not self.matryoshka:
            return httpx.Response(
                400,
                json={
                    "error": {
                        "message": f"Model '{self.model}' does not support Matryoshka embeddings; "
                        f"dimensions must be unset (received dimensions={dims})",
                        "type": "BadRequestError",
                        "param": None,
                        "code": 400,
                    }
                },
            )
        tpt = body.get("truncate_prompt_tokens")
        for t in texts:
            if self.max_model_len and fake_tokens(t) > self.max_model_len and tpt is None:
                return httpx.Response(
                    400,
                    json={
                        "error": {
                            "message": f"This model's maximum context length is "
                            f"{self.max_model_len} tokens. However, your prompt contains at "
                            f"least {fake_tokens(t)} input tokens.",
                            "type": "BadRequestError",
                            "param": "input_tokens",
                            "code": 400,
                        }
                    },
                )
        vecs = expected(texts, self.dim)
        if dims is not None:
            vecs = vecs[:, :dims]
            vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        tokens = sum(fake_tokens(t) for t in texts)
        enc = body.get("encoding_format", "float")
        if enc not in self.encodings:
            if not self.ignore_unknown_encoding:
                return httpx.Response(
                    400,
                    json={
                        "error": {
                            "message": f"1 validation error: encoding_format: Input should be "
                            f"'float' or 'base64', got '{enc}'",
                            "type": "BadRequestError",
                            "code": 400,
                        }
                    },
                )
            enc = "float"
        if enc == "bytes":
            return vllm_bytes_response(
                vecs,
                embed_dtype=body.get("embed_dtype", "float32"),
                prompt_tokens=tokens,
                model=self.model,
            )
        return json_response(vecs, enc, prompt_tokens=tokens, model=self.model)
