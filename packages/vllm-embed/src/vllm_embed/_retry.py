"""Retry decisions as small pure functions, plus the tenacity glue that uses them.

What is retried: connection failures and timeouts (``httpx.TransportError`` and the
client's :class:`~vllm_embed.APIConnectionError` made from it), and the
statuses 408, 409, 429 and every 5xx. Every other 4xx is final: repeating a bad request
cannot fix it. The wait before attempt ``n + 1`` is ``Retry-After`` when the server sent
one, else exponential backoff with jitter; retrying stops after ``max_attempts`` or when
the next attempt would start after ``total_timeout`` seconds.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import tenacity

from vllm_embed import _constants as C
from vllm_embed._errors import APIConnectionError, APIStatusError, NoHealthyEndpointError
from vllm_embed._types import RetryPolicy

T = TypeVar("T")

__all__ = [
    "RetryableStatus",
    "acall_with_retries",
    "backoff_delay",
    "call_with_retries",
    "is_retryable_exception",
    "is_retryable_status",
    "make_async_retrying",
    "make_retrying",
    "parse_retry_after",
]


def is_retryable_status(status: int) -> bool:
    """True for the HTTP statuses worth another attempt: 408, 409, 429 and 5xx."""
    return status in C.RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None.

    Reads ``retry-after-ms`` (milliseconds, sent by some OpenAI-compatible servers), then
    ``Retry-After`` as delta-seconds or as an HTTP date. Negative or unparsable values give
    None (fall back to backoff).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = -1.0
        if ms >= 0:
            return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    return seconds if seconds >= 0 else None


def backoff_delay(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Delay after failed attempt number ``attempt`` (1-based) without a Retry-After.

    ``rand`` is a number in [0, 1) that spreads the delay by ``±policy.jitter``.
    """
    base = policy.initial_delay * policy.backoff_factor ** max(0, attempt - 1)
    base = min(base, policy.max_delay)
    spread = 1.0 + policy.jitter * (2.0 * rand - 1.0)
    return max(0.0, base * spread)


class RetryableStatus(Exception):
    """Internal: a response with a retryable status. Carries the error to raise at the end."""

    def __init__(self, error: APIStatusError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def is_retryable_exception(exc: BaseException) -> bool:
    """True for failures worth another attempt (see the module docstring)."""
    if isinstance(exc, RetryableStatus):
        return True
    if isinstance(exc, APIConnectionError):
        return not isinstance(exc, NoHealthyEndpointError)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return False
    return isinstance(exc, httpx.TransportError)


def wait_for(exc: BaseException | None, attempt: int, policy: RetryPolicy, rand: float) -> float:
    """The wait before the next attempt: Retry-After when given, else :func:`backoff_delay`."""
    if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
        return exc.retry_after
    return backoff_delay(attempt, policy, rand)


def should_stop(attempt: int, elapsed: float, upcoming_wait: float, policy: RetryPolicy) -> bool:
    """True when no further attempt may be made (attempts used up or past the deadline)."""
    if attempt >= policy.max_attempts:
        return True
    return elapsed + upcoming_wait > policy.total_timeout


def _tenacity_kwargs(
    policy: RetryPolicy, on_retry: Callable[[BaseException | None, float], None] | None
) -> dict[str, Any]:
    def wait(rs: tenacity.RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        return wait_for(exc, rs.attempt_number, policy, random.random())

    def stop(rs: tenacity.RetryCallState) -> bool:
        elapsed = rs.seconds_since_start or 0.0
        return should_stop(rs.attempt_number, elapsed, rs.upcoming_sleep, policy)

    def before_sleep(rs: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            exc = rs.outcome.exception() if rs.outcome is not None else None
            on_retry(exc, rs.upcoming_sleep)

    return {
        "stop": stop,
        "wait": wait,
        "retry": tenacity.retry_if_exception(is_retryable_exception),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def make_retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException | None, float], None] | None = None,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for the sync client."""
    return tenacity.Retrying(sleep=sleep, **_tenacity_kwargs(policy, on_retry))


def make_async_retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Any] | None = None,
    on_retry: Callable[[BaseException | None, float], None] | None = None,
) -> tenacity.AsyncRetrying:
    """A tenacity ``AsyncRetrying`` for the async client."""
    kwargs = _tenacity_kwargs(policy, on_retry)
    if sleep is not None:
        kwargs["sleep"] = sleep
    return tenacity.AsyncRetrying(**kwargs)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException | None, float], None] | None = None,
) -> T:
    """Call ``fn`` under ``policy``.

    The first attempt runs without tenacity (the common case costs one function call);
    only after a retryable failure does tenacity take over, replaying that failure as its
    own first attempt so the attempt count and backoff stay exact. (The total-time bound
    then starts after the first attempt.)
    """
    try:
        return fn()
    except Exception as exc:
        if policy.max_attempts == 1 or not is_retryable_exception(exc):
            raise
        first: BaseException | None = exc

    def replay() -> T:
        nonlocal first
        if first is not None:
            exc, first = first, None
            raise exc
        return fn()

    return make_retrying(policy, sleep=sleep, on_retry=on_retry)(replay)


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Any] | None = None,
    on_retry: Callable[[BaseException | None, float], None] | None = None,
) -> T:
    """The asyncio twin of :func:`call_with_retries`."""
    try:
        return await fn()
    except Exception as exc:
        if policy.max_attempts == 1 or not is_retryable_exception(exc):
            raise
        first: BaseException | None = exc

    async def replay() -> T:
        nonlocal first
        if first is not None:
            exc, first = first, None
            raise exc
        return await fn()

    result: T = await make_async_retrying(policy, sleep=sleep, on_retry=on_retry)(replay)
    return result
