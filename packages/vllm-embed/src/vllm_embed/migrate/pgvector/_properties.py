"""What the new table takes over from the old one besides its rows: every index (same
definition, HNSW / IVFFlat opclass and parameters kept), foreign keys, owner, grants,
comment and sequences."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from vllm_embed._errors import UnsupportedTableError

from ._driver import quote, short_name, sql_literal
from ._layouts import PgTarget

if TYPE_CHECKING:
    import psycopg


_INDEX_HEAD = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )(.+?) ON (?:ONLY )?(.+?) USING ")


def copy_indexes(
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
        tmp = short_name(f"{name}__vllm_new")
        head = _INDEX_HEAD.match(definition)
        if head is None:
            raise UnsupportedTableError(f"cannot read the definition of index {name}: {definition}")
        rest = definition[head.end() :]
        if target.old_dim and target.old_dim != dim:
            rest = rest.replace(f"vector({target.old_dim})", f"vector({dim})")
        conn.execute(f"{head.group(1)}{quote(tmp)} ON {new} USING {rest}")
        if contype in ("p", "u"):
            kind = "PRIMARY KEY" if contype == "p" else "UNIQUE"
            conn.execute(
                f"ALTER TABLE {new} ADD CONSTRAINT {quote(tmp)} {kind} USING INDEX {quote(tmp)}"
            )
        renames.append((str(name), tmp))
    return renames


def copy_table_properties(conn: psycopg.Connection[Any], target: PgTarget, new: str) -> None:
    """Foreign keys, owner, grants, table comment, sequences: what LIKE does not copy."""
    t = target.qualified
    for name, definition in conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f'",
        [t],
    ).fetchall():
        conn.execute(f"ALTER TABLE {new} ADD CONSTRAINT {quote(name)} {definition}")
    owner, me, comment = conn.execute(
        "SELECT pg_get_userbyid(relowner), current_user, obj_description(oid, 'pg_class') "
        "FROM pg_class WHERE oid = to_regclass(%s)",
        [t],
    ).fetchone() or (None, None, None)
    if owner and owner != me:
        conn.execute(f"ALTER TABLE {new} OWNER TO {quote(owner)}")
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
        conn.execute(f"COMMENT ON TABLE {new} IS %s".replace("%s", sql_literal(conn, comment)))
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
            conn.execute(f"ALTER SEQUENCE {sequence} OWNED BY {new}.{quote(column)}")
        else:  # identity: the new table's own sequence continues where the old one was
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), last_value, is_called) "
                f"FROM {sequence}",
                [new, column],
            )
