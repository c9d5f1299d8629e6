"""The project's fake vLLM in the test's own process, through respx: no sockets.

Every answer comes from the request handler of :mod:`vllm_embed_testing.fake_server`
(:class:`~vllm_embed_testing.fake_server.InProcessFakeVLLM`), the same code the
out-of-process fake server runs, so unit tests get vLLM's real answers (``bytes`` encoding
with its ``metadata`` header, base64, float, ``/v1/models`` with ``max_model_len``,
``/tokenize``, 401 without the key, vLLM's 400s) while pytest-socket keeps the network
closed.

- :func:`mount` (adapter, migration and CLI tests): every request to ``base_url``'s host
  goes to one fake; the returned route records the calls (:func:`embedding_inputs`).
- :class:`FakeServer` (the core client's tests): the same fake at ``base``, plus what a
  scripted test needs: the request bodies it received (``embed_requests``,
  ``tokenize_requests``, ``models_calls``) and ``hooks[n]``, which replaces the answer to
  the n-th embeddings request (a 503, a timeout, a body of the test's choosing).
- :func:`expected` (the vectors the fake returns), :func:`fake_tokens` (its token count),
  :func:`vllm_bytes_response` / :func:`json_response` (vLLM-shaped responses built from
  given vectors, for tests of the wire format alone).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import respx

from vllm_embed_testing.fake_server import (
    FakeServerConfig,
    InProcessFakeVLLM,
    fake_token_count,
    fake_vector,
)

__all__ = [
    "API_KEY",
    "BASE_URL",
    "DIM",
    "MODEL",
    "FakeServer",
    "embedding_inputs",
    "expected",
    "fake_tokens",
    "json_response",
    "mount",
    "vllm_bytes_response",
]

# What the adapters' unit tests use unless a test says otherwise.
BASE_URL = "http://vllm.test/v1"
MODEL = "fake-model"
DIM = 16
API_KEY = "sk-unit-test-key-1234"

Hook = Callable[[httpx.Request], "httpx.Response | None"]


def _respond(fake: InProcessFakeVLLM, request: httpx.Request) -> httpx.Response:
    status, headers, body = fake.answer(
        request.method,
        request.url.raw_path.decode("ascii"),
        dict(request.headers),
        request.content,
    )
    return httpx.Response(status, headers=headers, content=body)


def mount(router: respx.MockRouter, base_url: str = BASE_URL, **config: Any) -> respx.Route:
    """Answer every request to ``base_url``'s host like a vLLM server configured by ``config``
    (the fields of :class:`FakeServerConfig`; defaults: DIM, MODEL, API_KEY above)."""
    config = {"dim": DIM, "model": MODEL, "api_key": API_KEY, **config}
    fake = InProcessFakeVLLM(FakeServerConfig(**config))
    url = httpx.URL(base_url)
    return router.route(scheme=url.scheme, host=url.host).mock(
        side_effect=lambda request: _respond(fake, request)
    )


def embedding_inputs(route: respx.Route) -> list[list[str]]:
    """The ``input`` list of every ``POST /v1/embeddings`` the route answered, in order."""
    return [
        json.loads(call.request.content)["input"]
        for call in route.calls
        if call.request.url.path.endswith("/embeddings")
    ]


def expected(texts: Sequence[str], dim: int) -> np.ndarray:
    """The vectors the fake returns for ``texts`` (float32, ``(len(texts), dim)``)."""
    if not texts:
        return np.empty((0, dim), np.float32)
    return np.stack([fake_vector(t, dim) for t in texts])


def fake_tokens(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word, plus 2 specials."""
    return fake_token_count(text)


@dataclass
class FakeServer:
    """The fake vLLM at ``base`` on a respx router, recording what it was sent.

    The settings are :class:`FakeServerConfig`'s (this class's defaults are small: dim 8,
    max_model_len 64, not Matryoshka); ``models`` lists several served models,
    ``max_model_len=None`` leaves it out of ``/v1/models``, ``tokenize=False`` makes
    ``/tokenize`` a 404, ``ignore_unknown_encoding`` answers floats for an encoding the
    server lacks (as some OpenAI-compatible servers do) instead of vLLM's 400.
    """

    router: respx.MockRouter
    base: str = "http://vllm.test:8000"
    dim: int = 8
    model: str = "fake-model"
    models: Sequence[str] | None = None
    encodings: Sequence[str] = ("float", "base64", "bytes", "bytes_only")
    max_model_len: int | None = 64
    api_key: str | None = None
    matryoshka: bool = False
    tokenize: bool = True
    health: bool = True
    ignore_unknown_encoding: bool = False
    version: str = "0.32.0"
    rerank: str = "vllm"
    pooling_task: str = "embed"
    chat_template: bool = False
    multimodal: bool = False
    hooks: dict[int, Hook] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    embed_requests: list[dict[str, Any]] = field(default_factory=list)
    tokenize_requests: list[dict[str, Any]] = field(default_factory=list)
    #: (path, JSON body) of every rerank, score and /pooling request.
    score_requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    models_calls: int = 0

    def __post_init__(self) -> None:
        self._settings: FakeServerConfig | None = None
        r = self.router
        self.embed_route = r.post(f"{self.base}/v1/embeddings").mock(side_effect=self._embeddings)
        r.get(f"{self.base}/v1/models").mock(side_effect=self._models)
        r.post(f"{self.base}/tokenize").mock(side_effect=self._tokenize)
        r.get(f"{self.base}/health").mock(side_effect=self._answer)
        r.get(f"{self.base}/version").mock(side_effect=self._answer)
        for path in ("/rerank", "/v1/rerank", "/v2/rerank", "/score", "/v1/score", "/pooling"):
            r.post(f"{self.base}{path}").mock(side_effect=self._scored)

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (``.../v1``)."""
        return self.base + "/v1"

    def _config(self) -> FakeServerConfig:
        served = list(self.models) if self.models is not None else [self.model]
        return FakeServerConfig(
            dim=self.dim,
            model=served[0] if self.models is not None else self.model,
            models=served,
            encodings=list(self.encodings),
            api_key=self.api_key,
            max_model_len=self.max_model_len or 2**20,
            list_max_model_len=self.max_model_len is not None,
            matryoshka=self.matryoshka,
            tokenize=self.tokenize,
            health=self.health,
            ignore_unknown_encoding=self.ignore_unknown_encoding,
            version=self.version,
            rerank=self.rerank,
            pooling_task=self.pooling_task,
            chat_template=self.chat_template,
            multimodal=self.multimodal,
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        """The fake's answer, for the settings as they are now (a test may change them)."""
        self.requests.append(request)
        settings = self._config()
        if settings != self._settings:
            self._settings = settings
            self.fake = InProcessFakeVLLM(settings)
        return _respond(self.fake, request)

    def _scored(self, request: httpx.Request) -> httpx.Response:
        self.score_requests.append((request.url.path, json.loads(request.content)))
        return self._answer(request)

    def _models(self, request: httpx.Request) -> httpx.Response:
        self.models_calls += 1
        return self._answer(request)

    def _tokenize(self, request: httpx.Request) -> httpx.Response:
        if self.tokenize:
            self.tokenize_requests.append(json.loads(request.content))
        return self._answer(request)

    def _embeddings(self, request: httpx.Request) -> httpx.Response:
        n = len(self.embed_requests)
        self.embed_requests.append(json.loads(request.content))
        hook = self.hooks.get(n)
        if hook is not None:
            answer = hook(request)
            if answer is not None:
                self.requests.append(request)
                return answer
        return self._answer(request)


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
    """A vLLM JSON response (``float`` lists or ``base64`` little-endian float32)."""
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
