"""SQLite files with sqlite-vec ``vec0`` virtual tables.

Two shapes:

- LangChain's ``SQLiteVec`` (langchain-community): a base table ``T(rowid INTEGER PRIMARY
  KEY AUTOINCREMENT, text TEXT, metadata BLOB, text_embedding BLOB)``, the vec0 table
  ``T_vec(rowid INTEGER PRIMARY KEY, text_embedding float[N])`` and a trigger copying
  each inserted row's embedding into it. The text is ``T.text``; both the base table's
  BLOB and the vec0 table are rewritten.
- Plain tables: a vec0 table whose text is one of its own columns (an auxiliary
  ``+text`` column or a metadata column), or a column of a companion table of the same
  name without the ``_vec`` suffix sharing its rowids. ``--text-field`` names the column;
  else a column called text, content, document, page_content, chunk or body is used.

``--collection`` picks the vec0 table of a file that has several. A kano-backlog index
(a ``meta`` table with ``embedding_space_id``) is not taken: kano's own format handles it.

The migrated file is a copy of the original in which, in ONE transaction, the vec0 table
is dropped and created again with the same declaration at the new dimension (distance
metric, other columns and options kept), filled with the same keys and other column
values, and the companion table's embedding BLOB (LangChain) updated; records left out
(``--drop-missing-text``) are deleted from both. The copy is filled while the server
embeds (`Store.open_writer`: sqlite-vec's inserts run in the engine's background thread,
SQLite releasing the GIL while it works), so little is left after the last response
(200,000 rows, fake server: 2 s instead of 10 s after it). The copy has no rollback
journal and is not synced until it is complete (``_COPY_PRAGMAS``, on the copy only: the
original is only ever opened read-only): a failed or killed run's copy is not trusted but
made again by the next run from the original and the journaled vectors (nothing is
embedded twice; what is lost is the rebuild of the copy, which again overlaps the
embedding of the rest). It is verified with sqlite-vec (the declared dimension, the
keys, rows read back byte for byte, a KNN query returning the probed row first) and
swapped in by the engine (original kept as ``NAME.d<old dim>.bak.EXT``); the embedding
space is recorded in a sidecar (``NAME.vllm-embed-space.json``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._store import F32Matrix, Rows, RowWriter, Store, check_rows
from .kano import vec_sqlite

__all__ = ["SqliteVecStore", "looks_like_sqlitevec", "read_sqlitevec"]

_HEADER = b"SQLite format 3\x00"
_VECTOR = re.compile(r"(?i)\b([A-Za-z_][A-Za-z0-9_]*)\s+float\s*\[\s*(\d+)\s*\]")
_OTHER_VECTOR = re.compile(r"(?i)\b(int8|bit)\s*\[\s*\d+\s*\]")
_PRIMARY = re.compile(r"(?i)\b([A-Za-z_][A-Za-z0-9_]*)\s+(integer|text)\s+primary\s+key")
TEXT_COLUMNS = ("text", "content", "document", "page_content", "chunk", "body")
_SAMPLE = 16
_BLOCK = 4096
#: Rows whose written vectors `check_written` reads back and compares (first, last and
#: evenly spaced ones between).
_CHECKED_ROWS = 32
#: Bytes of vectors written to the copy between two ``fdatasync`` calls.
_SYNC_BYTES = 64 * 1024 * 1024
_COPY_PRAGMAS = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = -65536",  # KiB: 64 MiB
    "PRAGMA temp_store = MEMORY",
)


def _read_only_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == _HEADER
    except OSError:
        return False


def _tables(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(_read_only_uri(path), uri=True)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return {str(n): str(s or "") for n, s in rows}


def _vec0_tables(tables: dict[str, str]) -> list[str]:
    return sorted(n for n, sql in tables.items() if re.search(r"(?i)using\s+vec0\s*\(", sql))


def looks_like_sqlitevec(path: Path) -> bool:
    """An SQLite file with a vec0 table that is not a kano-backlog index or Chroma's."""
    if not path.is_file() or path.name == "chroma.sqlite3" or not _is_sqlite(path):
        return False
    try:
        tables = _tables(path)
    except sqlite3.Error:
        # a damaged SQLite file: ours to report unless kano's (.sqlite3) reports it
        return path.suffix != ".sqlite3"
    if "meta" in tables and any(t.endswith("_chunks") for t in tables):
        return False  # kano-backlog
    return bool(_vec0_tables(tables))


