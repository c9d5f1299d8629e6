"""Hedged requests: a duplicate to another endpoint when the first answer is late.

With several base URLs and ``hedge=True`` (or ``hedge=<seconds>``), a small call
(``embed_query``, or any call that is one batch of at most ``HEDGE_MAX_INPUTS`` inputs) is
sent to one endpoint; when no answer came within the *hedge delay*, the same request goes
to another healthy endpoint too. The first answer wins; the other request is cancelled
(async: its task is cancelled and its connection closed) or, in the sync client, left to
finish on its own worker thread with its own connection and its answer ignored.

The delay (:class:`HedgeDelay`) is the fixed number of seconds given, or learned: the
``HEDGE_QUANTILE`` (p95) of the last ``HEDGE_WINDOW`` answer times of hedged calls, never
below ``HEDGE_MIN_DELAY``, so about one call in twenty is duplicated when every replica is
well. Answer times come from winners only, so a stalled replica does not teach the client
to wait for it.

The request logic stays in :mod:`vllm_embed._base` as steps: :func:`hedged_send_steps` yields
one :class:`Hedge` step; the twins run it with :func:`race_sync` (threads) or
:func:`race_async` (tasks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any, TypeVar

import httpx

from vllm_embed import _constants as C
from vllm_embed._endpoints import Endpoint, EndpointPool
from vllm_embed._errors import APIConnectionError, ConfigValueError
from vllm_embed._transports import Reply, Request
from vllm_embed._types import ClientStats

__all__ = [
    "DaemonThreads",
    "Hedge",
    "HedgeDelay",
    "Outcome",
    "WaitForSlot",
    "hedge_setting",
    "hedged_send_steps",
    "race_async",
    "race_sync",
]

Ctx = TypeVar("Ctx")
T = TypeVar("T")


def hedge_setting(value: object) -> float | bool:
    """Check ``hedge=``: False (off), True (learned delay) or a fixed delay in seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value > 0 and value == value and value < float("inf"):
        return float(value)
    raise ConfigValueError(
        f"hedge must be False (off), True (a delay learned from recent answer times) or a "
        f"delay in seconds > 0, got {value!r}"
    )


class HedgeDelay:
    """How long to wait for the first answer before sending the duplicate.

    ``fixed``: always that many seconds; else learned from :meth:`record` (see the module
    docstring). Thread-safe.
    """

    def __init__(
        self,
        fixed: float | None = None,
        *,
        window: int = C.HEDGE_WINDOW,
        quantile: float = C.HEDGE_QUANTILE,
        floor: float = C.HEDGE_MIN_DELAY,
        initial: float = C.HEDGE_INITIAL_DELAY,
        min_samples: int = C.HEDGE_MIN_SAMPLES,
    ) -> None:
        self.fixed = fixed
        self._samples: deque[float] = deque(maxlen=window)
        self._quantile = quantile
        self._floor = floor
        self._initial = initial
        self._min_samples = min_samples
        self._lock = threading.Lock()
        self._current = fixed if fixed is not None else initial
        self._since = 0

    def record(self, seconds: float) -> None:
        """One winning answer took ``seconds``."""
        if self.fixed is not None:
            return
        with self._lock:
            self._samples.append(seconds)
            self._since += 1
            n = len(self._samples)
            if n < self._min_samples or (self._since < 8 and n >= self._min_samples + 8):
                return  # re-sort every 8 answers once warmed up
            self._since = 0
            ordered = sorted(self._samples)
            value = ordered[min(n - 1, int(self._quantile * n))]
            self._current = max(self._floor, value)

    def delay(self) -> float:
        """The current hedge delay in seconds."""
        return self._current


@dataclass(slots=True)
class WaitForSlot:
    """A step: every endpoint is at ``max_in_flight_per_endpoint``; wait for a request to
    end (the twins call ``pool.wait_for_slot`` / ``wait_for_slot_async``)."""


@dataclass(slots=True)
class Outcome:
    """What a race ended with: the winner (if any), how long its request took, and the
    failures seen until then."""

    winner: tuple[Endpoint, Reply] | None = None
    seconds: float = 0.0
    failures: list[tuple[Endpoint, BaseException]] = field(default_factory=list)


@dataclass(slots=True)
class Hedge:
    """A step: send ``first``; with no answer after ``delay`` seconds, send ``second()`` too
    (None: no other endpoint is free, keep waiting). ``finished(endpoint, error)``
    is called once for every request sent, when it ends (it releases the endpoint)."""

    first: tuple[Endpoint, Request]
    delay: float
    second: Callable[[], tuple[Endpoint, Request] | None]
    finished: Callable[[Endpoint, BaseException | None], None]
    stats: ClientStats


class DaemonThreads:
    """A small thread pool for the sync client's hedged requests.

    Its threads are daemon threads: a loser still waiting on a hung server (up to its
    timeout) never holds up the interpreter's exit, as ``ThreadPoolExecutor``'s threads
    would. Every request submitted gets a thread at once (an idle one, or a new one up to
    ``max_workers``), so a hedge never queues behind a stuck loser while there is room.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._queue: SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn()`` on a pool thread."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("This EmbeddingClient is closed; create a new one.")
            if self._idle:
                self._idle -= 1  # that thread takes this item
            elif self._threads < self._max:
                self._threads += 1
                name = f"{self._name}-{self._threads}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
            self._queue.put((future, fn))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, item
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Stop taking work; threads end when their request does. Idempotent."""
        with self._lock:
            self._closed = True
            threads, self._threads, self._idle = self._threads, 0, 0
        for _ in range(threads):
            self._queue.put(None)


