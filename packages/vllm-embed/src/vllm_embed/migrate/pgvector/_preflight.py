"""Every check that can fail before anything is written: privileges, dependents (foreign
keys, views, triggers, policies), rows without text, locks held by other sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllm_embed._errors import (
    InsufficientPrivilegeError,
    RowsWithoutTextError,
    TableLockedError,
    UnsupportedTableError,
)

from ._driver import load_driver, quote
from ._layouts import PgTarget

if TYPE_CHECKING:
    import psycopg


MISSING_LISTED = 10


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
        missing.append(
            f"own the table (its owner is {owner!r}: GRANT {quote(str(owner))} TO {user})"
        )
    if not may_create:
        missing.append(
            f"create tables in schema {target.schema!r} (GRANT CREATE ON SCHEMA "
            f"{quote(target.schema)} TO {user})"
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
    text = quote(target.text_column)
    keys = ", ".join(f"t.{quote(k)}::text" for k in target.key_columns)
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
    psycopg = load_driver()
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
            conn.execute(f"LOCK TABLE {target.qualified} IN EXCLUSIVE MODE")
            raise _Rollback
    except _Rollback:
        return
    except psycopg.errors.LockNotAvailable:
        raise locked_error(conn, target, lock_timeout) from None


class _Rollback(Exception):
    pass


def locked_error(
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
