"""Retry decisions, table-driven: what is retried, how long to wait, when to stop."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from vllm_embed import (
    APIConnectionError,
    APITimeoutError,
    NoHealthyEndpointError,
    RetryPolicy,
    ServerError,
)
from vllm_embed._retry import (
    RetryableStatus,
    Sleep,
    backoff_delay,
    is_retryable_exception,
    is_retryable_status,
    parse_retry_after,
    retrying,
    should_stop,
    wait_for,
)

STATUS_TABLE = [
    (200, False),
    (400, False),
    (401, False),
    (403, False),
    (404, False),
    (408, True),
    (409, True),
    (413, False),
    (422, False),
    (429, True),
    (500, True),
    (502, True),
    (503, True),
    (504, True),
    (599, True),
]


@pytest.mark.parametrize(("status", "retry"), STATUS_TABLE)
def test_is_retryable_status(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def _server_error() -> ServerError:
    return ServerError("x", url="u", status_code=503)


EXC_TABLE = [
    (httpx.ConnectError("refused"), True),
    (httpx.ReadTimeout("slow"), True),
    (httpx.RemoteProtocolError("dropped"), True),
    (httpx.UnsupportedProtocol("ftp"), False),
    (APIConnectionError("x", url="u"), True),
    (APITimeoutError("x", url="u"), True),
    (NoHealthyEndpointError("x", url="u"), False),
    (RetryableStatus(_server_error(), None), True),
    (_server_error(), False),  # a final error is never retried again
    (ValueError("bug"), False),
]


@pytest.mark.parametrize(("exc", "retry"), EXC_TABLE)
def test_is_retryable_exception(exc: BaseException, retry: bool) -> None:
    assert is_retryable_exception(exc) is retry


NOW = 1_700_000_000.0
HTTP_DATE = email.utils.formatdate(NOW + 30, usegmt=True)

RETRY_AFTER_TABLE = [
    ({}, None),
    ({"retry-after": "5"}, 5.0),
    ({"retry-after": " 1.5 "}, 1.5),
    ({"retry-after": "0"}, 0.0),
    ({"retry-after": "-3"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": HTTP_DATE}, 30.0),
    ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after-ms": "x", "retry-after": "9"}, 9.0),
]


@pytest.mark.parametrize(("headers", "seconds"), RETRY_AFTER_TABLE)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    got = parse_retry_after(headers, now=NOW)
    if seconds is None:
        assert got is None
    else:
        assert got == pytest.approx(seconds, abs=1.0 if "GMT" in str(headers) else 1e-9)


POLICY = RetryPolicy(initial_delay=0.5, max_delay=8.0, backoff_factor=2.0, jitter=0.25)

BACKOFF_TABLE = [
    # attempt, rand, expected
    (1, 0.5, 0.5),
    (2, 0.5, 1.0),
    (3, 0.5, 2.0),
    (4, 0.5, 4.0),
    (5, 0.5, 8.0),
    (9, 0.5, 8.0),  # capped at max_delay
    (1, 0.0, 0.375),  # -25 % jitter
    (1, 1.0, 0.625),  # +25 % jitter
    (9, 1.0, 10.0),  # jitter applies after the cap
]


@pytest.mark.parametrize(("attempt", "rand", "delay"), BACKOFF_TABLE)
def test_backoff_delay(attempt: int, rand: float, delay: float) -> None:
    assert backoff_delay(attempt, POLICY, rand) == pytest.approx(delay)


def test_wait_for_prefers_retry_after() -> None:
    exc = RetryableStatus(_server_error(), 3.0)
    assert wait_for(exc, 1, POLICY, 0.5) == 3.0
    assert wait_for(RetryableStatus(_server_error(), None), 2, POLICY, 0.5) == 1.0
    assert wait_for(httpx.ConnectError("x"), 3, POLICY, 0.5) == 2.0


STOP_TABLE = [
    # attempt, elapsed, upcoming wait, max_attempts, total -> stop?
    (1, 0.0, 0.5, 5, 120.0, False),
    (4, 10.0, 4.0, 5, 120.0, False),
    (5, 10.0, 4.0, 5, 120.0, True),  # attempts used up
    (2, 100.0, 30.0, 5, 120.0, True),  # a Retry-After past the deadline: give up now
    (2, 100.0, 20.0, 5, 120.0, False),
    (1, 0.0, 0.0, 1, 120.0, True),  # max_attempts=1: no retries
]


@pytest.mark.parametrize(("attempt", "elapsed", "wait", "attempts", "total", "stop"), STOP_TABLE)
def test_should_stop(
    attempt: int, elapsed: float, wait: float, attempts: int, total: float, stop: bool
) -> None:
    policy = RetryPolicy(max_attempts=attempts, total_timeout=total)
    assert should_stop(attempt, elapsed, wait, policy) is stop


def _drive(steps, sleeps: list[float]):
    """Run a generator of steps the way the twins do: record each Sleep, answer the rest."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Sleep):
                sleeps.append(step.seconds)
            step = steps.send(None)
    except StopIteration as done:
        return done.value


