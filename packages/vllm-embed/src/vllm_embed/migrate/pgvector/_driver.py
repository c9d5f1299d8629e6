"""Talking to Postgres: the psycopg 3 driver, connections, passwords kept out of messages,
SQL identifiers (quoted, shortened to 63 bytes) and the names of vllm-embed's own tables."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from vllm_embed._errors import PostgresConnectionError, PostgresDriverMissingError
from vllm_embed._secrets import mask_url, mask_url_in

if TYPE_CHECKING:
    import psycopg

#: The names vllm-embed gives its own tables (and the marks of its shadow and backups).
MIGRATIONS_TABLE = "vllm_embed_migrations"
SPACES_TABLE = "vllm_embed_spaces"
SHADOW_PREFIX = "vllm_embed_shadow_"
BACKUP_MARK = "_vllm_bak_d"
_MAX_IDENT = 63


def load_driver() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise PostgresDriverMissingError(
            "migrating a Postgres table needs the psycopg 3 driver: "
            "pip install 'vllm-embed[postgres]'"
        ) from exc
    return psycopg


def connect(url: str, *, application_name: str = "vllm-embed migrate") -> psycopg.Connection[Any]:
    """A psycopg connection (password from the URL, ``PGPASSWORD`` or ``~/.pgpass``)."""
    driver = load_driver()
    try:
        conn: psycopg.Connection[Any] = driver.connect(
            url, application_name=application_name, connect_timeout=10, autocommit=True
        )
    except driver.Error as exc:
        raise PostgresConnectionError(
            f"could not connect to {mask_url(url)}: {mask_url_in(first_line(exc), url)}. Check the "
            "host, port and database; the password comes from the URL, PGPASSWORD or ~/.pgpass."
        ) from None
    return conn


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def short_name(name: str) -> str:
    """``name`` if it fits Postgres' 63-byte limit, else a prefix + hash that does."""
    if len(name.encode()) <= _MAX_IDENT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[: _MAX_IDENT - 9].decode(errors="ignore") + "_" + digest


def sql_literal(conn: psycopg.Connection[Any], value: str) -> str:
    from psycopg import sql

    return str(sql.Literal(value).as_string(conn))


@contextmanager
def connection(url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(url)
    psycopg = load_driver()
    try:
        yield conn
    except psycopg.OperationalError as exc:
        raise PostgresConnectionError(
            f"lost the connection to {mask_url(url)}: {mask_url_in(first_line(exc), url)}. Every "
            "committed batch is kept and the table is unchanged; run the same command again to "
            "resume."
        ) from None
    finally:
        conn.close()
