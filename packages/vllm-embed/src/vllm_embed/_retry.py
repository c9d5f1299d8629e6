"""Retry decisions as small pure functions, and the plain loop that uses them.

What is retried: connection failures and timeouts (``httpx.TransportError`` and the
client's :class:`~vllm_embed.APIConnectionError` made from it), and the
statuses 408, 409, 429 and every 5xx. Every other 4xx is final: repeating a bad request
cannot fix it. The wait before attempt ``n + 1`` is ``Retry-After`` when the server sent
one, else exponential backoff with jitter; retrying stops after ``max_attempts`` or when
the next attempt would start more than ``total_timeout`` seconds after the first began.

:func:`retrying` is a plain loop over these functions (no tenacity: with the decisions
already pure, a loop of a dozen lines is simpler than configuring a retry library, and it
costs nothing on the first attempt). It yields :class:`Sleep` steps instead of sleeping, so
the sync and async twins share it (see ``docs/design.md``).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from vllm_embed import _constants as C
from vllm_embed._errors import (
    APIConnectionError,
    APIStatusError,
    NoHealthyEndpointError,
    TLSCertificateError,
)
from vllm_embed._types import RetryPolicy

T = TypeVar("T")

__all__ = [
    "RetryableStatus",
    "Sleep",
    "backoff_delay",
    "is_retryable_exception",
    "is_retryable_status",
    "parse_retry_after",
    "retrying",
    "should_stop",
    "wait_for",
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
        return not isinstance(exc, NoHealthyEndpointError | TLSCertificateError)
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


@dataclass(frozen=True, slots=True)
class Sleep:
    """A step of :func:`retrying`: wait this many seconds, then resume (the twin sleeps)."""

    seconds: float


def retrying(
    attempt: Callable[[], Generator[Any, Any, T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> Generator[Any, Any, T]:
    """The steps of ``attempt()`` under ``policy``: a plain loop over the decisions above.

    ``attempt()`` makes a fresh generator of steps (requests) for each attempt; its steps
    are passed through. After a retryable failure this yields :class:`Sleep` and tries
    again, until :func:`should_stop`; then the last failure is raised. The I/O-free core of
    both twins' retries: the sync twin sleeps with ``time.sleep``, the async twin with
    ``asyncio.sleep``.
    """
    started = clock()
    number = 0
    while True:
        number += 1
        try:
            return (yield from attempt())
        except Exception as exc:
            if not is_retryable_exception(exc):
                raise
            wait = wait_for(exc, number, policy, rand())
            if should_stop(number, clock() - started, wait, policy):
                raise
            if on_retry is not None:
                on_retry(exc, wait)
        yield Sleep(wait)
