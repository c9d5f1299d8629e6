"""LanceDB database directories (``lancedb.connect(path)``, one ``<table>.lance`` per table).

Written by LangChain's ``LanceDB`` (langchain-community: columns ``vector``, ``id``,
``text``, ``metadata``), LlamaIndex's ``LanceDBVectorStore`` (``id``, ``doc_id``,
``vector``, ``text``, ``metadata`` holding the node JSON under ``_node_content``),
AnythingLLM (its ``storage/lancedb``: one table per workspace, rows ``{id, vector,
text, ...document metadata}`` flattened, read from AnythingLLM's
``server/utils/vectorDbProviders/lance/index.js``) and plain lancedb (the text column
named with ``--text-field``, default ``text``). The dimension is the vector column's
type (``fixed_size_list<float>[n]``), so no file is patched: everything goes through
lancedb's own API.

- Reading: the original is only read (lancedb opens datasets read-only); every table
  with a fixed-size-list vector column is migrated unless ``--collection`` names one.
  The other columns are read without the vectors (``to_lance().to_table(columns=)``).
  A database of tables without indexes is read with pylance alone: importing lancedb
  (seconds) is then paid in the background while the server embeds, and so is pandas,
  which pyarrow would otherwise import with pylance (`_lance_import`).
- Text: the ``text`` column (or ``--text-field``); for LlamaIndex rows, what LlamaIndex
  embeds: the node rebuilt from ``_node_content`` + the text, ``MetadataMode.EMBED``.
- Writing (`_LanceWriter`, fed while the server embeds): the directory is copied to the
  work directory but for the migrated tables' data; in the copy each one is created again
  with the same schema (the vector column now ``fixed_size_list<same item type>[new
  dim]``), filled in batches with the same rows in order; at the end its indexes are
  created again with their names and parameters (vector indexes trained again on the
  new vectors; FTS and scalar indexes with their settings) and the embedding space is
  recorded in its schema metadata under ``SPACE_KEY``. Other tables are left as copied.
  The copy's files are fsynced as they are written (after the copy, after each batch):
  `finish` only syncs what the last commits wrote.
- Verifying: the copy is reopened with lancedb: counts, schema (the dimension), every
  other column equal to the original's rows, the vectors of the rows the writer kept
  aside (``CHECKED_ROWS`` per table) read back (every vector was checked finite before
  it was journaled), the same indexes, and an exact nearest-neighbour search per table
  that must return its own row first (plus a search through the vector index, which
  must answer).
- Installing (`_dirstore.DirectoryStore`, as for Chroma): the directories are exchanged
  atomically and the original is kept as ``NAME.d<old dim>.bak``.

Resumable like Chroma: the vectors are journaled by the engine; filling the copy goes
on after a kill from the table's ``count_rows()`` (each ``add`` is one atomic commit).
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._copy_progress import CopyProgress
from ._dirstore import DirectoryStore, PartView, SampledPart, parts_format, parts_text_field
from ._jsonio import fsync_file
from ._lance_import import import_lance, restore_pandas_now
from ._lance_indexes import Index, create_indexes, read_index
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix, Rows, RowWriter, check_rows
from .llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text

__all__ = ["LANCE_SUFFIX", "LanceDBStore", "is_lancedb_dir", "read_lancedb"]


LANCE_SUFFIX = ".lance"
#: Stored vectors kept from reading, for ``doctor --store``'s probe.
SAMPLE_ROWS = 16
#: Rows per table whose written vectors the check reads back (first, last, spaced).
CHECKED_ROWS = 32
#: Columns only AnythingLLM's rows carry (its document metadata, flattened).
_ANYTHINGLLM_COLUMNS = {"docSource", "chunkSource", "token_count_estimate"}


def _is_table_dir(path: Path) -> bool:
    return path.is_dir() and path.name.endswith(LANCE_SUFFIX) and (path / "_versions").is_dir()


def is_lancedb_dir(path: Path) -> bool:
    """A LanceDB database directory (holds ``<table>.lance`` datasets), or one table of it."""
    if _is_table_dir(path):
        return True
    return path.is_dir() and any(
        child.name.endswith(LANCE_SUFFIX) and child.is_dir() for child in path.iterdir()
    )


_NEEDS_LANCEDB = (
    "this is a LanceDB database directory; reading and writing it needs the lancedb "
    "package: pip install lancedb"
)


def _lancedb() -> Any:
    try:
        import lancedb
    except ImportError as exc:
        raise MigrationError(_NEEDS_LANCEDB) from exc
    return lancedb


def _require_lancedb() -> None:
    """Refuse early when lancedb is not installed, without importing it (seconds)."""
    try:
        found = importlib.util.find_spec("lancedb") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MigrationError(_NEEDS_LANCEDB)


def _connect(path: Path) -> Any:
    return _lancedb().connect(str(path))


def _table_names(db: Any) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = db.list_tables(page_token=token)
        names.extend(str(n) for n in page.tables)
        token = page.page_token
        if not token:
            return sorted(names)


@dataclass
class _Table(SampledPart):
    """One table as read: everything needed to create it again."""

    name: str
    vector_column: str
    dim: int
    schema: Any  # pyarrow.Schema
    data: Any  # pyarrow.Table: every column but the vector one, in row order
    text_column: str
    kind: str | None  # "LangChain LanceDB", "LlamaIndex LanceDBVectorStore", "AnythingLLM"
    indexes: list[Index]
    ids: list[str] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    start: int = 0
    sample: tuple[list[str], F32Matrix] | None = None

    def new_schema(self, dim: int, space: EmbeddingSpace | None) -> Any:
        import pyarrow as pa

        old = self.schema.field(self.vector_column)
        item = old.type.value_type
        vector = pa.field(old.name, pa.list_(item, dim), old.nullable, old.metadata)
        schema = self.schema.set(self.schema.get_field_index(self.vector_column), vector)
        metadata = dict(self.schema.metadata or {})
        metadata.pop(SPACE_KEY.encode(), None)
        if space is not None:
            metadata[SPACE_KEY.encode()] = space.to_json().encode()
        return schema.with_metadata(metadata)

    def recorded_space(self) -> EmbeddingSpace | None:
        raw = (self.schema.metadata or {}).get(SPACE_KEY.encode())
        return EmbeddingSpace.from_json(raw.decode()) if raw else None


class LanceDBStore(DirectoryStore):
    """A LanceDB database directory read for migration (every vector table, or one)."""

    #: Rows per ``table.add`` in the copy (one commit each: what a kill can cost).
    batch_rows = 16384

    def __init__(self, path: Path, tables: list[_Table], untouched: dict[str, int]) -> None:
        self.path = self.target = path
        self._tables = tables
        self._untouched = untouched  # other tables: name -> row count
        self._space: EmbeddingSpace | None = None
        #: the copy last written and, per table, some rows' new vectors (row -> vector)
        self._written: tuple[Path, dict[str, dict[int, F32Matrix]]] | None = None
        kinds = [t.kind for t in tables]
        self.format = parts_format("LanceDB", kinds, "table", [t.name for t in tables])
        self.text_field = parts_text_field(
            [t.text_column for t in tables], kinds, "LlamaIndex LanceDBVectorStore"
        )
        self._join_parts()

    @property
    def _parts(self) -> list[_Table]:
        return self._tables

    def collection_views(self) -> list[PartView]:
        """Each table with its own recorded space and probe sample (``doctor --store``)."""
        return [PartView(t.name, t) for t in self._tables]

    # -- the embedding space -------------------------------------------------------------
    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`: the record goes into each migrated table's schema metadata."""
        self._space = space

    def warm_up(self) -> None:
        restore_pandas_now()  # pyarrow's view of pandas, hidden while pylance was imported
        _lancedb()

    # -- writing -------------------------------------------------------------------------
    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter:
        """Fill the copy while the server embeds (see `_LanceWriter`)."""
        return _LanceWriter(self, out, keep, dim)

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """The same as the streaming writer, from the finished vector file."""
        writer = _LanceWriter(self, out, keep, rows.dim)
        writer.begin()
        for block in rows.blocks():
            writer.add(block)
        writer.finish()

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        where = f"written LanceDB directory {path}"
        kept = set(ids)
        prefix = len(self._tables) > 1
        db = _connect(path)
        names = set(_table_names(db))
        for name, count in self._untouched.items():
            if name not in names or db.open_table(name).count_rows() != count:
                raise StoreFormatError(f"{where}: table {name!r} changed")
        for t in self._tables:
            if t.name not in names:
                raise StoreFormatError(f"{where}: table {t.name!r} is missing")
            keep = [n for n, i in enumerate(t.ids) if (f"{t.name}/{i}" if prefix else i) in kept]
            written = self._written[1] if self._written and self._written[0] == path else None
            rows = None if written is None else written.get(t.name, {})
            _check_table(where, db.open_table(t.name), t, keep, dim, self._space, rows)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """An exact nearest-neighbour search per table must return the queried row first,
        and a search through the table's vector index must answer."""
        db = _connect(path)
        for t in self._tables:
            table = db.open_table(t.name)
            if table.count_rows() == 0:
                continue
            first = table.head(1).column(t.vector_column).to_pylist()[0]
            query = np.asarray(first, dtype=np.float32)
            exact = (
                table.search(query, vector_column_name=t.vector_column)
                .bypass_vector_index()
                .with_row_id(True)
                .limit(1)
                .to_arrow()
            )
            if exact.column("_rowid").to_pylist()[:1] != [0]:
                raise StoreFormatError(
                    f"lancedb cannot query the migrated table {t.name!r} in {path} "
                    "consistently (a row is not its own nearest neighbour)"
                )
            if any(i.column == t.vector_column and i.kind != "FTS" for i in t.indexes):
                hits = table.search(query, vector_column_name=t.vector_column).limit(1)
                if hits.to_arrow().num_rows != 1:
                    raise StoreFormatError(
                        f"lancedb's vector index of the migrated table {t.name!r} in {path} "
                        "answers nothing"
                    )
        return "lancedb"


