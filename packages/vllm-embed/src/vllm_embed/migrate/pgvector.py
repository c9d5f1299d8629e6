"""Re-embed pgvector tables in place: shadow table, resumable batches, one-transaction switch.

``vllm-embed migrate postgresql://USER@HOST:PORT/DB`` is the command line; this module is
the library behind it (driver: psycopg 3, ``pip install 'vllm-embed[postgres]'``).

Layouts found by :func:`discover`:

- LangChain ``langchain-postgres`` PGVector: ``langchain_pg_embedding`` (one target per
  table; ``--collection`` re-embeds only some collections, when the column is untyped);
- LlamaIndex ``PGVectorStore``: ``data_*`` tables (text rebuilt as LlamaIndex embeds it:
  ``get_content(MetadataMode.EMBED)`` from ``metadata_->>'_node_content'``);
- LightRAG PG: ``lightrag_vdb_*`` (also the model/dimension-suffixed names);
- any other table named with ``--table --id-column --text-column --vector-column``.

How a table is migrated (:func:`migrate_table`):

1. Checks before anything is written: the columns and their types, a unique key, rows
   without text, privileges (owner of the table, CREATE on its schema), no lock held by
   another session (``lock_timeout``). Each failure is a named `StoreError`.
2. Fill: rows are read in key order, embedded, and written with binary ``COPY`` into a
   shadow table ``vllm_embed_shadow_<hash>`` (key, md5 of the text, new vector). Each
   batch commits together with its position in ``vllm_embed_migrations``, so a killed
   run resumes after the last committed batch and re-embeds nothing committed.
3. Switch. First, while the application keeps reading and writing: rows added or changed
   since they were embedded are embedded, and the new table ``<table>__vllm_new`` is built
   beside the old one (same columns, defaults, constraints; the vector column keeps its
   name and becomes ``vector(n)`` where it was typed) with every index of the old table
   (same definition: HNSW / IVFFlat opclass and parameters kept). Then ONE transaction:
   ``LOCK ... EXCLUSIVE`` (writers wait, readers go on), the rows written meanwhile are
   embedded and applied, foreign keys, grants, owner and sequences are carried over, and
   under ``ACCESS EXCLUSIVE`` only renames happen: the old table becomes the backup
   ``<table>_vllm_bak_d<old dim>`` and the new one takes its name. Readers wait only for
   the renames (``MigrationReport.readers_blocked_seconds``); until the commit they see
   the old vectors, after it the new ones. A crash anywhere rolls the switch back.
4. The embedding space (model, dimension, instructions) is recorded as a comment on the
   vector column and in ``vllm_embed_spaces``; ``vllm-embed doctor --store URL`` reads it.

The backup stays until ``--drop-backup``. Passwords (URL, ``PGPASSWORD``, ``~/.pgpass``)
never appear in any message: URLs are shown with ``***@``.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt

from vllm_embed._config_readers._mask import mask_url
from vllm_embed._errors import MigrationError, StoreError, StoreFormatError, VLLMEmbedError

from ._engine import Embedder, MissingTextError, Progress, _checked_vectors, _NoProgress
from ._space import SPACE_KEY, EmbeddingSpace

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "InsufficientPrivilegeError",
    "MigrationReport",
    "PgTarget",
    "PostgresConnectionError",
    "PostgresDriverMissingError",
    "RowsWithoutTextError",
    "TableLockedError",
    "TextColumnTypeError",
    "UnsupportedTableError",
    "VectorColumnTypeError",
    "connect",
    "discover",
    "drop_backups",
    "is_postgres_url",
    "migrate_table",
    "read_spaces",
    "redact",
    "select_targets",
]

MIGRATIONS_TABLE = "vllm_embed_migrations"
SPACES_TABLE = "vllm_embed_spaces"
SHADOW_PREFIX = "vllm_embed_shadow_"
BACKUP_MARK = "_vllm_bak_d"
DEFAULT_BATCH_ROWS = 2048
DEFAULT_LOCK_TIMEOUT = 5.0
#: The ACCESS EXCLUSIVE step waits at most this long per attempt (readers queue behind it).
SWITCH_LOCK_WAIT = 1.0
SWITCH_LOCK_ATTEMPTS = 20
MISSING_LISTED = 10
_TEXT_TYPES = {"text", "character varying", "character", "name", "citext"}
_MAX_IDENT = 63


# -- errors -----------------------------------------------------------------------------------
class PostgresDriverMissingError(StoreError):
    """psycopg 3 is not installed: ``pip install 'vllm-embed[postgres]'``."""


class PostgresConnectionError(StoreError):
    """The database could not be reached, or the connection was lost (nothing half-done)."""


class UnsupportedTableError(StoreFormatError):
    """The table's shape cannot be migrated safely (no unique key, foreign keys to it, ...)."""


class TextColumnTypeError(StoreFormatError):
    """The column named as the text column does not hold text."""


class VectorColumnTypeError(StoreFormatError):
    """The column named as the vector column is not a pgvector ``vector``."""


class InsufficientPrivilegeError(StoreError):
    """The database user may not replace the table (owner + CREATE on its schema needed)."""


class TableLockedError(StoreError):
    """Another session holds a lock on the table longer than ``lock_timeout``."""


class RowsWithoutTextError(MissingTextError):
    """Rows in the table have no text to embed; nothing was sent or written."""


# -- connection ---------------------------------------------------------------------------
def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def redact(text: str, url: str) -> str:
    """``text`` with the URL's password (and the URL itself) masked."""
    password = _password_of(url)
    if url:
        text = text.replace(url, mask_url(url))
    if password:
        text = text.replace(password, "***")
    return text


def _password_of(url: str) -> str | None:
    try:
        raw = urlsplit(url).password
    except ValueError:
        return None
    return unquote(raw) if raw else None


def _psycopg() -> Any:
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
    driver = _psycopg()
    try:
        conn: psycopg.Connection[Any] = driver.connect(
            url, application_name=application_name, connect_timeout=10, autocommit=True
        )
    except driver.Error as exc:
        raise PostgresConnectionError(
            f"could not connect to {mask_url(url)}: {redact(_first_line(exc), url)}. Check the "
            "host, port and database; the password comes from the URL, PGPASSWORD or ~/.pgpass."
        ) from None
    return conn


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _short(name: str) -> str:
    """``name`` if it fits Postgres' 63-byte limit, else a prefix + hash that does."""
    if len(name.encode()) <= _MAX_IDENT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[: _MAX_IDENT - 9].decode(errors="ignore") + "_" + digest


