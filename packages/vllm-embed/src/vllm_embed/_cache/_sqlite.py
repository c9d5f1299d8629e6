"""The SQLite cache backend: one file, WAL mode, safe for threads and processes.

Each thread (and each process after a fork) gets its own connection. Writes are one
transaction per batch, so a process killed while writing leaves only whole entries
(SQLite rolls the unfinished transaction back on the next open). Entries carry their last
access time; when the file's used pages exceed ``max_bytes`` the least recently used
entries are deleted. Access times are refreshed at most once per ``touch_interval``
seconds per entry, so reading a hot cache costs no writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vllm_embed._cache._keys import SPACE_PREFIX_LEN
from vllm_embed._errors import CacheCorruptError, CacheUnavailableError

__all__ = ["SQLiteBackend"]

_SCHEMA_VERSION = "2"
_CHUNK = 4096  # keys per SELECT ... IN (...); SQLite >= 3.32 allows 32766 variables
_PAGE_SIZE = 16384  # several 4 KiB vectors per page
_MMAP_BYTES = 1 << 30  # read pages through the OS page cache, without copying them
_PAGE_CACHE_KIB = 32768
_TOUCH_FROM = 0.5  # refresh access times once the file is half its size limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    atime REAL NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS vectors_atime ON vectors (atime);
CREATE TABLE IF NOT EXISTS spaces (
    prefix BLOB PRIMARY KEY,
    model TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    settings BLOB NOT NULL,
    generation INTEGER NOT NULL,
    model TEXT NOT NULL,
    probe BLOB NOT NULL,
    PRIMARY KEY (settings, generation)
);
"""


def _is_corrupt(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    )


