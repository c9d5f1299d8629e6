"""The embedding space of a table: recorded at the switch (a comment on the vector column and
a row of ``vllm_embed_spaces`` per collection), read back by ``vllm-embed doctor``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._space import SPACE_KEY, EmbeddingSpace
from ._driver import MIGRATIONS_TABLE, SPACES_TABLE, quote, sql_literal
from ._layouts import PgTarget

if TYPE_CHECKING:
    import psycopg


def record_space(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    space: EmbeddingSpace,
    backup: str,
    index_seconds: float,
) -> None:
    schema = quote(target.schema)
    record = space.to_json()
    if not target.scoped:
        comment = json.dumps({SPACE_KEY: space.to_dict()}, ensure_ascii=False, sort_keys=True)
        conn.execute(
            f"COMMENT ON COLUMN {target.qualified}.{quote(target.vector_column)} IS "
            + sql_literal(conn, comment)
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


def read_spaces(
    conn: psycopg.Connection[Any], target: PgTarget
) -> dict[str, EmbeddingSpace | None]:
    """The recorded space per collection ('' = the whole table); None where none is recorded."""
    spaces: dict[str, EmbeddingSpace | None] = {}
    table = f"{quote(target.schema)}.{SPACES_TABLE}"
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