# -- targets ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgTarget:
    """One table to re-embed (for LangChain: optionally only some collections)."""

    schema: str
    table: str
    layout: str
    key_columns: tuple[str, ...]
    text_column: str
    vector_column: str
    rows: int = 0
    old_dim: int | None = None
    typed: bool = False
    collections: tuple[str, ...] = ()
    all_collections: tuple[tuple[str, int], ...] = ()

    @property
    def qualified(self) -> str:
        return f"{_q(self.schema)}.{_q(self.table)}"

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def scoped(self) -> bool:
        """True when only some LangChain collections are re-embedded."""
        return bool(self.collections)

    def describe(self) -> str:
        dim = f"vector({self.old_dim})" if self.typed else f"vector (dim {self.old_dim})"
        line = f"{self.layout:<10} {self.name}: {self.rows} rows, {self.vector_column} {dim}"
        if self.all_collections:
            chosen = set(self.collections)
            parts = [
                f"{name!r} ({count} rows){'' if not chosen or name in chosen else ' kept'}"
                for name, count in self.all_collections
            ]
            line += "; collections " + ", ".join(parts)
        return line

    def scope_sql(self, alias: str) -> tuple[str, list[Any]]:
        """A WHERE fragment limiting the rows to re-embed (``TRUE`` for the whole table)."""
        if not self.collections:
            return "TRUE", []
        coll = f"{_q(self.schema)}.langchain_pg_collection"
        return (
            f"{alias}.collection_id IN (SELECT uuid FROM {coll} WHERE name = ANY(%s))",
            [list(self.collections)],
        )


_LAYOUTS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    # layout, table-name regex, required columns, text column, vector column
    (
        "langchain",
        r"^langchain_pg_embedding$",
        ("id", "collection_id", "document", "embedding"),
        "document",
        "embedding",
    ),
    ("llamaindex", r"^data_.+$", ("id", "text", "node_id", "embedding"), "text", "embedding"),
    (
        "lightrag",
        r"^lightrag_vdb_.+$",
        ("id", "content", "content_vector"),
        "content",
        "content_vector",
    ),
)


def _ours(table: str) -> bool:
    return (
        table.startswith(SHADOW_PREFIX)
        or table in (MIGRATIONS_TABLE, SPACES_TABLE)
        or re.search(re.escape(BACKUP_MARK) + r"\d+", table) is not None
        or table.endswith("__vllm_new")
    )


def discover(conn: psycopg.Connection[Any]) -> list[PgTarget]:
    """Every table of a known layout in the database (LangChain, LlamaIndex, LightRAG)."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%%'
        GROUP BY n.nspname, c.relname
        ORDER BY n.nspname, c.relname
        """
    ).fetchall()
    conn.rollback()
    found: list[PgTarget] = []
    for schema, table, columns in rows:
        if _ours(table):
            continue
        for layout, pattern, required, text_col, vec_col in _LAYOUTS:
            if re.match(pattern, table) and set(required) <= set(columns):
                found.append(
                    describe_table(
                        conn,
                        schema,
                        table,
                        layout=layout,
                        text_column=text_col,
                        vector_column=vec_col,
                    )
                )
                break
    return found