@dataclass(frozen=True)
class _Shape:
    """What was found in the file: the vec0 table and where its text lives."""

    vec_table: str
    vec_sql: str
    vector_column: str
    key_column: str  # "rowid" or the declared primary key
    other_columns: tuple[str, ...]  # the vec0 table's other columns, kept as they are
    text_table: str  # vec_table, or the companion table joined on rowid
    text_column: str
    blob_column: str | None  # the companion's embedding BLOB (LangChain), rewritten too
    langchain: bool


def _connect(path: Path, *, read_only: bool = False) -> Any:
    """A connection with sqlite-vec loaded; transactions are explicit (autocommit mode)."""
    try:
        module = vec_sqlite()
    except MigrationError as exc:  # kano's wording names its own index
        raise MigrationError(
            f"{path} has sqlite-vec (vec0) tables, which can only be read and rebuilt with the "
            "sqlite-vec extension: pip install sqlite-vec (and pysqlite3-binary where this "
            "Python's sqlite3 cannot load extensions), then run the same command again. "
            "Nothing was written."
        ) from exc
    import sqlite_vec

    target = _read_only_uri(path) if read_only else str(path)
    conn = module.connect(target, uri=read_only, check_same_thread=False, isolation_level=None)
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)
    return conn


class _VecWriter(RowWriter):
    """Writes the migrated copy while the rows are embedded: `begin` copies the file,
    then in ONE transaction drops the vec0 table and creates it at the new dimension;
    `add` inserts the rows as they are journaled (LangChain: the base table's BLOBs too)
    and keeps some aside for `SqliteVecStore.check_written`; `finish` commits. A failed or
    killed run leaves a half-made copy that the next run's `begin` replaces."""

    def __init__(self, store: SqliteVecStore, out: Path, keep: Sequence[int], dim: int) -> None:
        self._store = store
        self._out = out
        self._keep = list(keep)
        self._dim = dim
        self._done = 0
        self._conn: Any = None
        self._fd = -1
        self._unsynced = 0
        count = len(self._keep)
        self._checked = (
            {int(n) for n in np.linspace(0, count - 1, min(count, _CHECKED_ROWS))}
            if count
            else set()
        )
        self._kept: dict[Any, bytes] = {}
        store._written = (out, self._kept)

    def begin(self) -> None:
        store, s = self._store, self._store.shape
        # a killed run's journal belongs to the copy it made, not to this one
        for suffix in ("-journal", "-wal", "-shm"):
            self._out.with_name(self._out.name + suffix).unlink(missing_ok=True)
        shutil.copy2(store.path, self._out)
        self._conn = conn = _connect(self._out)
        self._fd = os.open(self._out, os.O_RDONLY)
        # The copy is disposable (a failed or killed run's copy is made again from the
        # original, the vectors coming from the journal): no rollback journal, no sync
        # until `finish` fsyncs it, a page cache that holds a block's pages. On the COPY
        # only; the original is opened read-only throughout.
        for pragma in _COPY_PRAGMAS:
            conn.execute(pragma)
        conn.execute("BEGIN IMMEDIATE")
        kept = set(self._keep)
        dropped = [(store._keys[i],) for i in range(len(store._keys)) if i not in kept]
        if dropped and s.text_table != s.vec_table:
            gone = conn.executemany(f'DELETE FROM "{s.text_table}" WHERE rowid = ?', dropped)
            if gone.rowcount != len(dropped):
                raise StoreFormatError(
                    f"{self._out}: {gone.rowcount} of {len(dropped)} rows of {s.text_table} deleted"
                )
        conn.execute(f'DROP TABLE "{s.vec_table}"')
        conn.execute(store._create_sql(self._dim))

    def add(self, block: F32Matrix) -> None:
        store, s = self._store, self._store.shape
        first = self._done
        picked = self._keep[first : first + len(block)]
        self._done += len(block)
        columns = [s.key_column, *s.other_columns, s.vector_column]
        blobs = [v.tobytes() for v in np.ascontiguousarray(block, dtype=np.float32)]
        self._conn.executemany(
            f'INSERT INTO "{s.vec_table}" ({", ".join(columns)}) '
            f"VALUES ({', '.join('?' * len(columns))})",
            [(store._keys[i], *store._others[i], b) for i, b in zip(picked, blobs, strict=True)],
        )
        for n in self._checked:
            if first <= n < self._done:
                self._kept[store._keys[picked[n - first]]] = blobs[n - first]
        if s.blob_column is not None:
            updated = self._conn.executemany(
                f'UPDATE "{s.text_table}" SET "{s.blob_column}" = ? WHERE rowid = ?',
                [(b, store._keys[i]) for i, b in zip(picked, blobs, strict=True)],
            ).rowcount
            if updated != len(picked):
                raise StoreFormatError(
                    f"{self._out}: {updated} of {len(picked)} rows of {s.text_table} updated"
                )
        self._unsynced += len(blobs) * block.shape[1] * 4
        if self._unsynced >= _SYNC_BYTES:  # written back while the server embeds
            os.fdatasync(self._fd)
            self._unsynced = 0

    def finish(self) -> None:
        if self._done != len(self._keep):
            raise StoreFormatError(f"{self._out}: {self._done} of {len(self._keep)} rows written")
        self._conn.execute("COMMIT")
        self._conn.close()
        self._conn = None
        os.fsync(self._fd)
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def abort(self) -> None:
        """Close the copy; without a rollback journal it is left half-made, and the next
        run (`begin`) copies the original again."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._close_fd()


class SqliteVecStore(Store):
    """One vec0 table of an SQLite file, read for migration."""

    def __init__(
        self,
        path: Path,
        shape: _Shape,
        old_dim: int,
        keys: list[Any],
        texts: list[str | None],
        others: list[tuple[Any, ...]],
        sample: tuple[list[str], F32Matrix] | None,
    ) -> None:
        self.path = self.target = path
        self.shape = shape
        self.old_dim = old_dim
        self._keys = keys
        self._others = others
        self._sample = sample
        #: the copy last written and some of its rows (key -> vector bytes), for the check
        self._written: tuple[Path, dict[Any, bytes]] | None = None
        self.ids = [str(k) for k in keys]
        self.texts = texts
        kind = "LangChain SQLiteVec" if shape.langchain else "vec0 table"
        self.format = f"sqlite-vec ({kind}; table {shape.vec_table})"
        self.text_field = f"{shape.text_table}.{shape.text_column}"

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self._sample is None:
            return None
        texts, matrix = self._sample
        return texts[:count], matrix[:count]

    # -- writing -------------------------------------------------------------------------
    def _create_sql(self, dim: int) -> str:
        s = self.shape
        return _VECTOR.sub(
            lambda m: f"{m.group(1)} float[{dim}]" if m.group(1) == s.vector_column else m.group(0),
            s.vec_sql,
        )

    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter | None:
        """Fill the copy while the server embeds (see `_VecWriter`)."""
        return _VecWriter(self, out, keep, dim)

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """A copy of the file, its vec0 table rebuilt at the new dimension in one transaction."""
        writer = _VecWriter(self, out, keep, rows.dim)
        writer.begin()
        try:
            for block in rows.blocks(_BLOCK):
                writer.add(block)
        except BaseException:
            writer.abort()
            raise
        writer.finish()

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        """The vec0 table declared at ``dim`` (sqlite-vec refuses rows of another length),
        holding exactly the kept keys; the rows this run wrote and kept aside (first, last,
        evenly spaced: `_CHECKED_ROWS`) read back byte for byte, from the vec0 table and
        LangChain's BLOB column (the writer checked that each delete and each BLOB update
        hit one row). Every vector was checked finite and non-zero before it was
        journaled. Without rows kept aside (a copy this object did not write), every row,
        the companion table's row count and every BLOB's length are read back."""
        where = f"written sqlite-vec file {path}"
        s = self.shape
        conn = _connect(path, read_only=True)
        try:
            row = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (s.vec_table,)
            ).fetchone()
            declared = _VECTOR.findall(str(row[0])) if row else []
            if declared != [(s.vector_column, str(dim))]:
                raise StoreFormatError(f"{where}: {s.vec_table} is not declared float[{dim}]")
            keys = [k for (k,) in conn.execute(f'SELECT {s.key_column} FROM "{s.vec_table}"')]
            if sorted(str(k) for k in keys) != sorted(ids):
                raise StoreFormatError(f"{where}: the keys of {s.vec_table} differ from the source")
            written = self._written[1] if self._written and self._written[0] == path else None
            if written is None:
                _check_every_row(conn, s, where, dim)
            else:
                _check_rows_read_back(conn, s, where, written)
            # the writer checked that its deletes and updates each hit one row (and the
            # companion held one row per key when read): a count is needed without it
            if written is None and s.text_table != s.vec_table:
                count = conn.execute(f'SELECT count(*) FROM "{s.text_table}"').fetchone()[0]
                if count != len(ids):
                    raise StoreFormatError(f"{where}: {s.text_table} holds {count} rows")
            if written is None and s.blob_column is not None:
                bad = conn.execute(
                    f'SELECT count(*) FROM "{s.text_table}" WHERE length("{s.blob_column}") != ?',
                    (dim * 4,),
                ).fetchone()[0]
                if bad:
                    raise StoreFormatError(f"{where}: {bad} rows keep the old {s.blob_column}")
        finally:
            conn.close()

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """sqlite-vec's KNN must return the probed row first."""
        if not ids:
            return "sqlite-vec"
        s = self.shape
        conn = _connect(path, read_only=True)
        try:
            key, blob = conn.execute(
                f'SELECT {s.key_column}, {s.vector_column} FROM "{s.vec_table}" LIMIT 1'
            ).fetchone()
            hit = conn.execute(
                f'SELECT {s.key_column} FROM "{s.vec_table}" WHERE {s.vector_column} MATCH ? '
                "AND k = 1",
                (blob,),
            ).fetchone()
            if hit is None or hit[0] != key:
                raise StoreFormatError(f"sqlite-vec cannot query {s.vec_table} in {path}")
        finally:
            conn.close()
        return "sqlite-vec"


