"""Several base URLs: least-outstanding choice, failover, and per-endpoint state.

Each :class:`Endpoint` remembers its negotiated encoding, whether it refused
``dimensions`` and whether it has ``/tokenize``. :class:`EndpointPool` hands out the healthy
endpoint with the fewest requests in flight, below the per-endpoint cap when there is one
(``max_in_flight_per_endpoint``: when every endpoint is at it, :meth:`EndpointPool.acquire`
returns None and the caller waits for a slot).

A small circuit breaker per endpoint: an endpoint that refuses a connection, or whose
requests time out ``ENDPOINT_EJECT_TIMEOUTS`` times in a row (a hung replica), is taken out
(*open*) for a cool-down that doubles on each consecutive failure. After the cool-down it is
*half-open*: one trial request at a time goes there; an answer closes the circuit, a failure
opens it again with the longer cool-down. When every endpoint is out, the one that comes
back soonest is tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from vllm_embed import _constants as C
from vllm_embed._errors import ConfigValueError
from vllm_embed._secrets import mask_url
from vllm_embed._settings import check_http_url
from vllm_embed._types import ClientStats
from vllm_embed._wire import EncodingState

__all__ = ["Endpoint", "EndpointPool", "normalize_base_url"]

#: The longest a request waiting for a free endpoint sleeps before it looks again.
_SLOT_WAIT = 0.25


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1`` (the settings' URL rule, then
    ``/v1`` added when missing)."""
    url = check_http_url(url)
    return url if urlsplit(url).path.endswith("/v1") else url + "/v1"


class Endpoint:
    """One base URL and what the client learned about it."""

    def __init__(self, base_url: str, encodings: Sequence[str]) -> None:
        self.base_url = normalize_base_url(base_url)
        #: ``base_url`` without ``/v1``: where /health, /version and /tokenize live.
        self.root_url = self.base_url[: -len("/v1")]
        #: For messages and stats: never carries credentials.
        self.display_url = mask_url(self.base_url)
        self.embeddings_url = self.base_url + "/embeddings"
        self.encoding = EncodingState(encodings)
        self.outstanding = 0
        #: A cancelled request (a hedge's loser) may still run on the server until then:
        #: it counts as one more in flight.
        self.held_until = 0.0
        #: Out of rotation until then (0.0: never taken out, or closed again).
        self.down_until = 0.0
        #: Consecutive times it was taken out (sets the next cool-down).
        self.failures = 0
        #: Consecutive read timeouts (reset by any answer).
        self.timeouts = 0
        #: A half-open trial request is in flight.
        self.probing = False
        self.dimensions_supported: bool | None = None
        self.tokenize_supported: bool | None = None
        self.truncate_supported: bool | None = None

    def __repr__(self) -> str:
        return f"Endpoint({self.display_url!r}, outstanding={self.outstanding})"


