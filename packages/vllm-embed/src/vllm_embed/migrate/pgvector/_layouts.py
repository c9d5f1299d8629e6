"""The tables to re-embed: LangChain / LlamaIndex / LightRAG layouts found by `discover`, any
other table described by name (`describe_table`), and the choice made with ``--table`` /
``--collection`` (`select_targets`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllm_embed._errors import (
    StoreFormatError,
    TextColumnTypeError,
    UnsupportedTableError,
    VectorColumnTypeError,
)

from ._driver import BACKUP_MARK, MIGRATIONS_TABLE, SHADOW_PREFIX, SPACES_TABLE, quote

if TYPE_CHECKING:
    import psycopg


_TEXT_TYPES = {"text", "character varying", "character", "name", "citext"}


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
        return f"{quote(self.schema)}.{quote(self.table)}"

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
        coll = f"{quote(self.schema)}.langchain_pg_collection"
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
    qualified = f"{quote(schema)}.{quote(table)}"
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
                FROM {quote(schema)}.langchain_pg_collection c
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
        f"SELECT count(*), max(vector_dims({quote(vector_column)})) FROM {qualified}"
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
