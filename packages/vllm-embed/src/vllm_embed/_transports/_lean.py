"""The lean transport: the standard library's ``http.client``, for plain ``http://``.

httpx costs about 20 µs of CPU per 1024-dimensional vector receiving a vLLM ``bytes``
answer (h11 buffers, per-request URL merging, cookie extraction), several times what the
rest of the client costs. This transport keeps one keep-alive ``HTTPConnection`` per worker
thread and host and, when the request carries a ``place`` callback, reads a 200 answer's
body with ``readinto`` straight into the buffer it hands out (one copy, kernel to result).
:func:`~vllm_embed._transports.choose_transport` says where it may be used.

Socket errors are raised as the matching httpx exceptions so retries, failover and error
messages are the same with both transports.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from urllib.parse import urlsplit

import httpx

from vllm_embed._transports._base import Placer, Reply, Request
from vllm_embed._types import Timeout

__all__ = ["InThreads", "LeanTransport"]


class _Conn:
    __slots__ = ("conn", "used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.used = False


class LeanTransport:
    """Keep-alive ``http.client`` connections per (thread, host). Thread-safe."""

    def __init__(self, timeout: Timeout, headers: Mapping[str, str]) -> None:
        self._timeout = timeout
        self._headers = dict(headers)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._split: dict[str, tuple[str, str, int | None, str]] = {}

    @property
    def connections_opened(self) -> int:
        """Connections made so far by any thread (tests and diagnostics)."""
        return len(self._all)

    def _parts(self, url: str) -> tuple[str, str, int | None, str]:
        """(netloc, host, port, path?query) of ``url`` (cached: URLs repeat)."""
        parts = self._split.get(url)
        if parts is None:
            s = urlsplit(url)
            target = s.path + ("?" + s.query if s.query else "")
            parts = self._split[url] = (s.netloc, s.hostname or "", s.port, target)
        return parts

    def _conn(self, netloc: str, host: str, port: int | None) -> _Conn:
        conns: dict[str, _Conn] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        c = conns.get(netloc)
        if c is None:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout.connect)
            c = conns[netloc] = _Conn(conn)
            with self._lock:
                self._all.append(conn)
        return c

    def _drop(self, netloc: str) -> None:
        conns: dict[str, _Conn] = getattr(self._local, "conns", {})
        c = conns.pop(netloc, None)
        if c is not None:
            c.conn.close()

    def send(self, request: Request) -> Reply:
        netloc, host, port, target = self._parts(request.url)
        c = self._conn(netloc, host, port)
        try:
            try:
                resp = self._send(c, request.method, target, request.body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not c.used:
                    raise
                # A kept-alive connection the server had closed: reconnect once, as httpx does.
                self._drop(netloc)
                c = self._conn(netloc, host, port)
                resp = self._send(c, request.method, target, request.body)
            c.used = True
            return self._receive(resp, request.place)
        except BaseException as exc:
            err = _as_httpx_error(exc, c.conn)
            self._drop(netloc)  # its state is unknown: never reuse it
            if err is exc:
                raise
            raise err from exc

    def _send(
        self, c: _Conn, method: str, target: str, body: bytes | None
    ) -> http.client.HTTPResponse:
        conn = c.conn
        if conn.sock is None:
            conn.timeout = self._timeout.connect
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self._timeout.total)
        conn.request(method, target, body=body, headers=self._headers)
        return conn.getresponse()

    @staticmethod
    def _receive(resp: http.client.HTTPResponse, place: Placer | None) -> Reply:
        headers = {name.lower(): value for name, value in resp.getheaders()}
        target = place(headers) if place is not None and resp.status == 200 else None
        if target is None or resp.length != target.nbytes:
            return Reply(resp.status, headers, resp.read())
        got, size = 0, target.nbytes
        while got < size:
            k = resp.readinto(target[got:])
            if not k:
                raise http.client.IncompleteRead(b"", size - got)
            got += k
        return Reply(resp.status, headers, b"", placed=True)

    def close(self) -> None:
        """Close every connection made by any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class InThreads:
    """A blocking transport used from asyncio: each request runs in a worker thread."""

    def __init__(self, transport: LeanTransport, executor: Callable[[], Executor]) -> None:
        self.transport = transport
        self._executor = executor

    async def send(self, request: Request) -> Reply:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self.transport.send, request)

    async def aclose(self) -> None:
        self.transport.close()


def _as_httpx_error(exc: BaseException, conn: http.client.HTTPConnection) -> BaseException:
    """The httpx exception the same failure would have raised with the httpx transport."""
    if not isinstance(exc, OSError | http.client.HTTPException):
        return exc
    connected = conn.sock is not None
    if isinstance(exc, socket.timeout | TimeoutError):
        return httpx.ReadTimeout(str(exc)) if connected else httpx.ConnectTimeout(str(exc))
    if isinstance(exc, ConnectionRefusedError | socket.gaierror) or not connected:
        return httpx.ConnectError(str(exc) or type(exc).__name__)
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc) or type(exc).__name__)