def _timed(send: Callable[[Request], Reply], request: Request) -> tuple[Reply, float]:
    start = time.perf_counter()
    reply = send(request)
    return reply, time.perf_counter() - start


def race_sync(
    step: Hedge, send: Callable[[Endpoint], Callable[[Request], Reply]], threads: DaemonThreads
) -> Outcome:
    """Run a :class:`Hedge` step on pool threads; the first answer wins.

    The loser keeps its worker thread (and that thread's own connection) until its answer
    or its timeout comes; then it is only released and recorded, never used.
    """
    running: dict[Future[tuple[Reply, float]], Endpoint] = {}

    def submit(ep: Endpoint, request: Request) -> None:
        try:
            sender = send(ep)
            future = threads.submit(lambda: _timed(sender, request))
        except BaseException as exc:  # the client is closed
            step.finished(ep, exc)
            raise
        running[future] = ep

        def ended(f: Future[tuple[Reply, float]]) -> None:
            step.finished(ep, CancelledError() if f.cancelled() else f.exception())

        future.add_done_callback(ended)

    submit(*step.first)
    outcome = Outcome()
    done, pending = wait(list(running), timeout=step.delay)
    if not done:
        second = step.second()
        if second is not None:
            step.stats.add(hedges=1)
            submit(*second)
    pending = set(running) - done
    while not _settle(step, outcome, [(running[f], f) for f in done]) and pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
    return outcome


def _settle(step: Hedge, outcome: Outcome, finished: list[tuple[Endpoint, Any]]) -> bool:
    """Record the requests that ``finished`` (futures or tasks, done): True once one
    answered (``outcome.winner``, and ``hedges_won`` when it was the duplicate)."""
    for ep, job in finished:
        exc = job.exception()
        if exc is None:
            outcome.winner, outcome.seconds = (ep, job.result()[0]), job.result()[1]
            if ep is not step.first[0]:
                step.stats.add(hedges_won=1)
            return True
        outcome.failures.append((ep, exc))
    return False


async def race_async(
    step: Hedge, send: Callable[[Endpoint], Callable[[Request], Awaitable[Reply]]]
) -> Outcome:
    """Run a :class:`Hedge` step as tasks; the first answer wins, the other is cancelled
    (the lean transport closes a connection whose request was cancelled)."""
    running: dict[asyncio.Task[tuple[Reply, float]], Endpoint] = {}

    async def timed(ep: Endpoint, request: Request) -> tuple[Reply, float]:
        start = time.perf_counter()
        reply = await send(ep)(request)
        return reply, time.perf_counter() - start

    def submit(ep: Endpoint, request: Request) -> None:
        task = asyncio.create_task(timed(ep, request))
        running[task] = ep

        def ended(t: asyncio.Task[tuple[Reply, float]]) -> None:
            step.finished(ep, asyncio.CancelledError() if t.cancelled() else t.exception())

        task.add_done_callback(ended)

    submit(*step.first)
    outcome = Outcome()
    try:
        done, pending = await asyncio.wait(list(running), timeout=step.delay)
        if not done:
            second = step.second()
            if second is not None:
                step.stats.add(hedges=1)
                submit(*second)
        pending = set(running) - done
        while not _settle(step, outcome, [(running[t], t) for t in done]) and pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return outcome
    finally:
        for task in running:
            task.cancel()  # the loser (or both, when the caller was cancelled)


def hedged_send_steps(
    pool: EndpointPool,
    delay: HedgeDelay,
    stats: ClientStats,
    request_for: Callable[[Endpoint], tuple[Request, Ctx]],
    transport_error: Callable[[Endpoint, httpx.TransportError], APIConnectionError],
) -> Generator[Any, Any, tuple[Endpoint, Ctx, Reply]]:
    """``BaseEmbeddingClient._send_steps`` with a hedge: one request, a duplicate to
    another endpoint when it is late, failover when both fail to connect.

    Requests are sent without ``place`` (two answers must not write the same rows).
    """
    contexts: dict[int, Ctx] = {}

    def prepared(ep: Endpoint) -> tuple[Endpoint, Request]:
        request, context = request_for(ep)
        contexts[id(ep)] = context
        return ep, dataclasses.replace(request, place=None)

    def finished(ep: Endpoint, exc: BaseException | None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            pool.release_cancelled(ep, C.HEDGE_LOSER_HOLD)
            return
        pool.release(ep)
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            pool.timed_out(ep)

    tried = 0
    while True:
        ep = pool.acquire()
        while ep is None:
            yield WaitForSlot()
            ep = pool.acquire()

        def second(first: Endpoint = ep) -> tuple[Endpoint, Request] | None:
            other = pool.acquire_other(first)
            if other is None:
                return None
            try:
                return prepared(other)
            except BaseException:
                pool.release(other)
                raise

        try:
            first = prepared(ep)
        except BaseException:
            pool.release(ep)
            raise
        outcome: Outcome = yield Hedge(first, delay.delay(), second, finished, stats)
        error: APIConnectionError | None = None
        for failed, exc in outcome.failures:
            if not isinstance(exc, httpx.TransportError):
                raise exc
            error = transport_error(failed, exc)
            tried += 1
        if outcome.winner is not None:
            won, reply = outcome.winner
            delay.record(outcome.seconds)  # winners only: a stalled loser teaches nothing
            return won, contexts[id(won)], reply
        assert error is not None
        if tried < len(pool) and not pool.all_down():
            continue  # another endpoint is healthy: try it now
        cause = outcome.failures[-1][1]
        raise error from cause
