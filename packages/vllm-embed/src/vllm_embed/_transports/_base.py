"""The transport interface: Request, Reply, the two protocols and the choice rule."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

__all__ = [
    "LEAN_HTTP_ENV",
    "AsyncTransport",
    "Placer",
    "Reply",
    "Request",
    "Transport",
    "TransportName",
    "choose_transport",
]

TransportName = Literal["httpx", "lean"]

#: ``VLLM_EMBED_LEAN_HTTP=0`` makes every endpoint use httpx (tests that mock httpx with
#: respx set it; users may set it to rule the lean transport out).
LEAN_HTTP_ENV = "VLLM_EMBED_LEAN_HTTP"

#: Called with the headers of a 200 answer: a buffer of exactly the body's size to read the
#: body into (then ``Reply.placed`` is True and ``content`` empty), or None for the whole body.
Placer = Callable[[Mapping[str, str]], memoryview | None]


@dataclass(slots=True)
class Request:
    """One HTTP request. ``place`` is optional: a transport may ignore it."""

    method: str
    url: str
    body: bytes | None = None
    place: Placer | None = None


@dataclass(slots=True)
class Reply:
    """One HTTP answer. ``headers`` look names up case-insensitively (lowercase keys)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    #: True when the body was read into the buffer ``Request.place`` handed out.
    placed: bool = False


class Transport(Protocol):
    """A blocking transport (the sync twin)."""

    def send(self, request: Request) -> Reply:
        """Send ``request``; raise an ``httpx.TransportError`` when the network fails."""
        ...

    def close(self) -> None:
        """Close every connection. Idempotent."""
        ...


class AsyncTransport(Protocol):
    """The asyncio form of :class:`Transport`."""

    async def send(self, request: Request) -> Reply:
        """Send ``request``; raise an ``httpx.TransportError`` when the network fails."""
        ...

    async def aclose(self) -> None:
        """Close every connection. Idempotent."""
        ...


def _lean_disabled() -> bool:
    value = os.environ.get(LEAN_HTTP_ENV, "1").strip().lower()
    return value in ("0", "false", "no", "off")


def choose_transport(base_url: str, *, http_client_given: bool) -> TransportName:
    """The transport for one endpoint, decided once (the client caches the answer).

    httpx when the caller gave ``http_client=`` (their client, their settings), when
    ``VLLM_EMBED_LEAN_HTTP=0``, for https, for URLs with credentials and for hosts a proxy
    is configured for; the lean transport for every other plain ``http://`` endpoint.
    """
    if http_client_given or _lean_disabled():
        return "httpx"
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return "httpx"
    proxies = urllib.request.getproxies()
    if ("http" in proxies or "all" in proxies) and not urllib.request.proxy_bypass(parts.hostname):
        return "httpx"
    return "lean"
