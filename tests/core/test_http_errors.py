"""Error mapping, table-driven: (status, body) -> error class, and messages say what to do."""

from __future__ import annotations

from typing import Any

import pytest

from vllm_embed import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    DimensionsNotSupportedError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)
from vllm_embed._http_errors import error_from_response, error_message

URL = "http://gpu-1:8000/v1"

CTX_BODY = {
    "error": {
        "message": "This model's maximum context length is 256 tokens. However, your prompt "
        "contains at least 257 input tokens.",
        "type": "BadRequestError",
        "param": "input_tokens",
        "code": 400,
    }
}
MATRYOSHKA_BODY = {
    "error": {
        "message": "Model 'minilm' does not support Matryoshka embeddings; dimensions must be "
        "unset (received dimensions=128)",
        "type": "BadRequestError",
        "code": 400,
    }
}
NOT_FOUND_BODY = {
    "error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "code": 404}
}

# status, body, expected class, words the message must contain
TABLE: list[tuple[int, Any, type[APIStatusError], list[str]]] = [
    (400, CTX_BODY, ContextLengthError, ["256 tokens", "truncate='end'"]),
    (
        400,
        {"object": "error", "message": "maximum context length is 512 tokens", "param": None},
        ContextLengthError,
        ["512"],
    ),
    (
        400,
        MATRYOSHKA_BODY,
        DimensionsNotSupportedError,
        ["--hf-overrides", "is_matryoshka", "client_side_dimensions"],
    ),
    (
        400,
        {"error": {"message": "You must pass at least one prompt"}},
        BadRequestError,
        ["at least one prompt"],
    ),
    (
        422,
        {"detail": [{"msg": "field required", "loc": ["body", "input"]}]},
        BadRequestError,
        ["field required"],
    ),
    (
        401,
        {"error": "Unauthorized"},
        AuthenticationError,
        ["Unauthorized", "api_key", "VLLM_API_KEY"],
    ),
    (403, "forbidden", AuthenticationError, ["api_key"]),
    (404, NOT_FOUND_BODY, ModelNotFoundError, ["Served models: a, b", "model="]),
    (404, {"detail": "Not Found"}, APIStatusError, ["/v1", "--runner pooling"]),
    (429, {"error": {"message": "slow down"}}, RateLimitError, ["max_concurrency"]),
    (500, "Internal Server Error", ServerError, ["server's log"]),
    (503, {"error": {"message": "overloaded"}}, ServerError, ["overloaded"]),
    (418, "teapot", APIStatusError, ["418"]),
]


@pytest.mark.parametrize(("status", "body", "cls", "words"), TABLE)
def test_error_from_response(status: int, body: Any, cls: type, words: list[str]) -> None:
    err = error_from_response(
        status, body, url=URL, request_id="req-1", model="nope", available=["a", "b"]
    )
    assert type(err) is cls
    assert err.status_code == status
    assert err.body == body
    assert err.request_id == "req-1"
    assert err.url == URL
    for word in words:
        assert word in str(err), (word, str(err))


def test_context_length_error_carries_limit_and_index() -> None:
    err = error_from_response(400, CTX_BODY, url=URL, input_index=7)
    assert isinstance(err, ContextLengthError)
    assert err.max_model_len == 256
    assert err.input_index == 7
    assert "Input 7" in str(err)


def test_model_not_found_lists_available() -> None:
    err = error_from_response(404, NOT_FOUND_BODY, url=URL, model="nope", available=["minilm"])
    assert isinstance(err, ModelNotFoundError)
    assert err.available == ["minilm"]
    assert "'nope'" in str(err) and "minilm" in str(err)


MESSAGE_TABLE = [
    ({"error": {"message": "m1"}}, "m1"),
    ({"error": "Unauthorized"}, "Unauthorized"),
    ({"message": "flat", "type": "BadRequestError"}, "flat"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"detail": [{"msg": "a"}, {"msg": "b"}]}, "a; b"),
    ("plain text", "plain text"),
    (None, ""),
]


@pytest.mark.parametrize(("body", "message"), MESSAGE_TABLE)
def test_error_message_shapes(body: Any, message: str) -> None:
    assert error_message(body) == message
