"""count_truncated: exact (/tokenize, concurrent), estimate (no requests), off (no count)."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
import respx

from vllm_embed import (
    AsyncEmbeddingClient,
    ConfigValueError,
    ContextLengthError,
    EmbedConfig,
    EmbeddingClient,
)
from vllm_embed_testing.respx_vllm import FakeServer, fake_tokens

# The fake server: max_model_len 64 (client limit 63), one token per word + 2 specials.
SHORT = "a few short words"  # never looked at: too short to exceed the limit
LONG_WORDS = " ".join(["w"] * 80)  # 82 tokens (really over); 159 bytes, estimate 42 (under)
LONG_BYTES = "x" * 400  # 3 tokens (really under); estimate 102 (over)


def test_exact_is_the_default_and_asks_tokenize(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url)
    info = c.embed_with_info([SHORT, LONG_WORDS, LONG_BYTES])
    assert info.truncated_indices == [1]
    assert info.truncation_exact is True
    assert sorted(r["prompt"] for r in srv.tokenize_requests) == sorted([LONG_WORDS, LONG_BYTES])


def test_estimate_sends_no_tokenize_and_says_it_estimated(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, count_truncated="estimate")
    info = c.embed_with_info([SHORT, LONG_WORDS, LONG_BYTES])
    assert srv.tokenize_requests == []
    assert info.truncated_indices == [2]  # the length estimate, not the tokenizer
    assert info.truncated == 1
    assert info.truncation_exact is False
    assert c.stats.truncated == 1
    assert srv.embed_requests[0]["truncate_prompt_tokens"] == 63  # the server still cuts


def test_off_counts_nothing_and_says_so(router, make_client) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, count_truncated="off")
    info = c.embed_with_info([SHORT, LONG_WORDS, LONG_BYTES])
    assert info.vectors.shape == (3, 8)
    assert srv.tokenize_requests == []
    assert info.truncated == 0 and info.truncated_indices == []
    assert info.truncation_exact is False  # long inputs were there, and not counted
    assert srv.embed_requests[0]["truncate_prompt_tokens"] == 63
    # Only short inputs: nothing can have been cut, so 0 is exact.
    assert c.embed_with_info([SHORT, SHORT]).truncation_exact is True


@pytest.mark.parametrize("mode", ["estimate", "off"])
def test_error_policy_without_exact_counts_leaves_the_check_to_the_server(
    router, make_client, mode: str
) -> None:
    srv = FakeServer(router)
    c = make_client(srv.url, truncate="error", count_truncated=mode, batch_size=1)
    with pytest.raises(ContextLengthError) as info:
        c.embed([SHORT, LONG_WORDS])
    assert info.value.input_index == 1
    assert srv.tokenize_requests == []
    assert "truncate_prompt_tokens" not in srv.embed_requests[-1]
    # The estimate alone never refuses an input the server would accept.
    assert c.embed([LONG_BYTES]).shape == (1, 8)


def test_bad_value_is_a_config_error() -> None:
    with pytest.raises(ConfigValueError, match="count_truncated must be 'exact', 'estimate'"):
        EmbeddingClient("http://h/v1", count_truncated="sometimes")  # type: ignore[arg-type]


def test_from_config_passes_count_truncated() -> None:
    cfg = EmbedConfig(base_urls=("http://a:8000/v1",), api_key=None, model="m")
    assert EmbeddingClient.from_config(cfg, count_truncated="off")._count_truncated == "off"
    assert AsyncEmbeddingClient.from_config(cfg)._count_truncated == "exact"


# --- /tokenize takes one prompt: the long inputs are counted concurrently ---------------

TEXTS = [" ".join([f"w{i}"] * 70) for i in range(8)]  # 8 inputs over the limit


def _count(request: httpx.Request) -> httpx.Response:
    prompt = json.loads(request.content)["prompt"]
    return httpx.Response(200, json={"count": fake_tokens(prompt)})


def test_sync_tokenize_requests_run_concurrently_within_max_concurrency(router) -> None:
    srv = FakeServer(router)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, peak
    # Four requests must be in flight together to pass (a sequential client would break
    # the barrier); the timeout only keeps a broken client from hanging the run.
    barrier = threading.Barrier(4, timeout=30)

    def tokenize(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        barrier.wait()
        with lock:
            in_flight[0] -= 1
        return _count(request)

    router.post(f"{srv.base}/tokenize").mock(side_effect=tokenize)
    with EmbeddingClient(srv.url, max_concurrency=4, retry=None) as c:
        info = c.embed_with_info(TEXTS)
    assert info.truncated_indices == list(range(8))
    assert info.truncation_exact is True
    assert in_flight[1] == 4


async def test_async_tokenize_requests_run_concurrently_within_max_concurrency() -> None:
    in_flight = [0, 0]

    async def tokenize(request: httpx.Request) -> httpx.Response:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        for _ in range(5):  # let the other workers start theirs
            await asyncio.sleep(0)
        in_flight[0] -= 1
        return _count(request)

    with respx.mock(assert_all_called=False) as router:
        srv = FakeServer(router)
        router.post(f"{srv.base}/tokenize").mock(side_effect=tokenize)
        async with AsyncEmbeddingClient(srv.url, max_concurrency=3, retry=None) as c:
            info = await c.embed_with_info(TEXTS)
    assert info.truncated_indices == list(range(8))
    assert in_flight[1] == 3
