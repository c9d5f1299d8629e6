"""A real PostgreSQL 16 + pgvector for tests, from the PyPI package ``pgserver``.

``pgserver`` ships the Postgres binaries with pgvector built in. We use its binaries and
its root handling (as root, the server runs as the system user ``pgserver``) but start
the server ourselves so it listens on TCP 127.0.0.1 at a free port with password
authentication: the tests connect with a ``postgresql://user:password@127.0.0.1:port/db``
URL the way users do. A server that will not start raises :class:`PostgresStartError`
carrying its log; nothing skips.

    with PostgresServer() as pg:
        url = pg.url()            # postgresql://postgres:<password>@127.0.0.1:<port>/postgres
        pg.create_database("t1")  # with the vector extension created
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "PostgresStartError", "pg_server"]

SYSTEM_USER = "pgserver"
SUPERUSER = "postgres"


class PostgresStartError(RuntimeError):
    """The test Postgres did not start; the message carries its log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One Postgres cluster in a temporary directory, stopped and removed on close."""

    def __init__(self) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.password = secrets.token_urlsafe(12)
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vllm-embed-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user: str | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> PostgresServer:
        try:
            self._prepare()
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                f"--pwfile={self.root / 'pw'}",
            )
            (self.root / "pw").unlink()
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log),
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.root}",
                "start",
            )
            self._started = True
            self.psql("CREATE EXTENSION IF NOT EXISTS vector")
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop()
            raise PostgresStartError(self._failure(exc)) from exc
        return self

    def _prepare(self) -> None:
        (self.root / "pw").write_text(self.password + "\n")
        if os.geteuid() == 0:  # Postgres refuses to run as root: use pgserver's user
            import pwd

            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, 0o555)
            ensure_folder_permissions(self.bin.parent / "lib", 0o444)
            entry = pwd.getpwnam(SYSTEM_USER)
            ensure_prefix_permissions(self.root)
            for path in (self.root, self.root / "pw"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._user = SYSTEM_USER

    def _run(self, exe: str, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / exe), *args],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise subprocess.SubprocessError(
                f"{exe} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done.stdout

    def _failure(self, exc: BaseException) -> str:
        log = self.log.read_text(errors="replace") if self.log.exists() else "(no server log)"
        return (
            f"the test Postgres (pgserver binaries) did not start: {exc}\n--- server log ---\n{log}"
        )

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ------------------------------------------------------------------------------
    def url(
        self, database: str = "postgres", *, user: str = SUPERUSER, password: bool = True
    ) -> str:
        auth = f"{user}:{self.password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        return self.url(database).replace("postgresql://", "postgresql+psycopg://", 1)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket."""
        return self._run(
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-Atc",
            sql,
        )

    def create_database(self, name: str) -> str:
        """A fresh database with the vector extension; returns its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"')
        self.psql("CREATE EXTENSION IF NOT EXISTS vector", database=name)
        return self.url(name)

    def server_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


#: Where the session's server lives while it runs (see ``pg_server``).
_SERVER = pytest.StashKey[PostgresServer]()


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The session's Postgres + pgvector; fails (never skips) with the log if it won't start.
    One server per pytest session even when several folders' conftests import this fixture
    (tests/doctor beside tests/pgvector): the first instance owns and stops it."""
    stash = request.session.stash
    if _SERVER in stash:
        yield stash[_SERVER]
        return
    began = time.monotonic()
    server = PostgresServer()
    try:
        server.start()
    except PostgresStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    server.started_in = time.monotonic() - began  # type: ignore[attr-defined]
    stash[_SERVER] = server
    try:
        yield server
    finally:
        del stash[_SERVER]
        server.stop()


@pytest.fixture
def db(pg_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database (with the vector extension) for this test; returns its URL."""
    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    return pg_server.create_database(name)