class _LanceWriter(RowWriter):
    """Fills the copy of the database in record order while the rows are embedded.

    `begin` copies the directory (once: journaled beside it, see `_copy_progress.CopyProgress`) and
    creates each migrated table again (once) with the new schema; a table a killed run
    created already goes on from its ``count_rows()``: the rows it holds are skipped.
    `add` buffers rows up to `LanceDBStore.batch_rows` per ``table.add`` (one commit
    each). `finish` writes the last rows, creates the indexes again, records the
    embedding space in each table's schema metadata and syncs the files.
    """

    def __init__(self, store: LanceDBStore, out: Path, keep: Sequence[int], dim: int) -> None:
        self._store = store
        self._out = out
        self._dim = dim
        kept = set(keep)
        #: per table: the row numbers (in the table) that are kept, in order
        self._mine = [[i for i in range(len(t.ids)) if t.start + i in kept] for t in store._tables]
        self._tables: list[Any] = []
        self._done: list[int] = []  # rows each table holds (added or found)
        self._current = 0  # the table the next rows belong to
        self._seen = 0  # rows of the current table received so far
        self._pending: list[F32Matrix] = []
        #: per table: rows (in the new table) whose vectors `check_written` reads back
        self._checked = [
            {int(n) for n in np.linspace(0, len(m) - 1, min(len(m), CHECKED_ROWS))}
            for m in self._mine
        ]
        self._kept: dict[str, dict[int, F32Matrix]] = {t.name: {} for t in store._tables}
        self._synced: dict[Path, tuple[int, int]] = {}  # file -> (size, mtime) when fsynced
        store._written = (out, self._kept)

    def begin(self) -> None:
        progress = CopyProgress(self._out)
        if not progress.copied():  # no copy yet, or one a killed run left half made
            shutil.rmtree(self._out, ignore_errors=True)
            progress.reset()
            # the migrated tables are created anew: their old data is not copied
            source = self._store.path
            rebuilt = {f"{t.name}{LANCE_SUFFIX}" for t in self._store._tables}
            shutil.copytree(
                source,
                self._out,
                symlinks=True,
                ignore=lambda where, names: [
                    n for n in names if Path(where) == source and n in rebuilt
                ],
            )
            progress.mark_copied()
        db = _connect(self._out)
        for t in self._store._tables:
            if progress.created(t.name):  # a killed run made it: go on from its row count
                table = db.open_table(t.name)
            else:
                if t.name in _table_names(db):
                    db.drop_table(t.name)
                table = db.create_table(t.name, schema=t.new_schema(self._dim, None))
                progress.mark_created(t.name)
            self._tables.append(table)
            self._done.append(int(table.count_rows()))
        self._sync()  # the copied tables, while the server embeds

    def add(self, block: F32Matrix) -> None:
        start = 0
        while start < len(block):
            while self._seen == len(self._mine[self._current]):  # the next table
                self._flush()
                self._current += 1
                self._seen = 0
            take = min(len(block) - start, len(self._mine[self._current]) - self._seen)
            first, self._seen = self._seen, self._seen + take
            skip = max(0, min(take, self._done[self._current] - first))  # already there
            if skip < take:
                self._pending.append(block[start + skip : start + take])
                if sum(len(p) for p in self._pending) >= self._store.batch_rows:
                    self._flush(everything=False)
            start += take

    def _flush(self, *, everything: bool = True) -> None:
        """Add the pending rows in commits of `batch_rows` (all of them, or full ones)."""
        if not self._pending:
            return
        t = self._store._tables[self._current]
        schema = t.new_schema(self._dim, None)
        vectors = np.concatenate(self._pending)
        size = self._store.batch_rows
        end = len(vectors) if everything else len(vectors) - len(vectors) % size
        for first in range(0, end, size):
            chunk = vectors[first : min(end, first + size)]
            done = self._done[self._current]
            part = self._mine[self._current][done : done + len(chunk)]
            self._tables[self._current].add(_batch(t, schema, part, chunk))
            self._sync()  # the batch's files, while the server embeds
            self._done[self._current] = done + len(chunk)
            kept = self._kept[t.name]
            for n in self._checked[self._current]:
                if done <= n < done + len(chunk):
                    kept[n] = chunk[n - done].copy()
        self._pending = [vectors[end:]] if end < len(vectors) else []

    def _sync(self) -> None:
        """fsync every file of the copy that is new or changed since it was last synced
        (lance writes new files per commit: most are synced as the copy is filled)."""
        for file in self._out.rglob("*"):
            if file.is_file():
                stat = file.stat()
                state = (stat.st_size, stat.st_mtime_ns)
                if self._synced.get(file) != state:
                    fsync_file(file)
                    self._synced[file] = state

    def finish(self) -> None:
        self._flush()
        space = self._store._space
        for t, table in zip(self._store._tables, self._tables, strict=True):
            create_indexes(table, t.indexes, t.vector_column, self._dim)
            metadata = t.new_schema(self._dim, space).metadata or {}
            table.to_lance().update_schema_metadata(
                {k.decode(): v.decode() for k, v in metadata.items()}, replace=True
            )
        self._sync()


