"""The switch: rows changed during the fill are embedded, the new table is built beside the
old one, and one transaction applies what was written meanwhile, verifies, and renames."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllm_embed._errors import (
    MigrationError,
    RowsWithoutTextError,
    TableLockedError,
    VLLMEmbedError,
)

from .._engine import Embedder
from .._space import EmbeddingSpace
from ._driver import BACKUP_MARK, MIGRATIONS_TABLE, first_line, load_driver, quote, short_name
from ._fill import copy_into_shadow, embed_batch
from ._journal import State, backup_name
from ._layouts import PgTarget
from ._options import PgOptions
from ._preflight import MISSING_LISTED, locked_error
from ._properties import copy_indexes, copy_table_properties
from ._rows import Batch, select_columns, to_batch
from ._spaces import record_space

if TYPE_CHECKING:
    import psycopg


#: The ACCESS EXCLUSIVE step waits at most this long per attempt (readers queue behind it).
SWITCH_LOCK_WAIT = 1.0
SWITCH_LOCK_ATTEMPTS = 20


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


def switch(
    conn: psycopg.Connection[Any],
    url: str,
    target: PgTarget,
    embedder: Embedder,
    space: EmbeddingSpace,
    state: State,
    options: PgOptions,
) -> _SwitchResult:
    """Build the new table beside the old (no lock that blocks anyone), then switch.

    Before the switch transaction: rows changed since they were embedded are embedded,
    the new table is filled and its indexes are built while the application keeps reading
    and writing. The switch transaction then holds writers (EXCLUSIVE), applies the rows
    written meanwhile, and holds readers (ACCESS EXCLUSIVE) only for the renames.
    """
    psycopg = load_driver()
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
            copy_table_properties(conn, target, plan.new)
            blocked_began = _rename_into_place(conn, target, plan)
            record_space(conn, target, space, plan.backup, index_seconds)
            if options.on_phase is not None:
                options.on_phase("renamed")
    except psycopg.errors.LockNotAvailable:
        raise locked_error(conn, target, options.lock_timeout) from None
    done = time.perf_counter()
    blocked = done - blocked_began
    with conn.transaction():
        conn.execute(
            f"UPDATE {quote(target.schema)}.{MIGRATIONS_TABLE} SET readers_blocked_seconds = %s "
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
    conn: psycopg.Connection[Any], target: PgTarget, space: EmbeddingSpace, state: State
) -> _NewTable:
    schema = quote(target.schema)
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
        names.append(quote(name))
        if name == vec:
            values.append(f"CASE WHEN {scope} THEN s.embedding{cast} ELSE t.{quote(vec)} END")
        else:
            values.append(f"t.{quote(name)}")
    return _NewTable(
        new=f"{schema}.{quote(short_name(f'{target.table}__vllm_new'))}",
        shadow=f"{schema}.{quote(state.shadow)}",
        backup=backup_name(target),
        names=names,
        values=values,
        params=params * sum(1 for n in columns if n[0] == vec),
        dim=space.dimension,
    )


def _shadow_join(target: PgTarget) -> str:
    return " AND ".join(f"s.k{i} = t.{quote(k)}::text" for i, k in enumerate(target.key_columns))


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
                f"ALTER TABLE {plan.new} ALTER COLUMN {quote(target.vector_column)} "
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
        plan.renames = copy_indexes(conn, target, plan.new, plan.dim)
    return time.perf_counter() - began


def _sync_new_table(conn: psycopg.Connection[Any], target: PgTarget, plan: _NewTable) -> int:
    """Apply the rows inserted, updated or deleted since the new table was filled."""
    keys = [quote(k) for k in target.key_columns]
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
    psycopg = load_driver()
    schema = quote(target.schema)
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
    conn.execute(f"ALTER TABLE {target.qualified} RENAME TO {quote(plan.backup)}")
    for old_index, _tmp in plan.renames:
        bak = short_name(f"{old_index}{BACKUP_MARK}{target.old_dim or 0}")
        conn.execute(f"ALTER INDEX {schema}.{quote(old_index)} RENAME TO {quote(bak)}")
    conn.execute(f"ALTER TABLE {plan.new} RENAME TO {quote(target.table)}")
    for old_index, tmp in plan.renames:
        conn.execute(f"ALTER INDEX {schema}.{quote(tmp)} RENAME TO {quote(old_index)}")
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
    join = " AND ".join(f"s.k{i} = t.{quote(k)}::text" for i, k in enumerate(target.key_columns))
    text = f"t.{quote(target.text_column)}"
    rows = conn.execute(
        f"SELECT {select_columns(target, 't')} FROM {target.qualified} t "
        f"LEFT JOIN {shadow} s ON {join} "
        f"WHERE {scope} AND (s.k0 IS NULL OR s.text_md5 <> md5({text}))",
        params,
    ).fetchall()
    if not rows:
        return 0
    batch = to_batch(target, rows)
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
        part = Batch(
            batch.keys[start : start + step],
            batch.raw[start : start + step],
            batch.texts[start : start + step],
        )
        try:
            vectors, _ = embed_batch(embedder, part, options.kind, dim, start)
        except VLLMEmbedError as exc:
            if isinstance(exc, MigrationError):
                raise
            raise MigrationError(
                f"embedding the {len(batch.keys)} rows added to {target.name} during the "
                f"migration failed: {first_line(exc)}. Nothing was switched; run again."
            ) from exc
        copy_into_shadow(conn, target, shadow, part, vectors)
    return len(batch.keys)


def _verify(conn: psycopg.Connection[Any], target: PgTarget, new: str, dim: int) -> None:
    scope, params = target.scope_sql("n")
    vec = quote(target.vector_column)
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