def _check_rows_read_back(conn: Any, s: _Shape, where: str, written: dict[Any, bytes]) -> None:
    """The rows kept aside while writing, read back from the vec0 table (and LangChain's
    BLOB column), must be the bytes written."""
    if not written:
        return
    keys = list(written)
    marks = ", ".join("?" * len(keys))
    tables = [(s.vec_table, s.key_column, s.vector_column)]
    if s.blob_column is not None:
        tables.append((s.text_table, "rowid", s.blob_column))
    for table, key, column in tables:
        got = dict(
            conn.execute(
                f'SELECT {key}, "{column}" FROM "{table}" WHERE {key} IN ({marks})', keys
            ).fetchall()
        )
        for k in keys:
            if got.get(k) != written[k]:
                raise StoreFormatError(f"{where}: row {k!r} of {table} is not the vector written")


def _check_every_row(conn: Any, s: _Shape, where: str, dim: int) -> None:
    """Every row of the vec0 table: ``dim`` finite values."""
    cursor = conn.execute(f'SELECT {s.key_column}, {s.vector_column} FROM "{s.vec_table}"')
    done = 0
    while rows := cursor.fetchmany(_BLOCK):
        for key, blob in rows:
            if len(blob) != dim * 4:
                raise StoreFormatError(f"{where}: row {key!r} has {len(blob) // 4} values")
        block = np.frombuffer(b"".join(b for _, b in rows), dtype=np.float32)
        check_rows(block.reshape(len(rows), dim), where, done)
        done += len(rows)


