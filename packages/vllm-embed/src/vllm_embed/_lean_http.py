"""A lean HTTP/1.1 path for the sync client's ``bytes`` embedding requests.

httpx costs about 20 µs of CPU per 1024-dimensional vector receiving a vLLM ``bytes``
response (h11 buffers, per-request URL merging, cookie extraction), several times what the
rest of the client costs. For the hot request only (``POST /v1/embeddings`` asking for
``bytes``) the sync client therefore uses the standard library's ``http.client``: one
keep-alive connection per worker thread and endpoint, and the body is read with
``readinto`` straight into the caller's output array (one copy, kernel to result).

It is used only where it cannot change behaviour: plain ``http://`` endpoints with no proxy
configured for the host, no ``http_client=`` given, and httpx not mocked (test tools such as
respx patch httpcore; the lean path then stands aside). Set ``VLLM_EMBED_LEAN_HTTP=0`` to
turn it off. Everything else (https, proxies, discovery, base64/float, error answers) goes
through httpx. Socket errors are raised as the matching httpx exceptions so retries,
failover and error messages are the same on both paths.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpcore
import httpx
import numpy as np

from vllm_embed._base import Output
from vllm_embed._transport import Layout, quick_layout
from vllm_embed._types import Timeout

__all__ = ["LeanHTTP", "lean_path_allowed", "post_into"]

#: Receives the response headers; returns the buffer the body must be read into, or None
#: to get the whole body back as an ``httpx.Response`` instead.
Placer = Callable[[int, httpx.Headers], memoryview | None]


def _httpx_is_mocked() -> bool:
    handler = getattr(httpcore.ConnectionPool, "handle_request", None)
    return getattr(handler, "__module__", "") != "httpcore._sync.connection_pool"


def lean_path_allowed(base_url: str) -> bool:
    """True when ``base_url`` may use the lean path (see the module docstring)."""
    if os.environ.get("VLLM_EMBED_LEAN_HTTP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return False
    proxies = urllib.request.getproxies()
    if ("http" in proxies or "all" in proxies) and not urllib.request.proxy_bypass(parts.hostname):
        return False
    return not _httpx_is_mocked()


class _Conn:
    __slots__ = ("conn", "used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.used = False


class LeanHTTP:
    """Keep-alive ``http.client`` connections per (thread, endpoint URL)."""

    def __init__(self, timeout: Timeout) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []
        self._allowed: dict[str, bool] = {}

    def allowed(self, base_url: str) -> bool:
        """Whether this endpoint may use the lean path (cached, but re-checks mocking)."""
        ok = self._allowed.get(base_url)
        if ok is None:
            ok = self._allowed[base_url] = lean_path_allowed(base_url)
        return ok and not _httpx_is_mocked()

    def _conn(self, url: str) -> _Conn:
        conns: dict[str, _Conn] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        c = conns.get(url)
        if c is None:
            parts = urlsplit(url)
            conn = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self._timeout.connect
            )
            c = conns[url] = _Conn(conn)
            with self._lock:
                self._all.append(conn)
        return c

    def _drop(self, url: str) -> None:
        conns: dict[str, _Conn] = getattr(self._local, "conns", {})
        c = conns.pop(url, None)
        if c is not None:
            c.conn.close()

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], place: Placer
    ) -> httpx.Response | None:
        """POST ``body`` to ``url``. Returns None when the body was read into the buffer
        ``place`` handed out, else the whole answer as an ``httpx.Response``."""
        c = self._conn(url)
        try:
            try:
                resp = self._send(c, url, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not c.used:
                    raise
                # A kept-alive connection the server had closed: reconnect once, as httpx does.
                self._drop(url)
                c = self._conn(url)
                resp = self._send(c, url, body, headers)
            c.used = True
            return self._receive(resp, place)
        except BaseException as exc:
            err = _as_httpx_error(exc, c.conn)
            self._drop(url)  # its state is unknown: never reuse it
            if err is exc:
                raise
            raise err from exc

    def _send(
        self, c: _Conn, url: str, body: bytes, headers: Mapping[str, str]
    ) -> http.client.HTTPResponse:
        conn = c.conn
        if conn.sock is None:
            conn.timeout = self._timeout.connect
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self._timeout.total)
        conn.request("POST", urlsplit(url).path, body=body, headers=dict(headers))
        return conn.getresponse()

    @staticmethod
    def _receive(resp: http.client.HTTPResponse, place: Placer) -> httpx.Response | None:
        headers = httpx.Headers(resp.getheaders())
        target = place(resp.status, headers) if resp.status == 200 else None
        if target is None or resp.length != target.nbytes:
            return httpx.Response(resp.status, headers=headers, content=resp.read())
        got, size = 0, target.nbytes
        while got < size:
            k = resp.readinto(target[got:])
            if not k:
                raise http.client.IncompleteRead(b"", size - got)
            got += k
        return None

    def close(self) -> None:
        """Close every connection made by any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _as_httpx_error(exc: BaseException, conn: http.client.HTTPConnection) -> BaseException:
    """The httpx exception the same failure would have raised on the httpx path."""
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


_LE_F4 = np.dtype("<f4")


def post_into(
    lean: LeanHTTP,
    url: str,
    display_url: str,
    body: bytes,
    headers: Mapping[str, str],
    out: Output,
    start: int,
    n: int,
) -> httpx.Response | None:
    """POST one embeddings batch; a float32 ``bytes`` answer in vLLM's usual layout is read
    straight into ``out`` rows ``[start, start + n)`` (returns None). Any other answer comes
    back whole as an ``httpx.Response`` for the normal decoding and error handling."""
    found: list[Layout] = []

    def place(status: int, response_headers: httpx.Headers) -> memoryview | None:
        meta = response_headers.get("metadata")
        if meta is None or "json" in response_headers.get("content-type", ""):
            return None
        layout = quick_layout(meta, n)
        if layout is None or layout.dtype != _LE_F4:
            return None
        found.append(layout)
        rows = out.rows(start, start + n, layout.dim, display_url)
        return memoryview(rows.data).cast("B")

    resp = lean.post(url, body, headers, place)
    if resp is None:
        out.done(found[0].prompt_tokens, display_url)
    return resp
