"""A small HTTP/1.1 client exchange, sans I/O: what the lean transport speaks.

:func:`exchange` is a generator that yields what to do with the socket and returns the
answer: ``bytes`` means "send all of this" (send back 0), a ``memoryview`` means "receive
some bytes into this buffer" and :class:`Fill` "this many bytes are coming, fill the whole
buffer" (send back the byte count; 0 is end of stream). The sync transport runs it on a
blocking socket (a Fill is one ``MSG_WAITALL`` receive: one system call and one release of
the GIL for a whole body), the async one with ``loop.sock_sendall`` /
``loop.sock_recv_into``, so both speak exactly the same HTTP.

What it handles: keep-alive, ``Content-Length`` bodies (read straight into a caller's buffer
when ``place`` hands one out), ``Transfer-Encoding: chunked``, bodies delimited by the end
of the connection, ``Connection: close``, informational (1xx) answers, HTTP/1.0 servers.
Not needed here and not handled: request bodies streamed in parts, compression (requests
say ``Accept-Encoding: identity``), trailers (skipped), upgrades.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping

from vllm_embed._transports._base import Placer, Reply

__all__ = ["Buffers", "Disconnected", "Fill", "ProtocolError", "exchange", "request_head"]

#: The largest response head accepted (vLLM's ``metadata`` header grows with the batch:
#: about 110 bytes per input).
MAX_HEAD = 4 * 2**20
_SCRATCH = 2**16


class Fill:
    """A step: receive exactly ``view.nbytes`` bytes (a body of known length) into ``view``
    (a driver may return fewer; it is asked again for the rest)."""

    __slots__ = ("view",)

    def __init__(self, view: memoryview) -> None:
        self.view = view


#: A step of an exchange: bytes to send, a buffer to receive some bytes into, or a Fill.
Op = bytes | memoryview | Fill
Exchange = Generator[Op, int, tuple[Reply, bool]]


class ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.1 (or stopped in the middle)."""


class Disconnected(ProtocolError):
    """The server closed the connection before sending any of the answer (a kept-alive
    connection it had closed: the request may be sent again on a fresh one)."""


class Buffers:
    """Per-connection read state: bytes received but not yet used, and a scratch buffer."""

    __slots__ = ("pending", "scratch")

    def __init__(self) -> None:
        self.pending = bytearray()
        self.scratch = memoryview(bytearray(_SCRATCH))


def request_head(method: str, target: str, host: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, up to (not including) ``Content-Length`` and the
    blank line; the transport caches it per (method, URL)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def exchange(buffers: Buffers, head: bytes, body: bytes | None, place: Placer | None) -> Exchange:
    """Send one request and read its answer: returns ``(reply, keep_alive)``."""
    if body is None:
        yield head + b"\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        if len(body) <= _SCRATCH:
            yield head + body
        else:
            yield head
            yield body
    status, version, headers = yield from _read_head(buffers)
    while 100 <= status < 200:  # informational: the real answer follows
        status, version, headers = yield from _read_head(buffers)
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        content = yield from _read_chunked(buffers)
        return Reply(status, headers, content), keep_alive
    length_text = headers.get("content-length")
    if length_text is None:
        if status in (204, 304):
            return Reply(status, headers, b""), keep_alive
        content = yield from _read_to_end(buffers)
        return Reply(status, headers, content), False
    try:
        length = int(length_text)
    except ValueError:
        raise ProtocolError(f"bad Content-Length {length_text!r}") from None
    if length < 0:
        raise ProtocolError(f"bad Content-Length {length_text!r}")
    target = place(headers) if place is not None and status == 200 else None
    if target is not None and target.nbytes == length:
        yield from _read_into(buffers, target)
        return Reply(status, headers, b"", placed=True), keep_alive
    content = yield from _read_exact(buffers, length)
    return Reply(status, headers, content), keep_alive


def _read_head(buffers: Buffers) -> Generator[Op, int, tuple[int, str, dict[str, str]]]:
    pending, scratch = buffers.pending, buffers.scratch
    searched = 0
    while True:
        end = pending.find(b"\r\n\r\n", searched)
        if end >= 0:
            break
        if len(pending) > MAX_HEAD:
            raise ProtocolError("the response head is larger than 4 MiB")
        searched = max(0, len(pending) - 3)
        n = yield scratch
        if not n:
            if pending:
                raise ProtocolError("the server closed the connection inside the answer's head")
            raise Disconnected("the server closed the connection without answering")
        pending += scratch[:n]
    lines = pending[:end].decode("latin-1").split("\r\n")
    del pending[: end + 4]
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(code), version, headers


def _read_into(buffers: Buffers, target: memoryview) -> Generator[Op, int, None]:
    pending = buffers.pending
    size = target.nbytes
    have = min(len(pending), size)
    if have:
        target[:have] = pending[:have]
        del pending[:have]
    while have < size:
        n = yield Fill(target[have:])
        if not n:
            raise ProtocolError(f"the answer ended {size - have} bytes early")
        have += n


def _read_exact(buffers: Buffers, size: int) -> Generator[Op, int, bytes]:
    pending = buffers.pending
    if len(pending) >= size:
        data = bytes(pending[:size])
        del pending[:size]
        return data
    out = bytearray(size)
    yield from _read_into(buffers, memoryview(out))
    return bytes(out)


def _read_line(buffers: Buffers) -> Generator[Op, int, bytes]:
    pending, scratch = buffers.pending, buffers.scratch
    while True:
        end = pending.find(b"\r\n")
        if end >= 0:
            line = bytes(pending[:end])
            del pending[: end + 2]
            return line
        n = yield scratch
        if not n:
            raise ProtocolError("the answer ended inside a chunk header")
        pending += scratch[:n]


def _read_chunked(buffers: Buffers) -> Generator[Op, int, bytes]:
    parts: list[bytes] = []
    while True:
        line = yield from _read_line(buffers)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
        if size == 0:
            while (yield from _read_line(buffers)):  # trailers, up to the blank line
                pass
            return b"".join(parts)
        parts.append((yield from _read_exact(buffers, size)))
        yield from _read_line(buffers)


def _read_to_end(buffers: Buffers) -> Generator[Op, int, bytes]:
    pending, scratch = buffers.pending, buffers.scratch
    while True:
        n = yield scratch
        if not n:
            data = bytes(pending)
            pending.clear()
            return data
        pending += scratch[:n]