def _batch(t: _Table, schema: Any, part: list[int], vectors: F32Matrix) -> Any:
    """Rows ``part`` of ``t`` with their new vectors, as a table of ``schema``."""
    import pyarrow as pa

    item = schema.field(t.vector_column).type
    flat = pa.array(vectors.reshape(-1), type=pa.float32()).cast(item.value_type)
    column = pa.FixedSizeListArray.from_arrays(flat, type=item)
    data = t.data.take(pa.array(part, type=pa.int64()))
    arrays = [
        column if f.name == t.vector_column else data.column(f.name).combine_chunks()
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _check_table(
    where: str,
    table: Any,
    t: _Table,
    keep: list[int],
    dim: int,
    space: EmbeddingSpace | None,
    written: dict[int, F32Matrix] | None,
) -> None:
    """Row count, schema (the vector column's fixed size is the dimension: lance refuses
    other lengths), every other column equal to the original's kept rows, the indexes;
    the vectors this run wrote and kept aside (``written``: row -> vector) read back, or,
    without them (a copy this object did not write), every vector read and checked."""
    import pyarrow as pa

    label = f"{where}: table {t.name!r}"
    if table.count_rows() != len(keep):
        raise StoreFormatError(f"{label} holds {table.count_rows()} rows, expected {len(keep)}")
    if not table.schema.equals(t.new_schema(dim, space), check_metadata=True):
        raise StoreFormatError(f"{label}: schema differs: {table.schema}")
    lance = table.to_lance()
    got = lance.to_table(columns=t.data.column_names)
    if not got.equals(t.data.take(pa.array(keep, type=pa.int64()))):
        raise StoreFormatError(f"{label}: the rows' other columns changed")
    if written is not None:
        rows = sorted(written)
        back = lance.take(pa.array(rows, type=pa.int64()), columns=[t.vector_column])
        stored = back.column(0).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        expected = np.stack([written[n] for n in rows]) if rows else np.zeros((0, dim))
        # the column may hold float16 / float64: compare at float16's precision
        if stored.size != expected.size or not np.allclose(
            stored.reshape(expected.shape), expected, rtol=1e-3, atol=1e-3
        ):
            raise StoreFormatError(f"{label}: vectors read back differ from those written")
    else:
        done = 0
        for batch in lance.to_batches(columns=[t.vector_column], batch_size=8192):
            vectors = batch.column(0).flatten().to_numpy(zero_copy_only=False)
            if vectors.size != batch.num_rows * dim:
                raise StoreFormatError(f"{label}: vectors are not {dim}-dimensional")
            check_rows(vectors.reshape(batch.num_rows, dim), label, done)
            done += batch.num_rows
    have = sorted((i.name, i.index_type) for i in table.list_indices())
    want = sorted((i.name, i.kind) for i in t.indexes)
    if have != want:
        raise StoreFormatError(f"{label}: indexes {have}, expected {want}")


# -- reading ----------------------------------------------------------------------------
def read_lancedb(
    path: Path, *, table: str | None = None, text_field: str | None = None
) -> LanceDBStore:
    """Read a LanceDB database directory (or one ``<table>.lance`` of it); only reads."""
    if _is_table_dir(path):
        if table is not None and table != path.name[: -len(LANCE_SUFFIX)]:
            raise StoreFormatError(f"--collection {table!r} is not the table {path} holds")
        table, path = path.name[: -len(LANCE_SUFFIX)], path.parent
    if not is_lancedb_dir(path):
        raise StoreFormatError(f"{path} is not a LanceDB database (no <table>.lance inside).")
    for child in path.iterdir():
        if child.name.endswith(LANCE_SUFFIX) and not (child / "_versions").is_dir():
            raise StoreFormatError(
                f"{child} is not a complete LanceDB table (no _versions/ manifest): a "
                "half-written or damaged table. Restore it from a backup or remove it; "
                "nothing was written."
            )
    _require_lancedb()
    try:
        return _read(path, table, text_field)
    except (StoreFormatError, MigrationError):
        raise
    except Exception as exc:
        raise StoreFormatError(
            f"{path}: lancedb cannot read this database ({type(exc).__name__}: {exc}). It "
            "may be damaged or half-written; nothing was written. Restore it from a backup."
        ) from exc


def _read(path: Path, wanted: str | None, text_field: str | None) -> LanceDBStore:
    opened = _plain_datasets(path)
    if opened is None:
        db = _connect(path)
        opened = {}
        for n in _table_names(db):
            table = db.open_table(n)
            opened[n] = (table.schema, table.to_lance(), table)
    names = sorted(opened)
    vector_tables = {n: _vector_column(opened[n][0]) for n in names}
    candidates = [n for n, column in vector_tables.items() if column is not None]
    if wanted is not None:
        if wanted not in names:
            raise StoreFormatError(f"{path}: no table {wanted!r}; tables: {', '.join(names)}.")
        if wanted not in candidates:
            raise StoreFormatError(f"{path}: table {wanted!r} has no vector column.")
        candidates = [wanted]
    if not candidates:
        raise StoreFormatError(f"{path}: no LanceDB table with a vector column.")
    untouched = {n: int(opened[n][1].count_rows()) for n in names if n not in candidates}
    tables: list[_Table] = []
    start = 0
    for name in candidates:
        t = _read_table(path, name, *opened[name], text_field)
        t.start = start
        start += len(t.ids)
        tables.append(t)
    return LanceDBStore(path, tables, untouched)


def _plain_datasets(path: Path) -> dict[str, tuple[Any, Any, None]] | None:
    """Each table's (schema, lance dataset, None), opened with pylance alone, when the
    directory holds nothing but ``<table>.lance`` datasets without indexes (LangChain's
    and LlamaIndex's stores as they write them); else None, and lancedb opens them.
    Importing lancedb costs seconds more than pylance: it is then paid in the
    background while the server embeds (`LanceDBStore.warm_up`), not before; pylance
    is imported without pandas (`_lance_import.import_lance`)."""
    children = sorted(path.iterdir())
    if not children or not all(_is_table_dir(c) for c in children):
        return None
    lance = import_lance()
    found: dict[str, tuple[Any, Any, None]] = {}
    for child in children:
        dataset = lance.dataset(str(child))
        if dataset.describe_indices():
            return None
        found[child.name[: -len(LANCE_SUFFIX)]] = (dataset.schema, dataset, None)
    return found


def _vector_column(schema: Any) -> str | None:
    """The vector column: ``vector`` (lancedb's default), else the one fixed-size list of
    floats; None when there is none. Several without one named ``vector``: an error."""
    import pyarrow as pa

    found: list[str] = [
        str(f.name)
        for f in schema
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)
    ]
    if "vector" in found or not found:
        return "vector" if found else None
    if len(found) > 1:
        raise StoreFormatError(
            f"several vector columns ({', '.join(found)}) and none named 'vector': the "
            "migration cannot tell which one holds the text's embedding."
        )
    return found[0]