# -- reading ----------------------------------------------------------------------------
def read_sqlitevec(
    path: Path, *, table: str | None = None, text_field: str | None = None
) -> SqliteVecStore:
    """Read one vec0 table of an SQLite file (and its text) without writing to it."""
    try:
        tables = _tables(path)
    except sqlite3.Error as exc:
        raise StoreFormatError(
            f"{path}: SQLite cannot read it ({exc}); the file is damaged or truncated. Nothing "
            "was written; restore it from a backup."
        ) from exc
    shape, old_dim = _shape(path, tables, table, text_field)
    conn = _connect(path, read_only=True)
    try:
        return _read(path, conn, shape, old_dim)
    except sqlite3.Error as exc:  # pysqlite3's errors are sqlite3.Error's siblings
        raise _damaged(path, exc) from exc
    except Exception as exc:
        if type(exc).__name__ in ("DatabaseError", "OperationalError"):
            raise _damaged(path, exc) from exc
        raise
    finally:
        conn.close()


def _damaged(path: Path, exc: Exception) -> StoreFormatError:
    return StoreFormatError(
        f"{path}: sqlite-vec cannot read it ({exc}); the file is damaged or half-written. "
        "Nothing was written; restore it from a backup."
    )


def _shape(
    path: Path, tables: dict[str, str], wanted: str | None, text_field: str | None
) -> tuple[_Shape, int]:
    found = _vec0_tables(tables)
    if not found:
        raise StoreFormatError(f"{path}: no sqlite-vec vec0 table.")
    if wanted is not None and wanted not in found:
        raise StoreFormatError(
            f"{path}: no vec0 table {wanted!r}; vec0 tables: {', '.join(found)}."
        )
    if wanted is None and len(found) > 1:
        raise StoreFormatError(
            f"{path} holds {len(found)} vec0 tables ({', '.join(found)}): pick one with "
            "--collection TABLE."
        )
    name = wanted or found[0]
    sql = tables[name]
    if _OTHER_VECTOR.search(sql):
        raise StoreFormatError(
            f"{path}: {name} stores int8 or bit vectors; only float[N] vec0 columns can be "
            "re-embedded. Nothing was written."
        )
    vectors = _VECTOR.findall(sql)
    if len(vectors) != 1:
        raise StoreFormatError(
            f"{path}: {name} must have exactly one float[N] column, found {len(vectors)}: {sql}"
        )
    vector_column, dim = vectors[0][0], int(vectors[0][1])
    primary = _PRIMARY.search(sql)
    key = primary.group(1) if primary else "rowid"
    columns = _vec0_columns(sql)
    others = tuple(c for c in columns if c not in (key, vector_column))
    base = name[: -len("_vec")] if name.endswith("_vec") else None
    langchain = False
    blob: str | None = None
    if base is not None and base in tables:
        base_columns = _columns(path, base)
        langchain = {"text", "metadata", "text_embedding"} <= set(base_columns)
        text_table = base
        blob = "text_embedding" if langchain else None
        candidates = base_columns
    else:
        text_table, candidates = name, list(others)
    text = _text_column(path, text_table, candidates, text_field)
    if text_table != name and key != "rowid":
        raise StoreFormatError(
            f"{path}: {name} is keyed by {key}, not rowid, so its rows cannot be matched with "
            f"{text_table}'s; name a text column of {name} itself with --text-field."
        )
    return _Shape(name, sql, vector_column, key, others, text_table, text, blob, langchain), dim


