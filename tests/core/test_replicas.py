"""Slow and failing replicas, against real fake servers (own processes, real HTTP), both
twins: hedged small calls, the cap per endpoint, a hung replica taken out and let back in."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from vllm_embed import ConfigValueError, EmbeddingClient, RetryPolicy, Timeout
from vllm_embed._hedge import HedgeDelay
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

pytestmark = pytest.mark.enable_socket

DIM = 16
SLOW = 0.8  # seconds the slow replica takes for every embedding request


@pytest.fixture(autouse=True)
def _default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real servers: the default (lean) transport, unless a test asks for httpx."""
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP", raising=False)


@pytest.fixture(scope="module")
def slow_and_fast() -> Iterator[tuple[FakeEmbeddingServer, FakeEmbeddingServer]]:
    with (
        FakeEmbeddingServer(dim=DIM, delay=SLOW) as slow,
        FakeEmbeddingServer(dim=DIM) as fast,
    ):
        yield slow, fast


@pytest.fixture(scope="module")
def delayed_pair() -> Iterator[tuple[FakeEmbeddingServer, FakeEmbeddingServer]]:
    """Two replicas that take 0.1 s per request (so the fake counts requests in flight)."""
    with (
        FakeEmbeddingServer(dim=DIM, delay=0.1) as a,
        FakeEmbeddingServer(dim=DIM, delay=0.1) as b,
    ):
        yield a, b


def _served(*servers: FakeEmbeddingServer) -> int:
    return sum(s.requests_served for s in servers)


def _query_vector(text: str) -> np.ndarray:
    return fake_vector(text, DIM)


@pytest.mark.parametrize("transport", ["lean", "httpx"])
def test_a_hedged_query_is_answered_by_the_fast_replica(
    slow_and_fast, make_client, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if transport == "httpx":
        monkeypatch.setenv("VLLM_EMBED_LEAN_HTTP", "0")
    slow, fast = slow_and_fast
    before_slow, before_fast = slow.requests_served, fast.requests_served
    c = make_client(
        [slow.base_url, fast.base_url], model="fake-model", hedge=True, instructions=None
    )
    for i in range(4):
        started = time.perf_counter()
        vector = c.embed_query(f"query {i}")
        assert time.perf_counter() - started < SLOW  # never waited for the slow one
        np.testing.assert_allclose(vector, _query_vector(f"query {i}"), rtol=1e-6)
    hedges = c.stats.hedges
    # The calls whose request went to the slow replica (at least the first call or the
    # second: ties rotate; later the slow one is busy with its ignored request, so it gets
    # none while the fast one has fewer in flight) were each hedged, and the duplicate won.
    assert hedges >= 1
    assert c.stats.hedges_won == hedges  # ... and each time the duplicate won
    assert slow.requests_served - before_slow == hedges
    assert fast.requests_served - before_fast == 4
    assert c.stats.requests == 4 + hedges
    if not c.is_async:
        time.sleep(SLOW)  # the sync losers have their (ignored) answers by now
    hedge = c.client._hedge
    assert hedge is not None and max(hedge._samples) < SLOW / 2  # winners' times only


def test_hedging_off_sends_no_duplicate(slow_and_fast, make_client) -> None:
    slow, fast = slow_and_fast
    before = _served(slow, fast)
    c = make_client([slow.base_url, fast.base_url], model="fake-model", instructions=None)
    took = []
    for i in range(2):
        started = time.perf_counter()
        c.embed_query(f"off {i}")
        took.append(time.perf_counter() - started)
    assert max(took) >= SLOW  # one call waited for the slow replica ...
    assert _served(slow, fast) - before == 2  # ... and nothing else was sent
    assert c.stats.hedges == 0


def test_batch_embedding_is_not_hedged(slow_and_fast, make_client) -> None:
    slow, fast = slow_and_fast
    before = _served(slow, fast)
    c = make_client(
        [slow.base_url, fast.base_url],
        model="fake-model",
        hedge=0.01,
        batch_size=4,
        max_concurrency=4,
    )
    texts = [f"doc {i}" for i in range(16)]
    np.testing.assert_allclose(c.embed(texts), [fake_vector(t, DIM) for t in texts], rtol=1e-6)
    assert _served(slow, fast) - before == 4
    assert c.stats.hedges == 0


def test_a_single_endpoint_is_never_hedged(delayed_pair, make_client) -> None:
    only = delayed_pair[0]
    before = only.requests_served
    c = make_client(only.base_url, model="fake-model", hedge=0.01)
    for i in range(2):
        c.embed_query(f"q{i}")
    assert only.requests_served - before == 2
    assert c.stats.hedges == 0


def test_a_hung_replica_is_taken_out_and_let_back_in(slow_and_fast, make_client) -> None:
    good = slow_and_fast[1]
    # The hung replica never answers its first two requests (then it has recovered).
    with FakeEmbeddingServer(dim=DIM, fail_after=0, fail_mode="hang", fail_count=2) as hung:
        c = make_client(
            [good.base_url, hung.base_url],
            model="fake-model",
            timeout=Timeout(total=0.6, connect=2.0),
            retry=RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=0.0),
        )
        clock = [1000.0]
        c._pool._clock = lambda: clock[0]
        ep = c._pool.endpoints[1]
        for i in range(6):  # every call is answered: a timeout fails over to the good one
            np.testing.assert_allclose(c.embed_query(f"q{i}"), fake_vector(f"q{i}", DIM))
            if ep.down_until:
                break
        assert c.stats.endpoints_ejected == 1 and ep.down_until > clock[0]
        assert hung.stats()["failures"] == 2
        for i in range(4):  # out of rotation during its cool-down
            c.embed_query(f"r{i}")
        assert hung.requests_served == 0 and c.stats.half_open_probes == 0
        clock[0] = ep.down_until + 0.1  # cool-down over: one trial request, which succeeds
        for i in range(4):
            c.embed_query(f"s{i}")
        assert c.stats.half_open_probes == 1
        assert (ep.down_until, ep.failures, ep.timeouts) == (0.0, 0, 0)
        assert hung.requests_served >= 2  # the trial, then its share again


