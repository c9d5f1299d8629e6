"""Several base URLs: least-outstanding choice, failover, and per-endpoint state.

Each :class:`Endpoint` remembers its negotiated encoding, whether it refused
``dimensions`` and whether it has ``/tokenize``. :class:`EndpointPool` hands out the healthy
endpoint with the fewest requests in flight; an endpoint that fails to connect is marked
down for a cool-down (doubling on each consecutive failure) and tried again afterwards.
When every endpoint is down, the one that comes back soonest is tried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from vllm_embed import _constants as C
from vllm_embed._errors import ConfigValueError
from vllm_embed._wire import EncodingState

__all__ = ["Endpoint", "EndpointPool", "normalize_base_url", "redact_url"]


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; strips trailing slashes."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigValueError("base_url must be a non-empty URL like http://localhost:8000/v1")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigValueError(
            f"base_url {redact_url(url)!r} is not an http(s) URL. "
            "Use the server's OpenAI-style URL, e.g. http://localhost:8000/v1"
        )
    if not parts.path.endswith("/v1"):
        url = url + "/v1"
    return url


def redact_url(url: str) -> str:
    """The URL without any ``user:password@`` part (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class Endpoint:
    """One base URL and what the client learned about it."""

    def __init__(self, base_url: str, encodings: Sequence[str]) -> None:
        self.base_url = normalize_base_url(base_url)
        #: ``base_url`` without ``/v1``: where /health, /version and /tokenize live.
        self.root_url = self.base_url[: -len("/v1")]
        #: For messages and stats: never carries credentials.
        self.display_url = redact_url(self.base_url)
        self.embeddings_url = self.base_url + "/embeddings"
        self.encoding = EncodingState(encodings)
        self.outstanding = 0
        self.down_until = 0.0
        self.failures = 0
        self.dimensions_supported: bool | None = None
        self.tokenize_supported: bool | None = None
        self.truncate_supported: bool | None = None

    def __repr__(self) -> str:
        return f"Endpoint({self.display_url!r}, outstanding={self.outstanding})"


class EndpointPool:
    """Chooses endpoints (fewest outstanding requests among the healthy ones)."""

    def __init__(
        self,
        urls: Sequence[str],
        encodings: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = C.ENDPOINT_COOLDOWN,
        max_cooldown: float = C.ENDPOINT_MAX_COOLDOWN,
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
        self._clock = clock
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._turn = 0

    def __len__(self) -> int:
        return len(self.endpoints)

    def acquire(self) -> Endpoint:
        """Pick an endpoint and count one more request in flight on it."""
        with self._lock:
            now = self._clock()
            healthy = [ep for ep in self.endpoints if ep.down_until <= now]
            if healthy:
                # Fewest in flight; ties rotate so idle replicas share the first batches.
                k = len(self.endpoints)
                self._turn = (self._turn + 1) % k
                turn = self._turn
                best = min(
                    healthy,
                    key=lambda ep: (ep.outstanding, (self.endpoints.index(ep) - turn) % k),
                )
            else:
                best = min(self.endpoints, key=lambda ep: ep.down_until)
            best.outstanding += 1
            return best

    def release(self, ep: Endpoint) -> None:
        """One request on ``ep`` finished (whatever the outcome)."""
        with self._lock:
            ep.outstanding -= 1

    def mark_down(self, ep: Endpoint) -> None:
        """``ep`` failed to connect: leave it alone for a while."""
        with self._lock:
            ep.failures += 1
            delay = min(self._max_cooldown, self._cooldown * 2 ** (ep.failures - 1))
            ep.down_until = self._clock() + delay

    def mark_up(self, ep: Endpoint) -> None:
        """``ep`` answered: it is healthy again."""
        if ep.failures or ep.down_until:
            with self._lock:
                ep.failures = 0
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
