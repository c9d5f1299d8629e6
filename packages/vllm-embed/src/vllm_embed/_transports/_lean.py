"""The lean transports: plain sockets speaking :mod:`._http11`, for plain ``http://``.

httpx costs about 20 µs of CPU per 1024-dimensional vector receiving a vLLM ``bytes``
answer (h11 buffers, per-request URL merging, cookie extraction) and the standard
library's ``http.client`` spends most of its time in the ``email`` header parser; at a
few hundred thousand vectors per second that is the whole budget. These transports keep
keep-alive sockets, cache each request's head, parse answers with :mod:`._http11` and,
when the request carries a ``place`` callback, read a 200 answer's body straight into the
buffer it hands out (one copy, kernel to result).
:func:`~vllm_embed._transports.choose_transport` says where they may be used.

:class:`LeanTransport` (sync): one connection per worker thread and host.
:class:`AsyncLeanTransport`: a pool of idle connections per host, driven by the event loop
(``loop.sock_sendall`` / ``loop.sock_recv_into``; no threads).

Failures are raised as the matching httpx exceptions so retries, failover and error
messages are the same with every transport.

A transport that is garbage-collected without ``close()`` (an adapter object nobody
closes, as LangChain / LlamaIndex users never do) closes its sockets then, through a
``weakref.finalize`` that holds the connection list but not the transport: no socket is
left to the collector, so no ``ResourceWarning``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import weakref
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from vllm_embed._transports._base import Reply, Request
from vllm_embed._transports._http11 import Buffers, Disconnected, Fill, ProtocolError, exchange
from vllm_embed._transports._http11 import request_head as _request_head
from vllm_embed._types import Timeout

__all__ = ["AsyncLeanTransport", "LeanTransport"]

_WAITALL = getattr(socket, "MSG_WAITALL", 0)


class _Conn:
    """One socket and its read buffers."""

    __slots__ = ("buffers", "sock", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffers = Buffers()
        self.used = False

    def close(self) -> None:
        self.sock.close()


class _Target:
    """What a URL needs: the host to connect to and the cached request heads."""

    __slots__ = ("heads", "host", "netloc", "path", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.netloc = parts.netloc
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.heads: dict[str, bytes] = {}


class _Common:
    def __init__(self, timeout: Timeout, headers: Mapping[str, str]) -> None:
        self._timeout = timeout
        self._headers = dict(headers)
        self._targets: dict[str, _Target] = {}
        self._lock = threading.Lock()
        #: Every open connection; the same list object for the transport's whole life (the
        #: finalizer closes what it holds when the transport is collected unclosed).
        self._all: list[_Conn] = []
        self._opened = 0
        self._finalizer = weakref.finalize(self, _close_conns, self._lock, self._all)

    @property
    def connections_opened(self) -> int:
        """Connections made so far (tests and diagnostics)."""
        return self._opened

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = _Target(url)
        return target

    def _head(self, target: _Target, method: str) -> bytes:
        head = target.heads.get(method)
        if head is None:
            head = _request_head(method, target.path, target.netloc, self._headers)
            target.heads[method] = head
        return head

    def _opened_conn(self, sock: socket.socket) -> _Conn:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        with self._lock:
            self._all.append(conn)
            self._opened += 1
        return conn

    def _forget(self, conn: _Conn) -> None:
        conn.close()
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def _close_all(self) -> None:
        _close_conns(self._lock, self._all)


def _close_conns(lock: threading.Lock, conns: list[_Conn]) -> None:
    """Close and forget every connection in ``conns`` (emptied in place: the list is the
    transport's own, shared with its finalizer)."""
    with lock:
        closing = conns[:]
        conns.clear()
    for conn in closing:
        conn.close()


class LeanTransport(_Common):
    """Blocking sockets: one keep-alive connection per (thread, host). Thread-safe."""

    def __init__(self, timeout: Timeout, headers: Mapping[str, str]) -> None:
        super().__init__(timeout, headers)
        self._local = threading.local()

    def _conn(self, target: _Target) -> _Conn:
        conns: dict[str, _Conn] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(target.netloc)
        if conn is None:
            try:
                sock = socket.create_connection(
                    (target.host, target.port), timeout=self._timeout.connect
                )
            except BaseException as exc:
                raise _as_httpx_error(exc, connected=False) from exc
            _blocking_with_timeouts(sock, self._timeout.total)
            conn = conns[target.netloc] = self._opened_conn(sock)
        return conn

    def _drop(self, target: _Target, conn: _Conn) -> None:
        conns: dict[str, _Conn] = getattr(self._local, "conns", {})
        if conns.get(target.netloc) is conn:
            del conns[target.netloc]
        self._forget(conn)

    def send(self, request: Request) -> Reply:
        target = self._target(request.url)
        head = self._head(target, request.method)
        conn = self._conn(target)
        try:
            try:
                reply, keep_alive = self._run(conn, head, request)
            except (Disconnected, ConnectionResetError, BrokenPipeError):
                if not conn.used:
                    raise
                # A kept-alive connection the server had closed: reconnect once, as httpx does.
                self._drop(target, conn)
                conn = self._conn(target)
                reply, keep_alive = self._run(conn, head, request)
        except BaseException as exc:
            self._drop(target, conn)  # its state is unknown: never reuse it
            err = _as_httpx_error(exc, connected=True)
            if err is exc:
                raise
            raise err from exc
        conn.used = True
        if not keep_alive:
            self._drop(target, conn)
        return reply

    @staticmethod
    def _run(conn: _Conn, head: bytes, request: Request) -> tuple[Reply, bool]:
        sock = conn.sock
        steps = exchange(conn.buffers, head, request.body, request.place)
        try:
            op = next(steps)
            while True:
                if isinstance(op, bytes):
                    sock.sendall(op)
                    op = steps.send(0)
                elif isinstance(op, Fill):
                    op = steps.send(sock.recv_into(op.view, 0, _WAITALL))
                else:
                    op = steps.send(sock.recv_into(op))
        except StopIteration as done:
            result: tuple[Reply, bool] = done.value
            return result
        except BlockingIOError as exc:  # SO_RCVTIMEO / SO_SNDTIMEO ran out
            raise TimeoutError("timed out") from exc

    def close(self) -> None:
        """Close every connection made by any thread."""
        self._close_all()


class AsyncLeanTransport(_Common):
    """Non-blocking sockets driven by the running event loop; idle connections pooled per
    host (a connection serves one request at a time)."""

    def __init__(self, timeout: Timeout, headers: Mapping[str, str]) -> None:
        super().__init__(timeout, headers)
        self._idle: dict[str, list[_Conn]] = {}

    async def _connect(self, target: _Target) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout.connect):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
                error: OSError | None = None
                for family, kind, proto, _, address in infos:
                    sock = socket.socket(family, kind, proto)
                    sock.setblocking(False)
                    try:
                        await loop.sock_connect(sock, address)
                    except OSError as exc:
                        sock.close()
                        error = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return self._opened_conn(sock)
                raise error or OSError(f"no address for {target.host}")
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {target.netloc} timed out") from exc
        except OSError as exc:
            raise _as_httpx_error(exc, connected=False) from exc

    async def send(self, request: Request) -> Reply:
        target = self._target(request.url)
        head = self._head(target, request.method)
        idle = self._idle.setdefault(target.netloc, [])
        conn = idle.pop() if idle else await self._connect(target)
        try:
            try:
                reply, keep_alive = await self._run(conn, head, request)
            except (Disconnected, ConnectionResetError, BrokenPipeError):
                if not conn.used:
                    raise
                self._forget(conn)  # a kept-alive connection the server had closed
                conn = await self._connect(target)
                reply, keep_alive = await self._run(conn, head, request)
        except BaseException as exc:
            self._forget(conn)  # its state is unknown (or the task was cancelled)
            if isinstance(exc, TimeoutError):
                raise httpx.ReadTimeout(f"no answer from {target.netloc} in time") from exc
            err = _as_httpx_error(exc, connected=True)
            if err is exc:
                raise
            raise err from exc
        conn.used = True
        if keep_alive:
            idle.append(conn)
        else:
            self._forget(conn)
        return reply

    async def _run(self, conn: _Conn, head: bytes, request: Request) -> tuple[Reply, bool]:
        loop = asyncio.get_running_loop()
        sock = conn.sock
        steps = exchange(conn.buffers, head, request.body, request.place)
        async with asyncio.timeout(self._timeout.total):
            try:
                op = next(steps)
                while True:
                    if isinstance(op, bytes):
                        await loop.sock_sendall(sock, op)
                        op = steps.send(0)
                    elif isinstance(op, Fill):
                        op = steps.send(await loop.sock_recv_into(sock, op.view))
                    else:
                        op = steps.send(await loop.sock_recv_into(sock, op))
            except StopIteration as done:
                result: tuple[Reply, bool] = done.value
                return result

    async def aclose(self) -> None:
        """Close every connection."""
        self._idle.clear()
        self._close_all()

    def close(self) -> None:
        """Close every connection (usable without an event loop)."""
        self._idle.clear()
        self._close_all()


def _blocking_with_timeouts(sock: socket.socket, seconds: float | None) -> None:
    """Blocking mode (so ``MSG_WAITALL`` waits in the kernel) with the timeout kept by the
    kernel (``SO_RCVTIMEO`` / ``SO_SNDTIMEO``) instead of Python's poll-then-read."""
    if seconds is None:
        sock.settimeout(None)
        return
    try:
        whole = int(seconds)
        timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except (OSError, struct.error):  # no kernel timeouts here: Python's own, no WAITALL
        sock.settimeout(seconds)
        return
    sock.settimeout(None)


def _as_httpx_error(exc: BaseException, *, connected: bool) -> BaseException:
    """The httpx exception the same failure would have raised with the httpx transport."""
    if isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(str(exc))
    if not isinstance(exc, OSError):
        return exc
    if isinstance(exc, socket.timeout | TimeoutError):
        return httpx.ReadTimeout(str(exc)) if connected else httpx.ConnectTimeout(str(exc))
    if isinstance(exc, ConnectionRefusedError | socket.gaierror) or not connected:
        return httpx.ConnectError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc) or type(exc).__name__)
