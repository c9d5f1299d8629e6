"""Turn an HTTP error response into the right error class, with a message saying what to do.

Pure functions (no I/O): :func:`error_from_response` is table-tested in
``tests/core/test_http_errors.py``.
"""

from __future__ import annotations

import re
from typing import Any

from vllm_embed._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    DimensionsNotSupportedError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = ["error_from_response", "error_message", "is_model_not_found"]

_LIMIT_RE = re.compile(r"maximum (?:context|input) length is (\d+)", re.IGNORECASE)
_MAX_BODY_IN_MESSAGE = 300


def error_message(body: Any) -> str:
    """The human message inside an error body, whatever its shape.

    Handles OpenAI's ``{"error": {"message": ...}}``, vLLM's older flat
    ``{"message": ..., "type": ...}``, vLLM's auth ``{"error": "Unauthorized"}``, FastAPI's
    ``{"detail": ...}`` and TEI's ``{"error": "...", "error_type": ...}``.
    """
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if body.get("message"):
            return str(body["message"])
        if "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list):
                return "; ".join(
                    str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
                )
            return str(detail)
        return str(body)[:_MAX_BODY_IN_MESSAGE]
    if body is None:
        return ""
    return str(body)[:_MAX_BODY_IN_MESSAGE]


def _param(body: Any) -> str | None:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("param"), str):
            return str(err["param"])
        if isinstance(body.get("param"), str):
            return str(body["param"])
    return None


def is_context_length(status: int, body: Any) -> bool:
    """400 meaning "input longer than the model's context"."""
    if status != 400:
        return False
    if _param(body) == "input_tokens":
        return True
    msg = error_message(body).lower()
    return "maximum context length" in msg or "input_tokens" in msg or "too long" in msg


def is_dimensions_refused(status: int, body: Any) -> bool:
    """400 meaning "this model does not support ``dimensions``" (not Matryoshka)."""
    if status not in (400, 422):
        return False
    msg = error_message(body).lower()
    return "matryoshka" in msg or ("dimensions" in msg and "support" in msg)


def is_model_not_found(status: int, body: Any) -> bool:
    """404 about the model (not a 404 for a wrong path)."""
    if status != 404:
        return False
    msg = error_message(body).lower()
    return "model" in msg


def error_from_response(
    status: int,
    body: Any,
    *,
    url: str,
    request_id: str | None = None,
    model: str | None = None,
    available: list[str] | None = None,
    max_model_len: int | None = None,
    input_index: int | None = None,
) -> APIStatusError:
    """The error to raise for an HTTP error ``status`` with response ``body`` from ``url``."""
    msg = error_message(body)
    common: dict[str, Any] = {
        "url": url,
        "status_code": status,
        "body": body,
        "request_id": request_id,
    }
    said = f" The server said: {msg}" if msg else ""
    if status == 400 or status == 422:
        if is_context_length(400, body) and status == 400:
            limit = max_model_len
            m = _LIMIT_RE.search(msg)
            if m:
                limit = int(m.group(1))
            where = f"Input {input_index}" if input_index is not None else "An input"
            lim = f"the model's limit of {limit} tokens" if limit else "the model's context length"
            return ContextLengthError(
                f"{where} is longer than {lim} (server {url}). Shorten it, or let the client "
                "cut it: use truncate='end' (the default), which sends vLLM's "
                "truncate_prompt_tokens." + said,
                max_model_len=limit,
                input_index=input_index,
                **common,
            )
        if is_dimensions_refused(status, body):
            name = f"Model {model!r}" if model else "The model"
            return DimensionsNotSupportedError(
                f"{name} on {url} does not accept `dimensions` (vLLM only allows it for "
                "Matryoshka models). Either start vLLM with "
                "--hf-overrides '{\"is_matryoshka\": true}' (only if the model really was trained "
                "Matryoshka-style), drop dimensions=..., or pass client_side_dimensions=True to "
                "truncate and re-normalise on the client." + said,
                **common,
            )
        return BadRequestError(
            f"The server at {url} rejected the request ({status}).{said}", **common
        )
    if status in (401, 403):
        return AuthenticationError(
            f"The server at {url} refused the API key ({status}"
            f"{': ' + msg if msg else ''}). Pass api_key=... or set VLLM_EMBED_API_KEY / "
            "VLLM_API_KEY to the key the server was started with (vllm serve --api-key).",
            **common,
        )
    if status == 404:
        if is_model_not_found(status, body):
            served = ", ".join(available) if available else "(could not list them)"
            return ModelNotFoundError(
                f"Model {model!r} is not served by {url}. Served models: {served}. "
                "Pass one of them as model=..., or leave model unset when the server serves "
                "exactly one." + said,
                available=available,
                **common,
            )
        return APIStatusError(
            f"{url} answered 404 Not Found. Check that base_url is the server's OpenAI-style "
            "URL ending in /v1 and that the server serves embeddings (vllm serve --runner "
            "pooling)." + said,
            **common,
        )
    if status == 429:
        return RateLimitError(
            f"The server at {url} kept answering 429 Too Many Requests after all retries. "
            "Lower max_concurrency or batch_size, or raise RetryPolicy.total_timeout." + said,
            **common,
        )
    if status >= 500:
        return ServerError(
            f"The server at {url} failed with {status} after all retries. Check the server's "
            "log; if it ran out of memory, lower batch_size or max_tokens_per_request." + said,
            **common,
        )
    return APIStatusError(f"The server at {url} answered {status}.{said}", **common)