def describe_table(
    conn: psycopg.Connection[Any],
    schema: str,
    table: str,
    *,
    layout: str = "custom",
    text_column: str,
    vector_column: str,
    id_column: str | None = None,
    collections: Sequence[str] = (),
) -> PgTarget:
    """Check a table's shape (columns, types, unique key) and describe it."""
    qualified = f"{_q(schema)}.{_q(table)}"
    oid = conn.execute("SELECT to_regclass(%s)::oid", [qualified]).fetchone()
    if oid is None or oid[0] is None:
        conn.rollback()
        raise StoreFormatError(
            f"no table {schema}.{table} in this database; run without --table to list the "
            "tables found"
        )
    columns = {
        name: (typ, udt, typmod)
        for name, typ, udt, typmod in conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            """,
            [oid[0]],
        ).fetchall()
    }
    for role, column in (("text", text_column), ("vector", vector_column)):
        if column not in columns:
            conn.rollback()
            raise StoreFormatError(
                f"{schema}.{table} has no column {column!r} (the {role} column); its columns are "
                f"{', '.join(sorted(columns))}. Name the right one with --{role}-column."
            )
    text_type = columns[text_column][0]
    if text_type.split("(")[0] not in _TEXT_TYPES:
        conn.rollback()
        raise TextColumnTypeError(
            f"{schema}.{table}.{text_column} is {text_type}, not text: the rows' text cannot be "
            "read from it. Name the column holding the text with --text-column."
        )
    vec_type, vec_udt, vec_typmod = columns[vector_column]
    if vec_udt != "vector":
        conn.rollback()
        raise VectorColumnTypeError(
            f"{schema}.{table}.{vector_column} is {vec_type}, not a pgvector vector column "
            "(halfvec, sparsevec, arrays and JSON are not migrated). Name the vector column "
            "with --vector-column."
        )
    key = _key_columns(conn, oid[0], id_column, f"{schema}.{table}")
    all_collections: tuple[tuple[str, int], ...] = ()
    if layout == "langchain":
        all_collections = tuple(
            (str(n), int(c))
            for n, c in conn.execute(
                f"""
                SELECT c.name, count(e.*)
                FROM {_q(schema)}.langchain_pg_collection c
                LEFT JOIN {qualified} e ON e.collection_id = c.uuid
                GROUP BY c.name ORDER BY c.name
                """
            ).fetchall()
        )
        unknown = sorted(set(collections) - {n for n, _ in all_collections})
        if unknown:
            conn.rollback()
            raise StoreFormatError(
                f"no collection {', '.join(map(repr, unknown))} in {schema}.{table}; its "
                f"collections are {', '.join(repr(n) for n, _ in all_collections) or '(none)'}"
            )
    elif collections:
        conn.rollback()
        raise StoreFormatError(
            f"--collection applies to LangChain's langchain_pg_embedding only, not {schema}.{table}"
        )
    count, dim = conn.execute(
        f"SELECT count(*), max(vector_dims({_q(vector_column)})) FROM {qualified}"
    ).fetchone() or (0, None)
    conn.rollback()
    typed = vec_typmod is not None and int(vec_typmod) > 0
    return PgTarget(
        schema=schema,
        table=table,
        layout=layout,
        key_columns=key,
        text_column=text_column,
        vector_column=vector_column,
        rows=int(count),
        old_dim=int(vec_typmod) if typed else (int(dim) if dim is not None else None),
        typed=typed,
        collections=tuple(collections),
        all_collections=all_collections,
    )


def _key_columns(
    conn: psycopg.Connection[Any], oid: int, id_column: str | None, name: str
) -> tuple[str, ...]:
    indexes = conn.execute(
        """
        SELECT i.indisprimary,
               array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_index i
        WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
        ORDER BY i.indisprimary DESC
        """,
        [oid],
    ).fetchall()
    if id_column is not None:
        for _, cols in indexes:
            if list(cols) == [id_column]:
                return (id_column,)
        raise UnsupportedTableError(
            f"{name}.{id_column} is not the primary key nor has a unique index: rows could not be "
            "matched with their new vectors. Name a unique column with --id-column, or add "
            f"CREATE UNIQUE INDEX ON {name} ({id_column})."
        )
    for primary, cols in indexes:
        if primary:
            return tuple(cols)
    raise UnsupportedTableError(
        f"{name} has no primary key: rows could not be matched with their new vectors. "
        "Name a unique column with --id-column."
    )


def select_targets(
    conn: psycopg.Connection[Any],
    found: list[PgTarget],
    *,
    tables: Sequence[str] = (),
    collections: Sequence[str] = (),
    id_column: str | None = None,
    text_column: str | None = None,
    vector_column: str | None = None,
) -> list[PgTarget]:
    """The targets chosen with ``--table`` / ``--collection`` (all found when neither given)."""
    custom = id_column is not None or text_column is not None or vector_column is not None
    if custom:
        if len(tables) != 1 or not (text_column and vector_column):
            raise StoreFormatError(
                "a table of another shape needs --table T --text-column C --vector-column V "
                "(and --id-column K when it has no primary key)"
            )
        schema, table = _split_table(tables[0])
        return [
            describe_table(
                conn,
                schema,
                table,
                text_column=text_column,
                vector_column=vector_column,
                id_column=id_column,
            )
        ]
    chosen = found
    if tables:
        chosen = []
        for wanted in tables:
            hits = [t for t in found if wanted in (t.table, t.name)]
            if not hits:
                known = ", ".join(t.name for t in found) or "(none)"
                raise StoreFormatError(
                    f"--table {wanted}: not a LangChain, LlamaIndex or LightRAG table of this "
                    f"database (found: {known}). For another shape add --text-column and "
                    "--vector-column."
                )
            chosen.extend(hits)
    if collections:
        lc = [t for t in chosen if t.layout == "langchain"]
        if not lc:
            raise StoreFormatError("--collection given, but no LangChain table was found")
        chosen = [
            describe_table(
                conn,
                t.schema,
                t.table,
                layout=t.layout,
                text_column=t.text_column,
                vector_column=t.vector_column,
                collections=collections,
            )
            for t in lc
        ]
    return chosen


def _split_table(value: str) -> tuple[str, str]:
    if "." in value:
        schema, table = value.split(".", 1)
        return schema, table
    return "public", value


# -- checks before anything is written -------------------------------------------------------
def preflight(conn: psycopg.Connection[Any], target: PgTarget, lock_timeout: float) -> None:
    """Every check that can fail before a write: privileges, dependents, text, locks."""
    _check_privileges(conn, target)
    _check_dependents(conn, target)
    _check_text(conn, target)
    _check_lock(conn, target, lock_timeout)


def _check_privileges(conn: psycopg.Connection[Any], target: PgTarget) -> None:
    owner, may_own, may_create, user = conn.execute(
        """
        SELECT pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE'),
               has_schema_privilege(n.oid, 'CREATE'), current_user
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass(%s)
        """,
        [target.qualified],
    ).fetchone() or (None, False, False, None)
    conn.rollback()
    missing = []
    if not may_own:
        missing.append(f"own the table (its owner is {owner!r}: GRANT {_q(str(owner))} TO {user})")
    if not may_create:
        missing.append(
            f"create tables in schema {target.schema!r} (GRANT CREATE ON SCHEMA "
            f"{_q(target.schema)} TO {user})"
        )
    if missing:
        raise InsufficientPrivilegeError(
            f"database user {user!r} may not replace {target.name}: it must "
            + " and ".join(missing)
            + ". Nothing was written. Run as the table's owner or grant these."
        )


def _check_dependents(conn: psycopg.Connection[Any], target: PgTarget) -> None:
    rows = conn.execute(
        """
        SELECT 'foreign key ' || conname || ' of ' || conrelid::regclass::text
        FROM pg_constraint WHERE confrelid = to_regclass(%(t)s) AND contype = 'f'
        UNION ALL
        SELECT 'exclusion constraint ' || conname
        FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) AND contype = 'x'
        UNION ALL
        SELECT DISTINCT 'view ' || r.ev_class::regclass::text
        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
        WHERE d.refobjid = to_regclass(%(t)s) AND d.classid = 'pg_rewrite'::regclass
          AND r.ev_class <> to_regclass(%(t)s)
        UNION ALL
        SELECT 'trigger ' || tgname FROM pg_trigger
        WHERE tgrelid = to_regclass(%(t)s) AND NOT tgisinternal
        UNION ALL
        SELECT 'row-level security policy ' || polname FROM pg_policy
        WHERE polrelid = to_regclass(%(t)s)
        """,
        {"t": target.qualified},
    ).fetchall()
    conn.rollback()
    if rows:
        raise UnsupportedTableError(
            f"{target.name} has {', '.join(r[0] for r in rows)}: they are bound to the table "
            "itself and would keep pointing at the backup after the switch. Nothing was written. "
            "Drop them, migrate, and re-create them on the new table."
        )


def _check_text(conn: psycopg.Connection[Any], target: PgTarget) -> None:
    scope, params = target.scope_sql("t")
    text = _q(target.text_column)
    keys = ", ".join(f"t.{_q(k)}::text" for k in target.key_columns)
    missing = conn.execute(
        f"""
        SELECT ARRAY[{keys}] FROM {target.qualified} t
        WHERE {scope} AND (t.{text} IS NULL OR btrim(t.{text}) = '')
        ORDER BY 1
        """,
        params,
    ).fetchall()
    conn.rollback()
    if not missing:
        return
    ids = [",".join(str(v) for v in row[0]) for row in missing]
    shown = ", ".join(repr(i) for i in ids[:MISSING_LISTED])
    more = f" and {len(ids) - MISSING_LISTED} more" if len(ids) > MISSING_LISTED else ""
    raise RowsWithoutTextError(
        f"{len(ids)} rows of {target.name} have no text in {target.text_column} (NULL or "
        f"blank): {shown}{more}. Nothing was sent or written. Fill in their text or delete them "
        f"(DELETE FROM {target.qualified} WHERE {text} IS NULL OR btrim({text}) = ''), "
        "then run again.",
        ids=ids,
    )


def _check_lock(conn: psycopg.Connection[Any], target: PgTarget, lock_timeout: float) -> None:
    psycopg = _psycopg()
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
            conn.execute(f"LOCK TABLE {target.qualified} IN EXCLUSIVE MODE")
            raise _Rollback
    except _Rollback:
        return
    except psycopg.errors.LockNotAvailable:
        raise _locked(conn, target, lock_timeout) from None


class _Rollback(Exception):
    pass


def _locked(
    conn: psycopg.Connection[Any], target: PgTarget, lock_timeout: float
) -> TableLockedError:
    holders = conn.execute(
        """
        SELECT l.pid, l.mode, coalesce(a.application_name, ''), coalesce(a.state, '')
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.relation = to_regclass(%s) AND l.granted AND l.pid <> pg_backend_pid()
        """,
        [target.qualified],
    ).fetchall()
    conn.rollback()
    who = "; ".join(f"pid {p} holds {m} ({app or 'no name'}, {st})" for p, m, app, st in holders)
    return TableLockedError(
        f"{target.name} is locked by another session ({who or 'no holder left'}); waited "
        f"{lock_timeout:g} s (--lock-timeout). Nothing was written. Let that transaction "
        "finish (or end it with pg_terminate_backend(pid)) and run again."
    )


# -- progress table ---------------------------------------------------------------------------
def _ensure_own_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    with conn.transaction():
        conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {_q(schema)}.{MIGRATIONS_TABLE} (
                target text PRIMARY KEY,
                shadow text NOT NULL,
                state text NOT NULL,
                model text NOT NULL,
                dimension integer NOT NULL,
                space jsonb NOT NULL,
                old_dimension integer,
                collections text[] NOT NULL DEFAULT '{{}}',
                text_column text NOT NULL,
                vector_column text NOT NULL,
                last_key text[],
                rows_done bigint NOT NULL DEFAULT 0,
                backup text,
                readers_blocked_seconds double precision,
                index_seconds double precision,
                started_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz
            )
            """
        )
        conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {_q(schema)}.{SPACES_TABLE} (
                target text NOT NULL,
                collection text NOT NULL DEFAULT '',
                space jsonb NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (target, collection)
            )
            """
        )


def _shadow_name(target: PgTarget) -> str:
    digest = hashlib.sha256(target.name.encode()).hexdigest()[:12]
    return SHADOW_PREFIX + digest


def _backup_name(target: PgTarget) -> str:
    return _short(f"{target.table}{BACKUP_MARK}{target.old_dim or 0}")


@dataclass
class _State:
    shadow: str
    last_key: list[str] | None
    rows_done: int


def _start_or_resume(
    conn: psycopg.Connection[Any], target: PgTarget, space: EmbeddingSpace
) -> _State:
    mig = f"{_q(target.schema)}.{MIGRATIONS_TABLE}"
    shadow = _shadow_name(target)
    with conn.transaction():
        row = conn.execute(
            f"SELECT state, model, dimension, space, collections, last_key, rows_done "
            f"FROM {mig} WHERE target = %s FOR UPDATE",
            [target.name],
        ).fetchone()
        if row is not None and row[0] == "embedding":
            old_space = EmbeddingSpace.from_dict(row[3])
            if old_space.differences(space) or list(row[4]) != list(target.collections):
                raise MigrationError(
                    f"an unfinished migration of {target.name} to {old_space.describe()} "
                    f"(collections {list(row[4]) or 'all'}) has {row[6]} rows done; this run "
                    f"embeds with {space.describe()}. Run with the same server and options to "
                    f"finish it, or discard it: DROP TABLE {_q(target.schema)}.{shadow}; DELETE "
                    f"FROM {mig} WHERE target = '{target.name}'."
                )
            return _State(shadow, list(row[5]) if row[5] is not None else None, int(row[6]))
        if row is not None and row[0] == "done":
            kept = conn.execute(
                f"SELECT backup FROM {mig} WHERE target = %s", [target.name]
            ).fetchone()
            if kept and kept[0]:
                raise MigrationError(
                    f"the backup {kept[0]} of the last migration of {target.name} is still "
                    "there; drop it first (vllm-embed migrate URL --table "
                    f"{target.name} --drop-backup). Nothing was written."
                )
        backup = _backup_name(target)
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            [f"{_q(target.schema)}.{_q(backup)}"],
        ).fetchone()
        if exists and exists[0]:
            raise MigrationError(
                f"the backup {target.schema}.{backup} of an earlier migration is still there; "
                "drop it first (vllm-embed migrate URL --table "
                f"{target.name} --drop-backup) or rename it. Nothing was written."
            )
        keys = ", ".join(f"k{i} text NOT NULL" for i in range(len(target.key_columns)))
        pk = ", ".join(f"k{i}" for i in range(len(target.key_columns)))
        conn.execute(f"DROP TABLE IF EXISTS {_q(target.schema)}.{shadow}")
        conn.execute(
            f"CREATE TABLE {_q(target.schema)}.{shadow} ({keys}, text_md5 text NOT NULL, "
            f"embedding vector NOT NULL, PRIMARY KEY ({pk}))"
        )
        conn.execute(
            f"""
            INSERT INTO {mig} (target, shadow, state, model, dimension, space, old_dimension,
                               collections, text_column, vector_column)
            VALUES (%s, %s, 'embedding', %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (target) DO UPDATE SET
                shadow = EXCLUDED.shadow, state = 'embedding', model = EXCLUDED.model,
                dimension = EXCLUDED.dimension, space = EXCLUDED.space,
                old_dimension = EXCLUDED.old_dimension, collections = EXCLUDED.collections,
                text_column = EXCLUDED.text_column, vector_column = EXCLUDED.vector_column,
                last_key = NULL, rows_done = 0, backup = NULL, readers_blocked_seconds = NULL,
                index_seconds = NULL, started_at = now(), finished_at = NULL
            """,
            [
                target.name,
                shadow,
                space.model,
                space.dimension,
                space.to_json(),
                target.old_dim,
                list(target.collections),
                target.text_column,
                target.vector_column,
            ],
        )
    return _State(shadow, None, 0)


# -- texts --------------------------------------------------------------------------------
def _llamaindex_text(raw: str, node_content: str | None) -> str:
    """The text LlamaIndex embeds for a row (``get_content(MetadataMode.EMBED)``)."""
    if not node_content:
        return raw
    try:
        data = json.loads(node_content)
    except json.JSONDecodeError:
        return raw
    if not isinstance(data, dict):
        return raw
    from .llamaindex import embed_text_fallback

    data = dict(data)
    data["text"] = raw
    data.pop("text_resource", None)
    built = embed_text_fallback(data)
    return built if built else raw


def _select_columns(target: PgTarget, alias: str) -> str:
    keys = ", ".join(f"{alias}.{_q(k)}::text" for k in target.key_columns)
    extra = f", {alias}.metadata_->>'_node_content'" if target.layout == "llamaindex" else ", NULL"
    return f"{keys}, {alias}.{_q(target.text_column)}{extra}"


@dataclass
class _Batch:
    keys: list[tuple[str, ...]]
    raw: list[str]
    texts: list[str]


def _to_batch(target: PgTarget, rows: list[tuple[Any, ...]]) -> _Batch:
    n = len(target.key_columns)
    keys = [tuple(str(v) for v in row[:n]) for row in rows]
    raw = [str(row[n]) if row[n] is not None else "" for row in rows]
    if target.layout == "llamaindex":
        texts = [_llamaindex_text(r, row[n + 1]) for r, row in zip(raw, rows, strict=True)]
    else:
        texts = list(raw)
    return _Batch(keys, raw, texts)


# -- binary COPY ------------------------------------------------------------------------------
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def _copy_payload(batch: _Batch, vectors: npt.NDArray[np.float32]) -> bytes:
    """Rows (key texts, md5 of the text, vector) in COPY BINARY format."""
    n, dim = vectors.shape
    big = np.ascontiguousarray(vectors, dtype=">f4")
    vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    fields = struct.pack(">h", len(batch.keys[0]) + 2) if n else b""
    parts = [_COPY_HEADER]
    for i in range(n):
        parts.append(fields)
        for k in batch.keys[i]:
            kb = k.encode()
            parts.append(struct.pack(">i", len(kb)))
            parts.append(kb)
        md5 = hashlib.md5(batch.raw[i].encode(), usedforsecurity=False).hexdigest().encode()
        parts.append(struct.pack(">i", 32))
        parts.append(md5)
        parts.append(vec_head)
        parts.append(big[i].tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _copy_into_shadow(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    shadow: str,
    batch: _Batch,
    vectors: npt.NDArray[np.float32],
) -> None:
    """``shadow`` is the qualified name of the shadow table."""
    cols = ", ".join(f"k{i}" for i in range(len(target.key_columns)))
    with conn.cursor().copy(
        f"COPY {shadow} ({cols}, text_md5, embedding) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(_copy_payload(batch, vectors))


# -- the run ------------------------------------------------------------------------------
@dataclass
class MigrationReport:
    """What one table's migration did (printed as the CLI summary)."""

    target: str
    layout: str
    rows: int
    old_dim: int | None
    new_dim: int
    embedded_now: int
    resumed: int
    caught_up: int
    backup: str
    seconds: float
    embed_seconds: float
    switch_seconds: float
    index_seconds: float
    readers_blocked_seconds: float
    writers_blocked_seconds: float
    truncated: int = 0
    verified_with: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.embedded_now / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PgOptions:
    """How to migrate a Postgres table."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    kind: str = "document"
    #: Test hook: called with the phase name at the fault points: "batch" (after each
    #: committed batch), "built" (new table built, before the switch), "switch" (writers
    #: held), "renamed" (before the commit).
    on_phase: Callable[[str], None] | None = None


def migrate_table(
    url: str,
    target: PgTarget,
    embedder: Embedder,
    space: EmbeddingSpace,
    options: PgOptions | None = None,
    progress: Progress | None = None,
) -> MigrationReport:
    """Re-embed ``target`` and switch it in one transaction (see the module docstring)."""
    options = options or PgOptions()
    progress = progress or _NoProgress()
    began = time.perf_counter()
    with _connection(url) as conn:
        preflight(conn, target, options.lock_timeout)
        new_dim = space.dimension
        if target.scoped and target.typed and target.old_dim != new_dim:
            raise MigrationError(
                f"{target.name}.{target.vector_column} is vector({target.old_dim}), shared by "
                f"every collection: it cannot hold {new_dim}-dimensional vectors for "
                f"{', '.join(map(repr, target.collections))} only. Migrate all collections "
                "(leave out --collection). Nothing was written."
            )
        _ensure_own_tables(conn, target.schema)
        state = _start_or_resume(conn, target, space)
        total = _count_scope(conn, target)
        progress.start(total, min(state.rows_done, total))
        embed_began = time.perf_counter()
        try:
            embedded, truncated = _fill(conn, target, embedder, state, new_dim, options, progress)
        finally:
            progress.close()
        embed_seconds = time.perf_counter() - embed_began
        switch = _switch(conn, url, target, embedder, space, state, options)
    _drop_shadow(url, target, state.shadow)
    return MigrationReport(
        target=target.name,
        layout=target.layout,
        rows=total,
        old_dim=target.old_dim,
        new_dim=new_dim,
        embedded_now=embedded + switch.caught_up,
        resumed=state.rows_done - embedded if state.rows_done > embedded else 0,
        caught_up=switch.caught_up,
        backup=f"{target.schema}.{switch.backup}",
        seconds=time.perf_counter() - began,
        embed_seconds=embed_seconds,
        switch_seconds=switch.seconds,
        index_seconds=switch.index_seconds,
        readers_blocked_seconds=switch.readers_blocked,
        writers_blocked_seconds=switch.writers_blocked,
        truncated=truncated,
        verified_with=["row count", "dimension", "index definitions"],
    )


@contextmanager
def _connection(url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(url)
    psycopg = _psycopg()
    try:
        yield conn
    except psycopg.OperationalError as exc:
        raise PostgresConnectionError(
            f"lost the connection to {mask_url(url)}: {redact(_first_line(exc), url)}. Every "
            "committed batch is kept and the table is unchanged; run the same command again to "
            "resume."
        ) from None
    finally:
        conn.close()


def _count_scope(conn: psycopg.Connection[Any], target: PgTarget) -> int:
    scope, params = target.scope_sql("t")
    row = conn.execute(
        f"SELECT count(*) FROM {target.qualified} t WHERE {scope}", params
    ).fetchone()
    conn.rollback()
    return int(row[0]) if row else 0


def _key_types(conn: psycopg.Connection[Any], target: PgTarget) -> list[str]:
    types = []
    for col in target.key_columns:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s",
            [target.qualified, col],
        ).fetchone()
        types.append(str(row[0]) if row else "text")
    conn.rollback()
    return types


def _embed(
    embedder: Embedder, batch: _Batch, kind: str, dim: int, start: int
) -> tuple[npt.NDArray[np.float32], int]:
    result = embedder.embed_with_info(batch.texts, kind=kind)  # type: ignore[arg-type]
    return _checked_vectors(result.vectors, len(batch.texts), dim, start), int(result.truncated)


def _fill(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    embedder: Embedder,
    state: _State,
    dim: int,
    options: PgOptions,
    progress: Progress,
) -> tuple[int, int]:
    """Embed the rows after ``state.last_key`` in key order; one commit per batch."""
    types = _key_types(conn, target)
    scope, params = target.scope_sql("t")
    keys = ", ".join(f"t.{_q(k)}" for k in target.key_columns)
    after = ", ".join(f"CAST(%s AS {typ})" for typ in types)
    mig = f"{_q(target.schema)}.{MIGRATIONS_TABLE}"
    shadow = f"{_q(target.schema)}.{_q(state.shadow)}"

    def read(last: list[str] | None) -> _Batch | None:
        where = scope
        args: list[Any] = list(params)
        if last is not None:
            where += f" AND ({keys}) > ({after})"
            args += last
        rows = conn.execute(
            f"SELECT {_select_columns(target, 't')} FROM {target.qualified} t WHERE {where} "
            f"ORDER BY {keys} LIMIT {int(options.batch_rows)}",
            args,
        ).fetchall()
        conn.rollback()
        return _to_batch(target, rows) if rows else None

    embedded = truncated = 0
    done = state.rows_done
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-embed-pg")
    try:
        batch = read(state.last_key)
        pending: Future[tuple[npt.NDArray[np.float32], int]] | None = None
        if batch is not None:
            pending = pool.submit(_embed, embedder, batch, options.kind, dim, done)
        while batch is not None and pending is not None:
            following = read(list(batch.keys[-1]))
            vectors, cut = _result(pending, target, done)
            pending = None
            if following is not None:
                start = done + len(batch.keys)
                pending = pool.submit(_embed, embedder, following, options.kind, dim, start)
            with conn.transaction():
                _copy_into_shadow(conn, target, shadow, batch, vectors)
                conn.execute(
                    f"UPDATE {mig} SET last_key = %s, rows_done = rows_done + %s WHERE target = %s",
                    [list(batch.keys[-1]), len(batch.keys), target.name],
                )
            done += len(batch.keys)
            embedded += len(batch.keys)
            truncated += cut
            progress.advance(len(batch.keys))
            if options.on_phase is not None:
                options.on_phase("batch")
            batch = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    state.rows_done = done
    return embedded, truncated


def _result(
    pending: Future[tuple[npt.NDArray[np.float32], int]], target: PgTarget, done: int
) -> tuple[npt.NDArray[np.float32], int]:
    try:
        return pending.result()
    except VLLMEmbedError as exc:
        if isinstance(exc, MigrationError):
            raise
        raise MigrationError(
            f"the migration of {target.name} stopped at row {done}: "
            f"{_first_line(exc)}. The table is unchanged; {done} embedded rows are kept in "
            "the database; run the same command again to resume."
        ) from exc


# -- the switch ---------------------------------------------------------------------------
@dataclass
class _SwitchResult:
    backup: str
    seconds: float
    index_seconds: float
    readers_blocked: float
    writers_blocked: float
    caught_up: int


def _ms(seconds: float) -> str:
    return f"'{max(1, int(seconds * 1000))}ms'"


def _switch(
    conn: psycopg.Connection[Any],
    url: str,
    target: PgTarget,
    embedder: Embedder,
    space: EmbeddingSpace,
    state: _State,
    options: PgOptions,
) -> _SwitchResult:
    """Build the new table beside the old (no lock that blocks anyone), then switch.

    Before the switch transaction: rows changed since they were embedded are embedded,
    the new table is filled and its indexes are built while the application keeps reading
    and writing. The switch transaction then holds writers (EXCLUSIVE), applies the rows
    written meanwhile, and holds readers (ACCESS EXCLUSIVE) only for the renames.
    """
    psycopg = _psycopg()
    began = time.perf_counter()
    plan = _new_table_plan(conn, target, space, state)
    with conn.transaction():
        caught_up = _catch_up(conn, target, embedder, plan.shadow, space.dimension, options)
    index_seconds = _build_new_table(conn, target, plan)
    if options.on_phase is not None:
        options.on_phase("built")
    writers_began = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {_ms(options.lock_timeout)}")
            conn.execute(f"LOCK TABLE {target.qualified} IN EXCLUSIVE MODE")
            writers_began = time.perf_counter()
            if options.on_phase is not None:
                options.on_phase("switch")
            caught_up += _catch_up(conn, target, embedder, plan.shadow, space.dimension, options)
            _sync_new_table(conn, target, plan)
            _verify(conn, target, plan.new, space.dimension)
            _copy_table_properties(conn, target, plan.new)
            blocked_began = _rename_into_place(conn, target, plan)
            _record_space(conn, target, space, plan.backup, index_seconds)
            if options.on_phase is not None:
                options.on_phase("renamed")
    except psycopg.errors.LockNotAvailable:
        raise _locked(conn, target, options.lock_timeout) from None
    done = time.perf_counter()
    blocked = done - blocked_began
    with conn.transaction():
        conn.execute(
            f"UPDATE {_q(target.schema)}.{MIGRATIONS_TABLE} SET readers_blocked_seconds = %s "
            "WHERE target = %s",
            [blocked, target.name],
        )
    return _SwitchResult(
        backup=plan.backup,
        seconds=done - began,
        index_seconds=index_seconds,
        readers_blocked=blocked,
        writers_blocked=done - writers_began,
        caught_up=caught_up,
    )


@dataclass
class _NewTable:
    """Names and the column expressions of the table that replaces the old one."""

    new: str
    shadow: str
    backup: str
    names: list[str]
    values: list[str]
    params: list[Any]
    dim: int
    renames: list[tuple[str, str]] = field(default_factory=list)


def _new_table_plan(
    conn: psycopg.Connection[Any], target: PgTarget, space: EmbeddingSpace, state: _State
) -> _NewTable:
    schema = _q(target.schema)
    columns = conn.execute(
        """
        SELECT attname, attgenerated <> '' FROM pg_attribute
        WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
        """,
        [target.qualified],
    ).fetchall()
    vec = target.vector_column
    scope, params = target.scope_sql("t")
    cast = f"::vector({space.dimension})" if target.typed else ""
    names, values = [], []
    for name, generated in columns:
        if generated:
            continue
        names.append(_q(name))
        if name == vec:
            values.append(f"CASE WHEN {scope} THEN s.embedding{cast} ELSE t.{_q(vec)} END")
        else:
            values.append(f"t.{_q(name)}")
    return _NewTable(
        new=f"{schema}.{_q(_short(f'{target.table}__vllm_new'))}",
        shadow=f"{schema}.{_q(state.shadow)}",
        backup=_backup_name(target),
        names=names,
        values=values,
        params=params * sum(1 for n in columns if n[0] == vec),
        dim=space.dimension,
    )


def _shadow_join(target: PgTarget) -> str:
    return " AND ".join(f"s.k{i} = t.{_q(k)}::text" for i, k in enumerate(target.key_columns))


def _build_new_table(conn: psycopg.Connection[Any], target: PgTarget, plan: _NewTable) -> float:
    """Create, fill and index the new table while the old one stays in use; index seconds."""
    with conn.transaction():
        conn.execute(f"DROP TABLE IF EXISTS {plan.new}")
        conn.execute(
            f"CREATE TABLE {plan.new} (LIKE {target.qualified} INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE "
            "INCLUDING COMMENTS INCLUDING COMPRESSION)"
        )
        if target.typed:
            conn.execute(
                f"ALTER TABLE {plan.new} ALTER COLUMN {_q(target.vector_column)} "
                f"TYPE vector({plan.dim})"
            )
        conn.execute(
            f"INSERT INTO {plan.new} ({', '.join(plan.names)}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join(plan.values)} FROM {target.qualified} t "
            f"LEFT JOIN {plan.shadow} s ON {_shadow_join(target)}",
            plan.params,
        )
    began = time.perf_counter()
    with conn.transaction():
        plan.renames = _copy_indexes(conn, target, plan.new, plan.dim)
    return time.perf_counter() - began


def _sync_new_table(conn: psycopg.Connection[Any], target: PgTarget, plan: _NewTable) -> int:
    """Apply the rows inserted, updated or deleted since the new table was filled."""
    keys = [_q(k) for k in target.key_columns]
    same_key = " AND ".join(f"n.{k} = t.{k}" for k in keys)
    conn.execute(
        f"DELETE FROM {plan.new} n WHERE NOT EXISTS "
        f"(SELECT 1 FROM {target.qualified} t WHERE {same_key})"
    )
    differs = " OR ".join(
        f"({value})::text IS DISTINCT FROM n.{name}::text"
        for name, value in zip(plan.names, plan.values, strict=True)
    )
    key_list = ", ".join(f"t.{k}" for k in keys)
    conn.execute(
        f"CREATE TEMP TABLE vllm_embed_dirty ON COMMIT DROP AS SELECT {key_list} "
        f"FROM {target.qualified} t LEFT JOIN {plan.shadow} s ON {_shadow_join(target)} "
        f"LEFT JOIN {plan.new} n ON {same_key} "
        f"WHERE n.{keys[0]} IS NULL OR {differs}",
        plan.params,
    )
    row = conn.execute("SELECT count(*) FROM vllm_embed_dirty").fetchone()
    dirty = int(row[0]) if row else 0
    if dirty:
        d_key = " AND ".join(f"d.{k} = n.{k}" for k in keys)
        conn.execute(f"DELETE FROM {plan.new} n USING vllm_embed_dirty d WHERE {d_key}")
        t_key = " AND ".join(f"d.{k} = t.{k}" for k in keys)
        conn.execute(
            f"INSERT INTO {plan.new} ({', '.join(plan.names)}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join(plan.values)} FROM {target.qualified} t "
            f"JOIN vllm_embed_dirty d ON {t_key} "
            f"LEFT JOIN {plan.shadow} s ON {_shadow_join(target)}",
            plan.params,
        )
    return dirty


def _rename_into_place(conn: psycopg.Connection[Any], target: PgTarget, plan: _NewTable) -> float:
    """ACCESS EXCLUSIVE (retried briefly), then renames only; returns when readers began to wait."""
    psycopg = _psycopg()
    schema = _q(target.schema)
    conn.execute(f"SET LOCAL lock_timeout = {_ms(SWITCH_LOCK_WAIT)}")
    waited = 0.0
    for attempt in range(SWITCH_LOCK_ATTEMPTS):
        tried = time.perf_counter()
        try:
            with conn.transaction():
                conn.execute(f"LOCK TABLE {target.qualified} IN ACCESS EXCLUSIVE MODE")
            break
        except psycopg.errors.LockNotAvailable:
            waited += time.perf_counter() - tried
            time.sleep(min(0.05 * (attempt + 1), 0.5))
    else:
        raise TableLockedError(
            f"{target.name}: readers kept the table busy for {SWITCH_LOCK_ATTEMPTS} attempts of "
            f"{SWITCH_LOCK_WAIT:g} s at the switch; nothing was switched. Run the same command "
            "again (the embedded rows are kept)."
        )
    conn.execute(f"ALTER TABLE {target.qualified} RENAME TO {_q(plan.backup)}")
    for old_index, _tmp in plan.renames:
        bak = _short(f"{old_index}{BACKUP_MARK}{target.old_dim or 0}")
        conn.execute(f"ALTER INDEX {schema}.{_q(old_index)} RENAME TO {_q(bak)}")
    conn.execute(f"ALTER TABLE {plan.new} RENAME TO {_q(target.table)}")
    for old_index, tmp in plan.renames:
        conn.execute(f"ALTER INDEX {schema}.{_q(tmp)} RENAME TO {_q(old_index)}")
    # readers waited for the failed attempts too
    return tried - waited


def _catch_up(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    embedder: Embedder,
    shadow: str,
    dim: int,
    options: PgOptions,
) -> int:
    """Embed rows added, or whose text changed, since they were embedded (inside the switch
    transaction writers are held, so none can follow)."""
    scope, params = target.scope_sql("t")
    join = " AND ".join(f"s.k{i} = t.{_q(k)}::text" for i, k in enumerate(target.key_columns))
    text = f"t.{_q(target.text_column)}"
    rows = conn.execute(
        f"SELECT {_select_columns(target, 't')} FROM {target.qualified} t "
        f"LEFT JOIN {shadow} s ON {join} "
        f"WHERE {scope} AND (s.k0 IS NULL OR s.text_md5 <> md5({text}))",
        params,
    ).fetchall()
    if not rows:
        return 0
    batch = _to_batch(target, rows)
    empty = [",".join(k) for k, t in zip(batch.keys, batch.raw, strict=True) if not t.strip()]
    if empty:
        raise RowsWithoutTextError(
            f"{len(empty)} rows added to {target.name} during the migration have no text: "
            f"{', '.join(map(repr, empty[:MISSING_LISTED]))}. Nothing was switched; fill in "
            "their text and run again.",
            ids=empty,
        )
    n = len(target.key_columns)
    unnest = ", ".join("%s::text[]" for _ in range(n))
    cols = ", ".join(f"k{i}" for i in range(n))
    conn.execute(
        f"DELETE FROM {shadow} WHERE ({cols}) IN (SELECT * FROM unnest({unnest}))",
        [[k[i] for k in batch.keys] for i in range(n)],
    )
    step = max(1, options.batch_rows)
    for start in range(0, len(batch.keys), step):
        part = _Batch(
            batch.keys[start : start + step],
            batch.raw[start : start + step],
            batch.texts[start : start + step],
        )
        try:
            vectors, _ = _embed(embedder, part, options.kind, dim, start)
        except VLLMEmbedError as exc:
            if isinstance(exc, MigrationError):
                raise
            raise MigrationError(
                f"embedding the {len(batch.keys)} rows added to {target.name} during the "
                f"migration failed: {_first_line(exc)}. Nothing was switched; run again."
            ) from exc
        _copy_into_shadow(conn, target, shadow, part, vectors)
    return len(batch.keys)


def _verify(conn: psycopg.Connection[Any], target: PgTarget, new: str, dim: int) -> None:
    scope, params = target.scope_sql("n")
    vec = _q(target.vector_column)
    row = conn.execute(
        f"""
        SELECT (SELECT count(*) FROM {target.qualified}),
               (SELECT count(*) FROM {new}),
               (SELECT count(*) FROM {new} n
                WHERE {scope} AND (n.{vec} IS NULL OR vector_dims(n.{vec}) <> {int(dim)}))
        """,
        params,
    ).fetchone()
    assert row is not None
    old_count, new_count, wrong = (int(v) for v in row)
    if old_count != new_count or wrong:
        raise MigrationError(
            f"verification of the new {target.name} failed: {new_count} rows built for "
            f"{old_count}, {wrong} without a {dim}-dimensional vector. Nothing was switched; "
            "the table is unchanged."
        )


_INDEX_HEAD = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )(.+?) ON (?:ONLY )?(.+?) USING ")


def _copy_indexes(
    conn: psycopg.Connection[Any], target: PgTarget, new: str, dim: int
) -> list[tuple[str, str]]:
    """Build every index of the table on the new one (same definition); returns renames."""
    rows = conn.execute(
        """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid), con.contype
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
        WHERE i.indrelid = to_regclass(%s)
        ORDER BY ic.relname
        """,
        [target.qualified],
    ).fetchall()
    renames = []
    for name, definition, contype in rows:
        tmp = _short(f"{name}__vllm_new")
        head = _INDEX_HEAD.match(definition)
        if head is None:
            raise UnsupportedTableError(f"cannot read the definition of index {name}: {definition}")
        rest = definition[head.end() :]
        if target.old_dim and target.old_dim != dim:
            rest = rest.replace(f"vector({target.old_dim})", f"vector({dim})")
        conn.execute(f"{head.group(1)}{_q(tmp)} ON {new} USING {rest}")
        if contype in ("p", "u"):
            kind = "PRIMARY KEY" if contype == "p" else "UNIQUE"
            conn.execute(f"ALTER TABLE {new} ADD CONSTRAINT {_q(tmp)} {kind} USING INDEX {_q(tmp)}")
        renames.append((str(name), tmp))
    return renames


def _copy_table_properties(conn: psycopg.Connection[Any], target: PgTarget, new: str) -> None:
    """Foreign keys, owner, grants, table comment, sequences: what LIKE does not copy."""
    t = target.qualified
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f'",
        [t],
    ).fetchall():
        conn.execute(f"ALTER TABLE {new} ADD CONSTRAINT {_q(name)} {definition}")
    owner, me, comment = conn.execute(
        "SELECT pg_get_userbyid(relowner), current_user, obj_description(oid, 'pg_class') "
        "FROM pg_class WHERE oid = to_regclass(%s)",
        [t],
    ).fetchone() or (None, None, None)
    if owner and owner != me:
        conn.execute(f"ALTER TABLE {new} OWNER TO {_q(owner)}")
    for grantee, privilege, grantable in conn.execute(
        """
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee))
               END, a.privilege_type, a.is_grantable
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner
        """,
        [t],
    ).fetchall():
        option = " WITH GRANT OPTION" if grantable else ""
        conn.execute(f"GRANT {privilege} ON {new} TO {grantee}{option}")
    if comment:
        conn.execute(f"COMMENT ON TABLE {new} IS %s".replace("%s", _literal(conn, comment)))
    for sequence, column, deptype in conn.execute(
        """
        SELECT d.objid::regclass::text, a.attname, d.deptype
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.refobjid = to_regclass(%s) AND d.deptype IN ('a', 'i')
        """,
        [t],
    ).fetchall():
        if deptype == "a":  # serial: the sequence follows the column to the new table
            conn.execute(f"ALTER SEQUENCE {sequence} OWNED BY {new}.{_q(column)}")
        else:  # identity: the new table's own sequence continues where the old one was
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), last_value, is_called) "
                f"FROM {sequence}",
                [new, column],
            )


def _literal(conn: psycopg.Connection[Any], value: str) -> str:
    from psycopg import sql

    return str(sql.Literal(value).as_string(conn))


def _record_space(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    space: EmbeddingSpace,
    backup: str,
    index_seconds: float,
) -> None:
    schema = _q(target.schema)
    record = space.to_json()
    if not target.scoped:
        comment = json.dumps({SPACE_KEY: space.to_dict()}, ensure_ascii=False, sort_keys=True)
        conn.execute(
            f"COMMENT ON COLUMN {target.qualified}.{_q(target.vector_column)} IS "
            + _literal(conn, comment)
        )
        conn.execute(f"DELETE FROM {schema}.{SPACES_TABLE} WHERE target = %s", [target.name])
    for collection in target.collections or ("",):
        conn.execute(
            f"""
            INSERT INTO {schema}.{SPACES_TABLE} (target, collection, space) VALUES (%s, %s, %s)
            ON CONFLICT (target, collection) DO UPDATE
            SET space = EXCLUDED.space, recorded_at = now()
            """,
            [target.name, collection, record],
        )
    conn.execute(
        f"""
        UPDATE {schema}.{MIGRATIONS_TABLE}
        SET state = 'done', backup = %s, index_seconds = %s, finished_at = now()
        WHERE target = %s
        """,
        [f"{target.schema}.{backup}", index_seconds, target.name],
    )


def _drop_shadow(url: str, target: PgTarget, shadow: str) -> None:
    with _connection(url) as conn, conn.transaction():
        conn.execute(f"DROP TABLE IF EXISTS {_q(target.schema)}.{_q(shadow)}")


# -- backups, spaces --------------------------------------------------------------------------
def drop_backups(url: str, targets: Sequence[PgTarget]) -> list[str]:
    """Drop the backup tables left by finished migrations of ``targets``; returns their names."""
    dropped: list[str] = []
    with _connection(url) as conn:
        for target in targets:
            mig = f"{_q(target.schema)}.{MIGRATIONS_TABLE}"
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [mig]).fetchone()
            if not exists or not exists[0]:
                conn.rollback()
                continue
            with conn.transaction():
                row = conn.execute(
                    f"SELECT backup FROM {mig} WHERE target = %s AND state = 'done' "
                    "AND backup IS NOT NULL FOR UPDATE",
                    [target.name],
                ).fetchone()
                if row is None:
                    continue
                schema, table = str(row[0]).split(".", 1)
                conn.execute(f"DROP TABLE IF EXISTS {_q(schema)}.{_q(table)}")
                conn.execute(f"UPDATE {mig} SET backup = NULL WHERE target = %s", [target.name])
                dropped.append(str(row[0]))
    return dropped


def read_spaces(
    conn: psycopg.Connection[Any], target: PgTarget
) -> dict[str, EmbeddingSpace | None]:
    """The recorded space per collection ('' = the whole table); None where none is recorded."""
    spaces: dict[str, EmbeddingSpace | None] = {}
    table = f"{_q(target.schema)}.{SPACES_TABLE}"
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
    if exists and exists[0]:
        for collection, space in conn.execute(
            f"SELECT collection, space FROM {table} WHERE target = %s", [target.name]
        ).fetchall():
            spaces[str(collection)] = EmbeddingSpace.from_dict(space)
    if "" not in spaces:
        row = conn.execute(
            """
            SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute a
            WHERE a.attrelid = to_regclass(%s) AND a.attname = %s
            """,
            [target.qualified, target.vector_column],
        ).fetchone()
        comment = row[0] if row else None
        if comment:
            try:
                data = json.loads(comment)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict) and isinstance(data.get(SPACE_KEY), dict):
                spaces[""] = EmbeddingSpace.from_dict(data[SPACE_KEY])
    conn.rollback()
    if target.layout == "langchain":
        for name, _count in target.all_collections:
            spaces.setdefault(name, spaces.get(""))
        spaces.pop("", None) if target.all_collections else None
    return spaces or {"": None}


def sample_rows(
    conn: psycopg.Connection[Any], target: PgTarget, n: int = 8
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """A few rows' embedding texts and stored vectors (for doctor's probe)."""
    rows = conn.execute(
        f"SELECT {_select_columns(target, 't')}, t.{_q(target.vector_column)}::real[] "
        f"FROM {target.qualified} t WHERE t.{_q(target.text_column)} IS NOT NULL "
        f"AND t.{_q(target.vector_column)} IS NOT NULL LIMIT {int(n)}"
    ).fetchall()
    conn.rollback()
    batch = _to_batch(target, [r[:-1] for r in rows])
    vectors = np.asarray([r[-1] for r in rows], dtype=np.float32)
    return batch.texts, vectors