def _vec0_columns(sql: str) -> list[str]:
    inner = sql[sql.index("(") + 1 : sql.rindex(")")]
    names = []
    for part in inner.split(","):
        token = part.strip().lstrip("+").split()
        if token and "=" not in token[0]:
            names.append(token[0].strip('"'))
    return names


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(_read_only_uri(path), uri=True)
    try:
        return [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
    finally:
        conn.close()


def _text_column(path: Path, table: str, columns: Sequence[str], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise StoreFormatError(
                f"{path}: {table} has no column {wanted!r} (columns: {', '.join(columns)})."
            )
        return wanted
    for name in TEXT_COLUMNS:
        if name in columns:
            return name
    raise StoreFormatError(
        f"{path}: cannot tell which column of {table} holds the text (columns: "
        f"{', '.join(columns) or 'none'}); name it with --text-field."
    )


def _read(path: Path, conn: Any, s: _Shape, dim: int) -> SqliteVecStore:
    """Keys, other columns and texts (no vectors: the vec0 table rebuilds each one it
    returns), then the stored vectors of the probe sample."""
    others = "".join(f", v.{c}" for c in s.other_columns)
    if s.text_table == s.vec_table:
        sql = (
            f'SELECT v.{s.key_column}{others}, v.{s.text_column} FROM "{s.vec_table}" AS v '
            f"ORDER BY v.{s.key_column}"
        )
    else:
        sql = (
            f'SELECT v.rowid{others}, t."{s.text_column}" FROM "{s.vec_table}" AS v '
            f'LEFT JOIN "{s.text_table}" AS t ON t.rowid = v.rowid ORDER BY v.rowid'
        )
    keys: list[Any] = []
    texts: list[str | None] = []
    rest: list[tuple[Any, ...]] = []
    for key, *values, text in conn.execute(sql):
        keys.append(key)
        texts.append(text if isinstance(text, str) else None)
        rest.append(tuple(values))
    if s.text_table != s.vec_table:
        count = conn.execute(f'SELECT count(*) FROM "{s.text_table}"').fetchone()[0]
        if count != len(keys):
            raise StoreFormatError(
                f"{path}: {s.text_table} holds {count} rows but {s.vec_table} {len(keys)}: the "
                "file is inconsistent (half-written?). Nothing was written."
            )
    return SqliteVecStore(path, s, dim, keys, texts, rest, _sample(path, conn, s, dim, keys, texts))


def _sample(
    path: Path, conn: Any, s: _Shape, dim: int, keys: list[Any], texts: list[str | None]
) -> tuple[list[str], F32Matrix] | None:
    chosen = [n for n, t in enumerate(texts) if isinstance(t, str) and t.strip()][:_SAMPLE]
    if not chosen:
        return None
    marks = ", ".join("?" * len(chosen))
    stored = dict(
        conn.execute(
            f'SELECT {s.key_column}, {s.vector_column} FROM "{s.vec_table}" '
            f"WHERE {s.key_column} IN ({marks})",
            [keys[n] for n in chosen],
        ).fetchall()
    )
    rows = []
    for n in chosen:
        vector = np.frombuffer(stored.get(keys[n], b""), dtype=np.float32)
        if vector.shape != (dim,):
            raise StoreFormatError(
                f"{path}: row {keys[n]!r} of {s.vec_table} holds {vector.size} values, not {dim}."
            )
        rows.append(vector)
    return [str(texts[n]) for n in chosen], np.stack(rows)
