"""The fake server's HTTP side: the asyncio connection protocol, the child process's main
(``_serve`` / ``_child_main``), and :class:`InProcessFakeVLLM` (the same request handling
without a socket, for respx)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from ._app import _App
from ._config import _REASONS, FakeServerConfig, _Request


def _response_bytes(
    status: int, headers: dict[str, str], body: list[bytes], keep_alive: bool
) -> list[bytes]:
    """The HTTP response as [head, body]: a one-part body is sent without a copy."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {sum(map(len, body))}")
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if len(body) == 1 and len(body[0]) > 65536:
        return [head, body[0]]
    return [b"".join([head, *body])]


class InProcessFakeVLLM:
    """The fake server's request handling in the caller's process: no child, no socket.

    :mod:`vllm_embed_testing.respx_vllm` serves it through respx. Same config, same
    answers as :class:`FakeEmbeddingServer` (failure injection and delays aside: those
    belong to the connection).
    """

    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self._app = _App(config)

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` for one request (``path`` with its query string)."""
        request = _Request(
            method=method,
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            keep_alive=True,
        )
        status, extra, parts = self._app.handle(request)
        return status, extra, b"".join(parts)

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_fake/stats``."""
        return self._app.stats()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, app: _App) -> None:
        self.app = app
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed (rate-limited) response is pending
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.app.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._process()

    def _parse(self) -> _Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, version = [*head[0].split(" "), "", "", ""][:3]
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        return _Request(method, target, headers, body, keep_alive)

    def _process(self) -> None:
        while not self.busy and not self.closed:
            request = self._parse()
            if request is None:
                return
            self._answer(request)

    def _answer(self, req: _Request) -> None:
        app = self.app
        path = req.path.split("?", 1)[0]
        if path == "/_fake/stats":
            stats = json.dumps(app.stats()).encode()
            self._send(_response_bytes(200, {"content-type": "application/json"}, [stats], True))
            return
        if app.should_fail():
            app.failures_sent += 1
            self._fail(req)
            return
        status, headers, body = app.handle(req)
        cfg = app.config
        wait = 0.0
        if path == "/v1/embeddings" and status == 200:
            wait = cfg.delay
            if cfg.stall_rate and app.stall_random.random() < cfg.stall_rate:
                app.stalls += 1
                wait += cfg.stall
            if cfg.rate_limit:
                now = time.monotonic()
                start = max(now, app.next_free)
                app.next_free = start + max(app.last_count, 1) / cfg.rate_limit
                wait = max(wait, app.next_free - now)
        data = _response_bytes(status, headers, body, req.keep_alive)
        if wait <= 0:
            self._send(data, req.keep_alive)
            return
        self.busy = True
        app.in_flight += 1
        app.max_in_flight = max(app.max_in_flight, app.in_flight)
        asyncio.get_running_loop().call_later(wait, self._send_later, data, req.keep_alive)

    def _send_later(self, data: list[bytes], keep_alive: bool) -> None:
        self.app.in_flight -= 1
        self.busy = False
        self._send(data, keep_alive)
        self._process()

    def _send(self, data: list[bytes], keep_alive: bool = True) -> None:
        if self.transport is None or self.closed:
            return
        for chunk in data:
            self.transport.write(chunk)
        if not keep_alive:
            self.transport.close()
            self.closed = True

    def _fail(self, req: _Request) -> None:
        mode = self.app.config.fail_mode
        if mode == "drop":
            assert self.transport is not None
            self.transport.close()
            self.closed = True
        elif mode == "hang":
            self.busy = True  # never answer anything on this connection again
        else:
            status = int(mode)
            body = json.dumps(
                {"error": {"message": "fake failure", "type": "ServerError", "code": status}}
            ).encode()
            headers = {"content-type": "application/json"}
            self._send(_response_bytes(status, headers, [body], req.keep_alive), req.keep_alive)


async def _serve(config: FakeServerConfig) -> None:
    loop = asyncio.get_running_loop()
    app = _App(config)
    server = await loop.create_server(lambda: _Connection(app), "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def parent_gone() -> None:  # stdin is a pipe from the parent: EOF means it died
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, parent_gone)
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await stop.wait()


def _child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fake embedding server (child process)")
    parser.add_argument("config", help="FakeServerConfig as JSON")
    args = parser.parse_args(argv)
    config = FakeServerConfig(**json.loads(args.config))
    if config.cpus:
        os.sched_setaffinity(0, config.cpus)
    asyncio.run(_serve(config))
