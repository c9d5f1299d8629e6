"""Truncation policy: truncate_prompt_tokens = max_model_len - 1, exact counts, errors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from vllm_embed import ContextLengthError, RetryPolicy
from vllm_embed_testing.respx_vllm import FakeServer, fake_tokens

# The fake server: max_model_len 64, one token per word + 2 specials.
SHORT = "a few short words"
LONG = " ".join(["w"] * 80)  # 82 tokens > 63
EXACT = " ".join(["w"] * 62)  # 64 tokens: over the client's limit of 63 (vLLM issue 29496)
FITS = " ".join(["w"] * 61)  # 63 tokens: fits


def test_end_sends_truncate_prompt_tokens_and_counts_exactly(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url)
    info = c.embed_with_info([SHORT, LONG, FITS, EXACT])
    assert info.vectors.shape == (4, 8)
    assert info.truncated == 2
    assert info.truncated_indices == [1, 3]
    assert info.truncation_exact is True
    body = srv.embed_requests[0]
    assert body["truncate_prompt_tokens"] == 63
    assert body["truncation_side"] == "right"
    # Only inputs that could possibly exceed the limit were tokenized (SHORT was not).
    assert sorted(r["prompt"] for r in srv.tokenize_requests) == sorted([LONG, FITS, EXACT])
    assert all(r["add_special_tokens"] is True for r in srv.tokenize_requests)
    assert c.stats.truncated == 2


def test_short_inputs_never_call_tokenize(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url)
    c.embed([SHORT] * 10)
    assert srv.tokenize_requests == []


def test_instruction_prefix_counts_towards_the_limit(router, make_client) -> None:
    srv = FakeServer(router, model="intfloat/e5-small")
    c = make_client(srv.url)
    info = c.embed_with_info([FITS], kind="query")  # "query: " adds one word -> 64 tokens
    assert info.truncated_indices == [0]
    assert srv.tokenize_requests[0]["prompt"].startswith("query: ")


def test_error_policy_names_limit_index_and_fix(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, truncate="error")
    with pytest.raises(ContextLengthError) as info:
        c.embed([SHORT, FITS, LONG])
    err = info.value
    assert err.input_index == 2
    assert err.max_model_len == 64
    assert "Input 2" in str(err) and "82 tokens" in str(err) and "truncate='end'" in str(err)
    assert srv.embed_requests == []  # refused before sending anything
    out = c.embed([SHORT, FITS])
    assert out.shape == (2, 8)
    assert "truncate_prompt_tokens" not in srv.embed_requests[0]


def test_without_tokenize_the_count_is_an_estimate(router, make_client) -> None:
    srv = FakeServer(router, tokenize=False)
    c = make_client(srv.url)
    long_text = "x" * 400  # 400 bytes ~ 100 tokens by the estimate
    info = c.embed_with_info([SHORT, long_text, long_text])
    assert info.truncated_indices == [1, 2]
    assert info.truncation_exact is False

    def tokenize_calls() -> int:
        return sum(call.request.url.path == "/tokenize" for call in router.calls)

    # The two suspects may be counted concurrently, so the first call may ask twice
    # before either answer (404) is known; once it is, /tokenize is never asked again.
    first = tokenize_calls()
    assert 1 <= first <= 2
    c.embed_with_info([long_text])
    assert tokenize_calls() == first


def test_server_context_error_without_known_limit(router, make_client) -> None:
    """Non-vLLM servers (no max_model_len): the server's 400 becomes ContextLengthError."""
    srv = FakeServer(router, max_model_len=None)
    srv.hooks[0] = lambda req: httpx.Response(
        400,
        json={
            "error": {
                "message": "This model's maximum context length is 512 tokens. However, your "
                "prompt contains at least 600 input tokens.",
                "param": "input_tokens",
            }
        },
    )
    c = make_client(srv.url, batch_size=1, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ContextLengthError) as info:
        c.embed(["too long"])
    assert info.value.max_model_len == 512
    assert info.value.input_index == 0
    assert "truncate_prompt_tokens" not in srv.embed_requests[0]
    assert len(srv.embed_requests) == 1  # a 400 is never retried


def test_server_that_rejects_truncate_prompt_tokens(router, make_client) -> None:
    srv = FakeServer(router)
    srv.hooks[0] = lambda req: httpx.Response(
        422, json={"detail": [{"loc": ["body", "truncate_prompt_tokens"], "msg": "extra field"}]}
    )
    c = make_client(srv.url)
    np.testing.assert_equal(c.embed([SHORT]).shape, (1, 8))
    c.embed([SHORT])
    assert "truncate_prompt_tokens" in srv.embed_requests[0]
    assert "truncate_prompt_tokens" not in srv.embed_requests[1]
    assert "truncate_prompt_tokens" not in srv.embed_requests[2]


def test_fake_tokenizer_sanity() -> None:
    assert fake_tokens(EXACT) == 64 and fake_tokens(FITS) == 63 and fake_tokens(LONG) == 82
