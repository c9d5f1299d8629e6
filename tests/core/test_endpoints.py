"""Base URLs: normalisation, redaction, least-outstanding choice, cool-down and failover."""

from __future__ import annotations

import pytest

from vllm_embed import ConfigValueError
from vllm_embed._endpoints import EndpointPool, normalize_base_url
from vllm_embed._secrets import mask_url, mask_url_in
from vllm_embed._types import ClientStats


@pytest.mark.parametrize(
    ("url", "norm"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://h/proxy/v1", "https://h/proxy/v1"),
        ("https://h/proxy", "https://h/proxy/v1"),
    ],
)
def test_normalize_base_url(url: str, norm: str) -> None:
    assert normalize_base_url(url) == norm


@pytest.mark.parametrize("bad", ["", "  ", "localhost:8000", "ftp://h/v1"])
def test_bad_base_url(bad: str) -> None:
    with pytest.raises(ConfigValueError, match="base_url"):
        normalize_base_url(bad)


def test_mask_url_removes_credentials() -> None:
    assert mask_url("http://user:pw@h:8000/v1") == "http://***@h:8000/v1"
    assert mask_url("http://user:p@ss@h:8000/v1?a=b@c") == "http://***@h:8000/v1?a=b@c"
    assert mask_url("postgresql://u:pw@db:5432/x") == "postgresql://***@db:5432/x"
    assert mask_url("http://h/v1") == "http://h/v1"


def test_mask_url_in_text_hides_url_and_password() -> None:
    url = "postgresql://me:p%40ss@db:5432/x"
    assert mask_url_in(f"failed for {url} with p@ss", url) == (
        "failed for postgresql://***@db:5432/x with ***"
    )
    assert "p%40ss" not in mask_url_in(f"{url} and p%40ss", url)
    assert mask_url_in("nothing secret", "postgresql://db/x") == "nothing secret"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_root_url_and_display() -> None:
    pool = EndpointPool(["http://u:secret@a:1/v1"], ("float",))
    ep = pool.endpoints[0]
    assert ep.root_url == "http://u:secret@a:1"
    assert ep.display_url == "http://***@a:1/v1"  # the one URL masker: mask_url
    assert "secret" not in repr(ep)


def test_least_outstanding() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"], ("float",))
    got = [pool.acquire() for _ in range(6)]
    counts = {ep.base_url: sum(g is ep for g in got) for ep in pool.endpoints}
    assert set(counts.values()) == {2}
    a = pool.endpoints[0]
    pool.release(a)
    pool.release(a)
    assert pool.acquire() is a  # a has the fewest in flight now


def test_mark_down_and_cooldown() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, cooldown=2.0)
    a, b = pool.endpoints
    pool.mark_down(a)
    for _ in range(4):
        ep = pool.acquire()
        assert ep is b
        pool.release(ep)
    assert pool.first() is b
    clock.now += 2.5  # cool-down over: a is tried again
    chosen = {pool.acquire().base_url for _ in range(2)}
    assert a.base_url in chosen


def test_cooldown_doubles_and_resets() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a"], ("float",), clock=clock, cooldown=1.0, max_cooldown=3.0)
    a = pool.endpoints[0]
    pool.mark_down(a)
    assert a.down_until == 101.0
    pool.mark_down(a)
    assert a.down_until == 102.0
    pool.mark_down(a)
    assert a.down_until == 103.0  # capped
    pool.mark_up(a)
    assert a.failures == 0 and a.down_until == 0.0


def test_all_down_picks_the_one_back_soonest() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, cooldown=5.0)
    a, b = pool.endpoints
    pool.mark_down(b)
    pool.mark_down(a)
    pool.mark_down(a)
    assert pool.all_down()
    assert pool.acquire() is b


def test_duplicate_or_missing_urls() -> None:
    with pytest.raises(ConfigValueError, match="twice"):
        EndpointPool(["http://a", "http://a/v1"], ("float",))
    with pytest.raises(ConfigValueError, match="base_url"):
        EndpointPool([], ("float",))


def test_the_cap_per_endpoint_is_never_exceeded() -> None:
    pool = EndpointPool(["http://a", "http://b"], ("float",), max_in_flight=2)
    got = [pool.acquire() for _ in range(4)]
    assert all(ep is not None for ep in got)
    assert [ep.outstanding for ep in pool.endpoints] == [2, 2]
    assert pool.acquire() is None  # both at the cap: the caller waits
    a = pool.endpoints[0]
    pool.release(a)
    assert pool.acquire() is a  # the freed slot


def test_a_hedge_goes_elsewhere_or_nowhere() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, max_in_flight=1)
    a, b = pool.endpoints
    assert pool.acquire_other(a) is b
    assert pool.acquire_other(a) is None  # b is at its cap
    pool.release(b)
    pool.mark_down(b)
    assert pool.acquire_other(a) is None  # b is out: no hedge to a server that is down


def test_repeated_timeouts_eject_then_one_trial_brings_it_back() -> None:
    clock = Clock()
    stats = ClientStats()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, stats=stats)
    a, b = pool.endpoints
    pool.timed_out(a)
    assert a.down_until == 0.0  # one timeout is not enough
    pool.timed_out(a)
    assert a.down_until == 102.0 and stats.endpoints_ejected == 1
    assert {pool.acquire() for _ in range(3)} == {b}  # out of rotation
    for _ in range(3):
        pool.release(b)
    clock.now += 2.5  # the cool-down is over: half-open
    first = [pool.acquire(), pool.acquire(), pool.acquire()]
    assert first.count(a) == 1  # exactly one trial request while it is in flight
    assert a.probing and stats.half_open_probes == 1
    pool.mark_up(a)  # the trial answered: closed again
    pool.release(a)
    assert (a.down_until, a.failures, a.probing) == (0.0, 0, False)
    for ep in first:
        if ep is b:
            pool.release(b)
    assert {pool.acquire(), pool.acquire()} == {a, b}  # back in rotation
    assert stats.half_open_probes == 1


def test_a_failed_trial_reopens_with_a_longer_cooldown() -> None:
    clock = Clock()
    stats = ClientStats()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, stats=stats)
    a, _ = pool.endpoints
    pool.timed_out(a)
    pool.timed_out(a)
    clock.now = a.down_until + 0.1
    trial = None
    while trial is not a:
        trial = pool.acquire()
    pool.timed_out(a)  # one timeout of the trial is enough
    pool.release(a)
    assert a.down_until == clock.now + 4.0  # 2 s doubled
    assert (stats.endpoints_ejected, stats.half_open_probes) == (2, 1)
    assert not a.probing


def test_a_cancelled_loser_still_counts_for_a_while() -> None:
    clock = Clock()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, max_in_flight=1)
    a, b = pool.endpoints
    assert pool.acquire() is not None
    first = a if a.outstanding else b
    pool.release_cancelled(first, 1.0)
    assert first.outstanding == 0
    other = pool.acquire()
    assert other is not first  # the server may still be busy with the cancelled one
    assert pool.acquire() is None  # ... and it is at its cap until the hold ends
    clock.now += 1.5
    assert pool.acquire() is first


def test_timeouts_of_requests_sent_before_the_ejection_change_nothing() -> None:
    clock = Clock()
    stats = ClientStats()
    pool = EndpointPool(["http://a", "http://b"], ("float",), clock=clock, stats=stats)
    a, _ = pool.endpoints
    for _ in range(8):  # eight requests were in flight on the hung replica
        pool.timed_out(a)
    assert (stats.endpoints_ejected, a.failures, a.down_until) == (1, 1, 102.0)