class EndpointPool:
    """Chooses endpoints (fewest outstanding requests among the healthy ones, under the cap).

    ``max_in_flight``: the most requests in flight on one endpoint (None: no cap).
    ``stats`` (optional) counts ejections and half-open probes.
    """

    def __init__(
        self,
        urls: Sequence[str],
        encodings: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = C.ENDPOINT_COOLDOWN,
        max_cooldown: float = C.ENDPOINT_MAX_COOLDOWN,
        max_in_flight: int | None = None,
        eject_after: int = C.ENDPOINT_EJECT_TIMEOUTS,
        stats: ClientStats | None = None,
    ) -> None:
        if not urls:
            raise ConfigValueError(
                "No base_url given. Pass base_url='http://host:8000/v1' or set VLLM_EMBED_BASE_URL."
            )
        self.endpoints = [Endpoint(u, encodings) for u in urls]
        seen: set[str] = set()
        for ep in self.endpoints:
            if ep.base_url in seen:
                raise ConfigValueError(f"base_url {ep.display_url} is listed twice")
            seen.add(ep.base_url)
        self._lock = threading.Lock()
        #: Notified whenever a request ends (a slot may be free).
        self._slot_freed = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._clock = clock
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self.max_in_flight = max_in_flight
        self._eject_after = eject_after
        self._stats = stats if stats is not None else ClientStats()
        self._turn = 0

    def __len__(self) -> int:
        return len(self.endpoints)

    # -- choosing ----------------------------------------------------------------------
    def _load(self, ep: Endpoint, now: float) -> int:
        return ep.outstanding + (ep.held_until > now)

    def _has_room(self, ep: Endpoint, now: float) -> bool:
        cap = self.max_in_flight
        return cap is None or self._load(ep, now) < cap

    def _usable(self, ep: Endpoint, now: float) -> bool:
        """Closed, or half-open with no trial in flight; and below the cap."""
        if ep.down_until > now or (ep.down_until and ep.probing):
            return False
        return self._has_room(ep, now)

    def _pick_locked(self, exclude: Endpoint | None = None) -> Endpoint | None:
        now = self._clock()
        usable = [ep for ep in self.endpoints if ep is not exclude and self._usable(ep, now)]
        if usable:
            # Fewest in flight; ties rotate so idle replicas share the first batches.
            k = len(self.endpoints)
            self._turn = (self._turn + 1) % k
            turn = self._turn
            best = min(
                usable,
                key=lambda ep: (self._load(ep, now), (self.endpoints.index(ep) - turn) % k),
            )
        elif exclude is not None:
            return None  # a hedge goes to a healthy endpoint or nowhere
        elif any(ep.down_until <= now for ep in self.endpoints):
            return None  # healthy ones exist but are all busy (cap or trial): wait
        else:  # every endpoint is out: the one that comes back soonest (if it has room)
            roomy = [ep for ep in self.endpoints if self._has_room(ep, now)]
            if not roomy:
                return None
            best = min(roomy, key=lambda ep: ep.down_until)
        if best.down_until and best.down_until <= now:
            best.probing = True  # half-open: this is the trial request
            self._stats.add(half_open_probes=1)
        best.outstanding += 1
        return best

    def acquire(self) -> Endpoint | None:
        """Pick an endpoint and count one more request in flight on it.

        None when every usable endpoint is at ``max_in_flight`` (or busy with its half-open
        trial): wait with :meth:`wait_for_slot` / :meth:`wait_for_slot_async`, then ask again.
        """
        with self._lock:
            return self._pick_locked()

    def acquire_other(self, exclude: Endpoint) -> Endpoint | None:
        """A healthy endpoint other than ``exclude`` with room (for a hedge), or None."""
        with self._lock:
            return self._pick_locked(exclude)

    def release(self, ep: Endpoint) -> None:
        """One request on ``ep`` finished (whatever the outcome)."""
        with self._lock:
            ep.outstanding -= 1
            ep.probing = False  # the trial is over (an answer has closed the circuit already)
            self._slot_freed.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_wake, future)

    def release_cancelled(self, ep: Endpoint, hold: float) -> None:
        """A request on ``ep`` was cancelled (it lost a hedge race): released, but the
        server may still be working on it, so it counts as in flight ``hold`` s more (as
        the sync client's loser does until its answer comes)."""
        with self._lock:
            ep.held_until = max(ep.held_until, self._clock() + hold)
        self.release(ep)

    def _any_slot_locked(self) -> bool:
        now = self._clock()
        if any(self._usable(ep, now) for ep in self.endpoints):
            return True
        if any(ep.down_until <= now for ep in self.endpoints):
            return False
        return any(self._has_room(ep, now) for ep in self.endpoints)

    def wait_for_slot(self) -> None:
        """Block until a request ends (at most _SLOT_WAIT s: cool-downs end without one)."""
        with self._slot_freed:
            if not self._any_slot_locked():
                self._slot_freed.wait(_SLOT_WAIT)

    async def wait_for_slot_async(self) -> None:
        """:meth:`wait_for_slot` for the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._any_slot_locked():
                return
            self._async_waiters.append((loop, future))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SLOT_WAIT):
                    await future
        finally:
            with self._lock:
                if (loop, future) in self._async_waiters:
                    self._async_waiters.remove((loop, future))

    # -- health ------------------------------------------------------------------------
    def _eject_locked(self, ep: Endpoint) -> None:
        ep.failures += 1
        ep.timeouts = 0
        delay = min(self._max_cooldown, self._cooldown * 2 ** (ep.failures - 1))
        ep.down_until = self._clock() + delay
        self._stats.add(endpoints_ejected=1)

    def mark_down(self, ep: Endpoint) -> None:
        """``ep`` failed to connect: leave it alone for a while."""
        with self._lock:
            self._eject_locked(ep)

    def timed_out(self, ep: Endpoint) -> None:
        """A request to ``ep`` got no answer in time. Repeated timeouts (or one during the
        half-open trial) take it out like a refused connection. Requests that were sent
        before it was taken out and time out while it is out change nothing."""
        with self._lock:
            if ep.down_until > self._clock():
                return
            ep.timeouts += 1
            if ep.timeouts >= self._eject_after or ep.down_until:
                self._eject_locked(ep)

    def mark_up(self, ep: Endpoint) -> None:
        """``ep`` answered: it is healthy again (a half-open trial closes the circuit)."""
        if ep.failures or ep.down_until or ep.timeouts:
            with self._lock:
                ep.failures = 0
                ep.timeouts = 0
                ep.down_until = 0.0

    def all_down(self) -> bool:
        """True when every endpoint is in its cool-down."""
        now = self._clock()
        return all(ep.down_until > now for ep in self.endpoints)

    def first(self) -> Endpoint:
        """The first healthy endpoint (for discovery calls), else the first one."""
        now = self._clock()
        for ep in self.endpoints:
            if ep.down_until <= now:
                return ep
        return self.endpoints[0]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