class SQLiteBackend:
    """Cache entries in one SQLite file (see the module docstring)."""

    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None,
        busy_timeout: float = 2.0,
        touch_interval: float = 60.0,
    ) -> None:
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / "embeddings.sqlite"
        self.path = target
        self.location = str(target)
        self.max_bytes = max_bytes
        self.busy_timeout = busy_timeout
        self.touch_interval = touch_interval
        #: Seconds between checks of the file size against ``max_bytes`` when reading.
        self.limit_check_interval = 10.0
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._ready = False
        self._limit_checked_at = -1e9
        self._near = False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheUnavailableError(
                f"Cannot create the cache directory {target.parent}: {exc}", location=str(target)
            ) from exc
        self.ensure_ready(raise_unavailable=False)

    def ensure_ready(self, *, raise_unavailable: bool = True) -> None:
        """Create / check the schema. A damaged file always raises CacheCorruptError; a
        locked one raises CacheUnavailableError only when asked (else: retried on use)."""
        try:
            with self._errors():
                self._conn()
        except CacheUnavailableError:
            if raise_unavailable:
                raise

    # ---------------------------------------------------------------- connections
    def corrupt_error(self, exc: BaseException) -> CacheCorruptError:
        p = self.location
        return CacheCorruptError(
            f"The embedding cache {p} is damaged or is not a vllm-embed cache ({exc}). It "
            f"only holds copies of vectors: clear it with `vllm-embed cache clear {p}` (or "
            f"delete {p}, {p}-wal and {p}-shm) and the next embed call fills it again.",
            location=p,
        )

    def unavailable_error(self, exc: BaseException) -> CacheUnavailableError:
        return CacheUnavailableError(
            f"The embedding cache {self.location} could not be used ({exc}). Check that "
            "the file is writable and not locked by another program.",
            location=self.location,
        )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        conn.execute(f"PRAGMA cache_size = -{_PAGE_CACHE_KIB}")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            if self._closed:
                raise CacheUnavailableError(
                    f"The cache {self.location} is closed.", location=self.location
                )
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
        if not self._ready:
            self._ready = True  # set first: _init_schema uses this connection
            try:
                self._init_schema()
            except BaseException:
                self._ready = False
                raise
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if _is_corrupt(exc):
                raise self.corrupt_error(exc) from exc
            raise self.unavailable_error(exc) from exc

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._errors():
            conn = self._conn()
            try:
                row = conn.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                row = None
            if row is None:
                self._create(conn)
            elif row[0] != _SCHEMA_VERSION:
                raise CacheCorruptError(
                    f"{self.location} is a vllm-embed cache of another format "
                    f"(schema {row[0]}, this version reads {_SCHEMA_VERSION}). Clear it "
                    f"with `vllm-embed cache clear {self.location}`.",
                    location=self.location,
                )

    def _create(self, conn: sqlite3.Connection) -> None:
        fresh = not conn.execute("SELECT 1 FROM sqlite_master").fetchone()
        if fresh:
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise CacheUnavailableError(
                f"{self.location} cannot use SQLite's WAL mode (got {mode}); put the "
                "cache on a local file system.",
                location=self.location,
            )
        with self._write(conn):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)",
                (_SCHEMA_VERSION,),
            )

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):  # closing a broken connection
                conn.close()
        self._local = threading.local()

    # ---------------------------------------------------------------- entries
    def get_many(self, keys: Sequence[bytes]) -> tuple[list[bytes | None], set[bytes]]:
        """The value of each key (None: absent) and the keys of truncated inputs."""
        found: dict[bytes, bytes] = {}
        cut: set[bytes] = set()
        with self._errors():
            conn = self._conn()
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, value, truncated FROM vectors WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update((r[0], r[1]) for r in rows)
                cut.update(r[0] for r in rows if r[2])
            if found and self._near_limit(conn):
                self._touch(conn, list(found))
        return list(map(found.get, keys)), cut

    def _near_limit(self, conn: sqlite3.Connection) -> bool:
        """True when eviction may come soon, so access times matter (checked every 10 s)."""
        if self.max_bytes is None:
            return False
        now = time.monotonic()
        if now >= self._limit_checked_at + self.limit_check_interval:
            self._limit_checked_at = now
            self._near = self._used(conn) >= self.max_bytes * _TOUCH_FROM
        return self._near

    def _touch(self, conn: sqlite3.Connection, keys: list[bytes]) -> None:
        """Refresh the access times of entries older than ``touch_interval`` (best effort:
        a busy database skips it). Only near the size limit: far from it nothing is
        evicted, and reading costs no writes."""
        now = time.time()
        old = now - self.touch_interval
        with contextlib.suppress(sqlite3.OperationalError), self._write(conn):
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    f"UPDATE vectors SET atime = ? WHERE atime < ? AND key IN ({marks})",
                    (now, old, *chunk),
                )

    def put_many(self, items: Sequence[tuple[bytes, bytes, bool]]) -> None:
        if not items:
            return
        now = time.time()
        with self._errors():
            conn = self._conn()
            with self._write(conn):
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, value, atime, truncated) "
                    "VALUES (?, ?, ?, ?)",
                    [(k, v, now, int(t)) for k, v, t in items],
                )
            if self.max_bytes is not None:
                self._evict(conn)

    def used_bytes(self) -> int:
        with self._errors():
            return self._used(self._conn())

    @staticmethod
    def _used(conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Delete least recently used entries until the used pages fit ``max_bytes``."""
        assert self.max_bytes is not None
        for _ in range(8):
            used = self._used(conn)
            if used <= self.max_bytes:
                return
            with self._write(conn):
                row = conn.execute("SELECT count(*), avg(length(value)) FROM vectors").fetchone()
                count, avg = int(row[0] or 0), float(row[1] or 0)
                if count == 0:
                    return
                target = self.max_bytes * 0.9
                per_entry = max(used / count, avg, 1.0)
                n = min(count, max(1, math.ceil((used - target) / per_entry)))
                conn.execute(
                    "DELETE FROM vectors WHERE key IN "
                    "(SELECT key FROM vectors ORDER BY atime LIMIT ?)",
                    (n,),
                )

    # ---------------------------------------------------------------- spaces
    def register_space(self, prefix: bytes, model: str, description: str) -> None:
        with self._errors():
            conn = self._conn()
            if conn.execute("SELECT 1 FROM spaces WHERE prefix = ?", (prefix,)).fetchone():
                return
            with self._write(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO spaces (prefix, model, description) VALUES (?, ?, ?)",
                    (prefix, model, description),
                )

    def fingerprint(self, settings: bytes) -> tuple[int, bytes] | None:
        with self._errors():
            row = (
                self._conn()
                .execute(
                    "SELECT generation, probe FROM fingerprints WHERE settings = ? "
                    "ORDER BY generation DESC LIMIT 1",
                    (settings,),
                )
                .fetchone()
            )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def add_fingerprint(self, settings: bytes, generation: int, model: str, probe: bytes) -> None:
        with self._errors():
            conn = self._conn()
            with self._write(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO fingerprints (settings, generation, model, probe) "
                    "VALUES (?, ?, ?, ?)",
                    (settings, generation, model, probe),
                )

    # ---------------------------------------------------------------- admin
    def stats(self) -> dict[str, Any]:
        with self._errors():
            conn = self._conn()
            models: dict[str, dict[str, int]] = {}
            names = dict(conn.execute("SELECT prefix, model FROM spaces").fetchall())
            rows = conn.execute(
                "SELECT substr(key, 1, ?), count(*), coalesce(sum(length(value)), 0) "
                "FROM vectors GROUP BY 1",
                (SPACE_PREFIX_LEN,),
            ).fetchall()
            entries = size = 0
            for prefix, count, nbytes in rows:
                model = names.get(prefix, "(unknown)")
                slot = models.setdefault(model, {"entries": 0, "bytes": 0})
                slot["entries"] += int(count)
                slot["bytes"] += int(nbytes)
                entries += int(count)
                size += int(nbytes)
            file_bytes = sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            )
            return {
                "backend": "sqlite",
                "location": self.location,
                "entries": entries,
                "value_bytes": size,
                "file_bytes": file_bytes,
                "max_bytes": self.max_bytes,
                "models": models,
            }

    def clear(self, model: str | None = None) -> int:
        with self._errors():
            conn = self._conn()
            with self._write(conn):
                if model is None:
                    n = conn.execute("DELETE FROM vectors").rowcount
                    conn.execute("DELETE FROM spaces")
                    conn.execute("DELETE FROM fingerprints")
                else:
                    n = 0
                    prefixes = [
                        r[0]
                        for r in conn.execute("SELECT prefix FROM spaces WHERE model = ?", (model,))
                    ]
                    for prefix in prefixes:
                        n += conn.execute(
                            "DELETE FROM vectors WHERE key >= ? AND key < ?",
                            (prefix, _after(prefix)),
                        ).rowcount
                    conn.execute("DELETE FROM spaces WHERE model = ?", (model,))
                    conn.execute("DELETE FROM fingerprints WHERE model = ?", (model,))
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(n)


def _after(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string starting with ``prefix``."""
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\xff" * (len(prefix) + 32)
    raw[-1] += 1
    return bytes(raw)


def remove_files(path: str | os.PathLike[str]) -> list[str]:
    """Delete a (corrupt) cache file and its WAL / shared-memory files."""
    removed = []
    for p in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            p.unlink()
            removed.append(str(p))
    return removed
