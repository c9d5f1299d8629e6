"""vllm-embed's own tables in the target's schema: ``vllm_embed_migrations`` (one row per
table: state, position of the last committed batch, backup) and ``vllm_embed_spaces``; a run
starts or resumes there (`start_or_resume`) and `drop_backups` ends what it kept."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllm_embed._errors import MigrationError

from .._space import EmbeddingSpace
from ._driver import (
    BACKUP_MARK,
    MIGRATIONS_TABLE,
    SHADOW_PREFIX,
    SPACES_TABLE,
    connection,
    quote,
    short_name,
)
from ._layouts import PgTarget

if TYPE_CHECKING:
    import psycopg


def ensure_own_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    with conn.transaction():
        conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {quote(schema)}.{MIGRATIONS_TABLE} (
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
            CREATE TABLE IF NOT EXISTS {quote(schema)}.{SPACES_TABLE} (
                target text NOT NULL,
                collection text NOT NULL DEFAULT '',
                space jsonb NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (target, collection)
            )
            """
        )


def shadow_name(target: PgTarget) -> str:
    digest = hashlib.sha256(target.name.encode()).hexdigest()[:12]
    return SHADOW_PREFIX + digest


def backup_name(target: PgTarget) -> str:
    return short_name(f"{target.table}{BACKUP_MARK}{target.old_dim or 0}")


@dataclass
class State:
    shadow: str
    last_key: list[str] | None
    rows_done: int


def start_or_resume(
    conn: psycopg.Connection[Any], target: PgTarget, space: EmbeddingSpace
) -> State:
    mig = f"{quote(target.schema)}.{MIGRATIONS_TABLE}"
    shadow = shadow_name(target)
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
                    f"finish it, or discard it: DROP TABLE {quote(target.schema)}.{shadow}; DELETE "
                    f"FROM {mig} WHERE target = '{target.name}'."
                )
            return State(shadow, list(row[5]) if row[5] is not None else None, int(row[6]))
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
        backup = backup_name(target)
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            [f"{quote(target.schema)}.{quote(backup)}"],
        ).fetchone()
        if exists and exists[0]:
            raise MigrationError(
                f"the backup {target.schema}.{backup} of an earlier migration is still there; "
                "drop it first (vllm-embed migrate URL --table "
                f"{target.name} --drop-backup) or rename it. Nothing was written."
            )
        keys = ", ".join(f"k{i} text NOT NULL" for i in range(len(target.key_columns)))
        pk = ", ".join(f"k{i}" for i in range(len(target.key_columns)))
        conn.execute(f"DROP TABLE IF EXISTS {quote(target.schema)}.{shadow}")
        conn.execute(
            f"CREATE TABLE {quote(target.schema)}.{shadow} ({keys}, text_md5 text NOT NULL, "
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
    return State(shadow, None, 0)


def drop_backups(url: str, targets: Sequence[PgTarget]) -> list[str]:
    """Drop the backup tables left by finished migrations of ``targets``; returns their names."""
    dropped: list[str] = []
    with connection(url) as conn:
        for target in targets:
            mig = f"{quote(target.schema)}.{MIGRATIONS_TABLE}"
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
                conn.execute(f"DROP TABLE IF EXISTS {quote(schema)}.{quote(table)}")
                conn.execute(f"UPDATE {mig} SET backup = NULL WHERE target = %s", [target.name])
                dropped.append(str(row[0]))
    return dropped