def _attempts(outcomes: list[BaseException | str], calls: list[int]):
    """``attempt()`` factories for :func:`retrying`: each attempt makes one request step,
    then raises or returns the next outcome."""

    def attempt():
        calls.append(1)
        yield "request"
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt


def test_retrying_retries_then_reraises_the_last_error() -> None:
    sleeps: list[float] = []
    seen: list[float] = []
    calls: list[int] = []
    attempt = _attempts([RetryableStatus(_server_error(), 0.125)], calls)
    steps = retrying(attempt, RetryPolicy(max_attempts=3), on_retry=lambda e, w: seen.append(w))
    with pytest.raises(RetryableStatus):
        _drive(steps, sleeps)
    assert len(calls) == 3
    assert sleeps == [0.125, 0.125]
    assert seen == [0.125, 0.125]


def test_retrying_does_not_retry_final_errors() -> None:
    calls: list[int] = []
    sleeps: list[float] = []
    with pytest.raises(ValueError):
        _drive(retrying(_attempts([ValueError("no")], calls), RetryPolicy()), sleeps)
    assert len(calls) == 1 and sleeps == []


def test_retrying_first_attempt_and_backoff() -> None:
    sleeps: list[float] = []
    calls: list[int] = []
    assert _drive(retrying(_attempts(["done"], calls), POLICY), sleeps) == "done"
    assert len(calls) == 1 and sleeps == []

    calls.clear()
    refused = httpx.ConnectError("refused")
    policy = RetryPolicy(max_attempts=4, initial_delay=1.0, jitter=0.0)
    outcomes: list[BaseException | str] = [refused, refused, refused, "up"]
    assert _drive(retrying(_attempts(outcomes, calls), policy), sleeps) == "up"
    # The first failure counts as attempt 1: exactly 4 calls and backoff 1, 2, 4.
    assert len(calls) == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_retrying_gives_up_after_max_attempts() -> None:
    calls: list[int] = []
    down = [httpx.ConnectError("refused")]
    with pytest.raises(httpx.ConnectError):
        _drive(retrying(_attempts(down, calls), RetryPolicy(max_attempts=3, initial_delay=0)), [])
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(httpx.ConnectError):
        _drive(retrying(_attempts(down, calls), RetryPolicy.none()), [])
    assert len(calls) == 1


def test_retrying_stops_at_the_total_timeout() -> None:
    """The clock starts with the first attempt; no attempt starts past total_timeout."""
    now = [0.0]
    calls: list[int] = []
    policy = RetryPolicy(max_attempts=10, initial_delay=4.0, jitter=0.0, total_timeout=10.0)
    steps = retrying(
        _attempts([httpx.ConnectError("refused")], calls), policy, clock=lambda: now[0]
    )
    sleeps: list[float] = []
    with pytest.raises(httpx.ConnectError):
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    sleeps.append(step.seconds)
                    now[0] += step.seconds
                step = steps.send(None)
        except StopIteration:
            pass
    # Waits 4 then 8 would start the third attempt at 12 s > 10 s: two attempts only.
    assert sleeps == [4.0]
    assert len(calls) == 2