def _read_table(
    path: Path, name: str, schema: Any, lance: Any, table: Any, text_field: str | None
) -> _Table:
    """One table from its schema and lance dataset (``table``: lancedb's, for its
    indexes; None when it has none)."""
    import pyarrow as pa

    vector = _vector_column(schema)
    assert vector is not None
    column = text_field or "text"
    field_names = [f.name for f in schema]
    strings = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    if column not in strings:
        why = "has no column" if column not in field_names else "has a non-text column"
        raise StoreFormatError(
            f"{path}: table {name!r} {why} {column!r}; name the text column with "
            f"--text-field (string columns: {', '.join(strings) or 'none'})."
        )
    others = [n for n in field_names if n != vector]
    data = lance.to_table(columns=others)
    kind = _kind(schema, field_names)
    texts = data.column(column).to_pylist()
    if kind == "LlamaIndex LanceDBVectorStore":
        metadatas = data.column("metadata").to_pylist()
        texts = [
            node_embed_text(m, x) if isinstance(x, str) else None
            for x, m in zip(texts, metadatas, strict=True)
        ]
    if "id" in field_names:
        ids = [str(i) for i in data.column("id").to_pylist()]
    else:
        ids = [str(n) for n in range(data.num_rows)]
    indexes = (
        [] if table is None else [read_index(path, table, lance, i) for i in table.list_indices()]
    )
    t = _Table(
        name=name,
        vector_column=vector,
        dim=int(schema.field(vector).type.list_size),
        schema=schema,
        data=data,
        text_column=column,
        kind=kind,
        indexes=indexes,
        ids=ids,
        texts=texts,
    )
    t.sample = _sample(lance, vector, texts)
    return t


def _kind(schema: Any, names: list[str]) -> str | None:
    import pyarrow as pa

    columns = set(names)
    metadata = schema.field("metadata") if "metadata" in columns else None
    if (
        metadata is not None
        and pa.types.is_struct(metadata.type)
        and metadata.type.get_field_index(LLAMAINDEX_NODE_KEY) >= 0
    ):
        return "LlamaIndex LanceDBVectorStore"
    if columns >= _ANYTHINGLLM_COLUMNS:
        return "AnythingLLM"
    if {"vector", "id", "text", "metadata"} == columns:
        return "LangChain LanceDB"
    return None


def _sample(lance: Any, vector: str, texts: list[str | None]) -> tuple[list[str], F32Matrix] | None:
    wanted = list(
        itertools.islice(
            (n for n, t in enumerate(texts) if isinstance(t, str) and t.strip()), SAMPLE_ROWS
        )
    )
    if not wanted:
        return None
    import pyarrow as pa

    got = lance.take(pa.array(wanted, type=pa.int64()), columns=[vector])
    matrix = np.asarray(got.column(0).to_pylist(), dtype=np.float32)
    return [str(texts[n]) for n in wanted], matrix