def test_the_cap_per_endpoint_is_never_exceeded(delayed_pair, make_client) -> None:
    a, b = delayed_pair
    before = a.requests_served + b.requests_served
    c = make_client(
        [a.base_url, b.base_url],
        model="fake-model",
        batch_size=1,
        max_concurrency=8,
        max_in_flight_per_endpoint=2,
    )
    texts = [f"t{i}" for i in range(16)]
    started = time.perf_counter()
    np.testing.assert_allclose(c.embed(texts), [fake_vector(t, DIM) for t in texts])
    assert time.perf_counter() - started >= 16 / 4 * 0.1 * 0.9  # 4 at a time, not 8
    # The servers' high-water marks over their whole life (every test that used them).
    assert [s.stats()["max_in_flight"] for s in (a, b)] == [2, 2]
    assert a.requests_served + b.requests_served - before == 16


def test_the_learned_hedge_delay() -> None:
    learned = HedgeDelay(initial=0.05, floor=0.001, min_samples=10)
    assert learned.delay() == 0.05  # nothing learned yet
    for ms in range(1, 101):
        learned.record(ms / 1000)
    assert 0.090 <= learned.delay() <= 0.096  # the p95 of 1..100 ms (refreshed every 8)
    fast = HedgeDelay(floor=0.002, min_samples=10)
    for _ in range(20):
        fast.record(0.0001)
    assert fast.delay() == 0.002  # never below the floor
    fixed = HedgeDelay(0.3)
    fixed.record(10.0)
    assert fixed.delay() == 0.3


@pytest.mark.parametrize("bad", [0, -1.0, "yes", float("nan")])
def test_bad_hedge_settings(bad: object) -> None:
    with pytest.raises(ConfigValueError, match="hedge must be"):
        EmbeddingClient(["http://a/v1", "http://b/v1"], hedge=bad)  # type: ignore[arg-type]


def test_hedge_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_EMBED_HEDGE", "on")
    with EmbeddingClient(["http://a/v1", "http://b/v1"]) as c:
        assert c._hedge is not None and c._hedge.fixed is None
    monkeypatch.setenv("VLLM_EMBED_HEDGE", "off")
    with EmbeddingClient(["http://a/v1", "http://b/v1"]) as c:
        assert c._hedge is None
    monkeypatch.setenv("VLLM_EMBED_HEDGE", "maybe")
    with pytest.raises(ConfigValueError, match="VLLM_EMBED_HEDGE"):
        EmbeddingClient(["http://a/v1", "http://b/v1"])


def test_hedge_and_cap_from_a_config_file(tmp_path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        '[embedding]\nbase_url = ["http://a/v1", "http://b/v1"]\n'
        "hedge = 0.02\nmax_in_flight_per_endpoint = 3\n"
    )
    with EmbeddingClient.from_config(path) as c:
        assert c._hedge is not None and c._hedge.delay() == 0.02
        assert c._pool.max_in_flight == 3


def test_a_hedged_call_fails_over_from_a_refused_connection(slow_and_fast, make_client) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    fast = slow_and_fast[1]
    # The dead one second: discovery (the first healthy endpoint) goes to the live one, and
    # the first embedding request (ties rotate) to the dead one, through the hedged path.
    c = make_client([fast.base_url, dead], model="fake-model", hedge=True, instructions=None)
    c.model_name(), c.max_model_len()
    assert c.stats.endpoints_ejected == 0
    for i in range(3):
        np.testing.assert_allclose(c.embed_query(f"f{i}"), fake_vector(f"f{i}", DIM), rtol=1e-6)
    assert c.stats.endpoints_ejected == 1  # refused once, then left alone
    assert c._pool.endpoints[1].down_until > 0 and c.stats.hedges == 0
    assert c.stats.requests == 4  # the refused one, sent on at once, and two more


_EXIT_SCRIPT = """
import sys, time
from vllm_embed import EmbeddingClient
client = EmbeddingClient(sys.argv[1:], model="fake-model", hedge=0.05, timeout=60)
for i in range(2):  # ties rotate: one of the two goes to the stuck replica first
    started = time.perf_counter()
    client.embed_query(f"q{i}")
    assert time.perf_counter() - started < 5
assert client.stats.hedges_won == 1, client.stats
print("answered")
"""


def test_a_sync_loser_on_a_stuck_replica_does_not_hold_the_exit() -> None:
    """The process ends right after its last answer, not when the ignored request to a
    replica that takes 30 s would (the loser's thread is a daemon; the client unclosed)."""
    with (
        FakeEmbeddingServer(dim=DIM, delay=30.0) as stuck,
        FakeEmbeddingServer(dim=DIM) as fast,
    ):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_SCRIPT, stuck.base_url, fast.base_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "answered"
        assert time.perf_counter() - started < 15


def test_hedge_threads_end_with_a_client_collected_unclosed(slow_and_fast) -> None:
    slow, fast = slow_and_fast
    client = EmbeddingClient([fast.base_url, slow.base_url], model="fake-model", hedge=0.01)
    for i in range(2):
        client.embed_query(f"gc {i}")
    assert client.stats.hedges >= 1
    del client
    gc.collect()
    deadline = time.monotonic() + SLOW + 2  # a loser ends with its answer
    while any(t.name.startswith("vllm-embed-hedge") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "hedge threads left running"
        time.sleep(0.05)
