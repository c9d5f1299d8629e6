"""The lean transport's HTTP/1.1 exchange, sans I/O: scripted bytes in, Reply out."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed._transports._http11 import (
    Buffers,
    Disconnected,
    Fill,
    ProtocolError,
    exchange,
    request_head,
)

HEAD = request_head("POST", "/v1/embeddings", "gpu:8000", {"Content-Type": "application/json"})


def _run(chunks: list[bytes], *, body: bytes | None = b"{}", place=None, buffers=None):
    """Drive one exchange: sends are recorded, receives take the next scripted chunk
    (b"" = the server closed the connection)."""
    sent: list[bytes] = []
    chunks = list(chunks)
    steps = exchange(buffers or Buffers(), HEAD, body, place)
    try:
        op = next(steps)
        while True:
            if isinstance(op, bytes):
                sent.append(op)
                op = steps.send(0)
            else:
                if isinstance(op, Fill):  # a body of known length: same scripted chunks
                    op = op.view
                data = chunks.pop(0) if chunks else b""
                k = min(len(data), op.nbytes)
                op[:k] = data[:k]
                if k < len(data):
                    chunks.insert(0, data[k:])
                op = steps.send(k)
    except StopIteration as done:
        reply, keep_alive = done.value
        return reply, keep_alive, b"".join(sent)


def test_request_bytes() -> None:
    _, _, sent = _run([b"HTTP/1.1 204 No Content\r\n\r\n"], body=b'{"a":1}')
    assert sent == (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: gpu:8000\r\nAccept-Encoding: identity\r\n"
        b'Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )
    _, _, sent = _run([b"HTTP/1.1 204 No Content\r\n\r\n"], body=None)
    assert sent.endswith(b"Content-Type: application/json\r\n\r\n")


def test_content_length_split_anywhere() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: a\r\nx-twice: b\r\n"
    answer += b"Content-Length: 11\r\n\r\nhello world"
    for cut in range(1, len(answer)):
        reply, keep_alive, _ = _run([answer[:cut], answer[cut:]])
        assert (reply.status, reply.content, keep_alive) == (200, b"hello world", True)
        assert reply.headers["content-type"] == "text/plain"
        assert reply.headers["x-twice"] == "a, b"


def test_body_read_into_the_placed_buffer() -> None:
    rows = np.zeros((2, 3), np.float32)
    values = np.arange(6, dtype="<f4")
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\nmetadata: {}\r\n\r\n" + values.tobytes()
    seen = {}

    def place(headers):
        seen.update(headers)
        return memoryview(rows.data).cast("B")

    reply, _, _ = _run([answer[:40], answer[40:50], answer[50:]], place=place)
    assert reply.placed and reply.content == b""
    assert seen["metadata"] == "{}"
    np.testing.assert_array_equal(rows.ravel(), values)
    # A buffer of the wrong size, or an error status: the body comes back whole.
    reply, _, _ = _run([answer], place=lambda h: memoryview(bytearray(8)))
    assert not reply.placed and reply.content == values.tobytes()
    error = b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno"
    reply, _, _ = _run([error], place=place)
    assert (reply.status, reply.content, reply.placed) == (500, b"no", False)


def test_chunked_close_and_informational() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    reply, keep_alive, _ = _run([chunked[:30], chunked[30:61], chunked[61:]])
    assert (reply.status, reply.content, keep_alive) == (200, b"hello world", True)
    to_close = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    reply, keep_alive, _ = _run([to_close, b""])
    assert (reply.content, keep_alive) == (b"until the end", False)
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert _run([closing])[1] is False


def test_leftover_bytes_stay_for_the_next_answer() -> None:
    buffers = Buffers()
    one = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
    two = one + b"a" + one + b"b"
    assert _run([two], buffers=buffers)[0].content == b"a"
    assert _run([], buffers=buffers)[0].content == b"b"


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        ([b""], Disconnected),
        ([b"HTTP/1.1 200 OK\r\nContent-Le", b""], ProtocolError),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b""], ProtocolError),
        ([b"SMTP ready\r\n\r\n"], ProtocolError),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], ProtocolError),
        ([b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"], ProtocolError),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], ProtocolError),
    ],
)
def test_broken_answers(chunks: list[bytes], error: type[Exception]) -> None:
    with pytest.raises(error):
        _run(chunks)
