"""The fake server's configuration (sent to the child process as JSON) and the request,
answer and error types its routes share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_ENCODINGS = ("float", "base64", "bytes", "bytes_only")


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
