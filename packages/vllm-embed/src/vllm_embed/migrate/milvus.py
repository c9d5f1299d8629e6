"""Milvus Lite databases (``MilvusClient("./milvus.db")``: pymilvus + milvus-lite, embedded).

milvus-lite 3.x keeps a database as a directory (``LOCK``, ``collections/<name>/``
with ``schema.json``, ``manifest.json`` and its write-ahead log). Collections written
by LangChain's ``Milvus`` (langchain-milvus: ``pk``, ``text``, ``vector``, metadata as
fields), LlamaIndex's ``MilvusVectorStore`` (``id``, ``doc_id``, ``text``,
``embedding`` + the node JSON ``_node_content`` in the dynamic field) and plain
pymilvus (the text field named with ``--text-field``, default ``text``). The dimension
is part of the schema, so everything goes through the library: pymilvus, and the rows
through milvus-lite's engine behind it (`_milvus_lite`).

- Reading: the directory is copied to a scratch directory and only the copy is opened
  (opening a database takes its lock, replays and may rewrite its log, and compacts in
  the background: milvus-lite cannot open a directory read-only); the schema,
  properties, partitions, indexes and aliases of each collection are read through
  pymilvus, its rows without the vectors, partition by partition in key order, through
  milvus-lite's engine behind that client (`_milvus_lite.engine_rows`: a column at a
  time for collections of plain scalar fields, `_milvus_lite_engine.engine_columns`; the
  probe sample's vectors by key). The engine steps used are checked first
  (`_milvus_lite_engine.check_engine`).
- Text: the text field; for LlamaIndex rows, what LlamaIndex embeds: the node rebuilt
  from ``_node_content`` + the text, ``MetadataMode.EMBED``.
- Writing (`_milvus_lite_fill.LiteWriter`, while the server embeds): the directory is
  copied to the work directory without the migrated collections (their old rows would
  only be loaded to be dropped); each is created again through pymilvus with the same
  fields (the vector field at the new dimension), dynamic-field and auto-id settings,
  properties, index (type, metric, build parameters) and partitions, then filled
  partition by partition through the engine as the embedded rows arrive (one columnar
  batch per write through its own log, memtable and flush, `_milvus_lite_engine.
  EngineInsert`; its ``insert`` for collections with dynamic fields, auto-id and the like)
  (the first batch after a resume is an ``upsert``: a kill may have left it written
  without its mark); at the end the embedding space goes into its properties
  (``SPACE_KEY``), its aliases are made again where missing, and the database is closed
  (milvus-lite writes its memtable to Parquet) and synced.
- Verifying (`check_collection`, one reopen): schema, properties, partitions, indexes
  and aliases through pymilvus; through the engine, each partition's count of live
  keys (the copy only received the original's keys, one row each: equal counts mean
  every kept row is in, once) and 1,024 rows spread over the collection read whole from
  their own partitions (every field, the vector's dimension, finite; every row was
  checked finite as the server sent it); and a pymilvus search per collection that must
  return the queried row first.
- Installing: the directories are exchanged (`_dirstore.DirectoryStore`); the original
  is kept as ``NAME.d<old dim>.bak``.

Milvus servers (``http://host:19530``) reuse the reading and checking here
(`_milvus_server`; without an engine: keys listed through pymilvus' iterator). The
collection record, its creation and the base of both stores live in `_milvus_collection`;
the client, paged reads, the engine's collections and the embedded-server handling in
`_milvus_lite`; the writer in `_milvus_lite_fill`; the engine's private steps (columnar
read and insert) in `_milvus_lite_engine`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._dirstore import PartView
from ._milvus_collection import MilvusCollection, MilvusStore
from ._milvus_lite import (
    LiteClient,
    count_rows,
    engine_rows,
    iterate_rows,
    pymilvus_module,
    served_here,
)
from ._milvus_lite_engine import check_engine
from ._milvus_lite_fill import LiteWriter
from ._space import EmbeddingSpace
from ._store import Rows, RowWriter, check_rows
from .llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text

__all__ = ["MilvusLiteStore", "is_milvus_lite_dir", "read_milvus"]

#: Stored vectors kept from reading, for ``doctor --store``'s probe.
SAMPLE_ROWS = 16
#: Rows whose vectors the check reads back (dimension, finite); all rows are compared.
_VECTOR_CHECK_ROWS = 1024
_FLOAT_VECTOR = 101  # pymilvus DataType.FLOAT_VECTOR


def is_milvus_lite_dir(path: Path) -> bool:
    """A milvus-lite database directory (``LOCK`` + ``collections/``)."""
    return path.is_dir() and (path / "LOCK").is_file() and (path / "collections").is_dir()


class MilvusLiteStore(MilvusStore):
    """A Milvus Lite database directory read for migration (every collection, or one)."""

    #: Rows per engine ``insert`` in the copy (one mark each: what a kill can cost).
    batch_rows = 8192
    #: The library check re-reads keys, rows and vectors too (`check_collection`): one
    #: reopen of the copy instead of two.
    library_check_is_complete = True

    def __init__(
        self, path: Path, collections: list[MilvusCollection], untouched: dict[str, int]
    ) -> None:
        self.path = self.target = path
        self._untouched = untouched
        self._hold(collections, "Milvus Lite", [c.name for c in collections])

    def collection_views(self) -> list[PartView]:
        return [PartView(c.name, c) for c in self._collections]

    # -- writing -------------------------------------------------------------------------
    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter:
        """Fill the copy while the server embeds (see `LiteWriter`)."""
        return LiteWriter(self, out, keep, dim)

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """The same as the streaming writer, from the finished vector file."""
        writer = LiteWriter(self, out, keep, rows.dim)
        try:
            writer.begin()
            for block in rows.blocks():
                writer.add(block)
            writer.finish()
        except BaseException:
            writer.abort()
            raise

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        lite = LiteClient(path)
        with lite as client:
            self._check(lite, client, path, ids, dim)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """`check_written`, then a search per collection must return the queried row
        first (L2 / cosine), on one reopen of ``path``."""
        lite = LiteClient(path)
        with lite as client:
            kept = self._check(lite, client, path, ids, dim)
            for c, keep in zip(self._collections, kept, strict=True):
                engine = lite.collection(c.name)
                key = [c.rows[keep[0]][c.primary]] if keep else []
                got = engine.get(key, output_fields=[c.primary, c.vector_field]) if key else []
                row = got[0] if got else None
                search_check(client, c, c.name, f"{c.name!r} in {path}", row=row)
        return "milvus-lite"

    def _check(
        self, lite: LiteClient, client: Any, path: Path, ids: Sequence[str], dim: int
    ) -> list[list[int]]:
        """`check_collection` of each migrated collection; its kept rows."""
        where = f"written Milvus Lite database {path}"
        kept = set(ids)
        prefix = len(self._collections) > 1
        names = set(client.list_collections())
        for name, count in self._untouched.items():
            if name not in names or count_rows(client, name) != count:
                raise StoreFormatError(f"{where}: collection {name!r} changed")
        rows = []
        for c in self._collections:
            if c.name not in names:
                raise StoreFormatError(f"{where}: collection {c.name!r} is missing")
            keep = [n for n, i in enumerate(c.ids) if (f"{c.name}/{i}" if prefix else i) in kept]
            engine = lite.collection(c.name)
            check_collection(where, client, c, keep, dim, self._space, engine=engine)
            rows.append(keep)
        return rows


def search_check(
    client: Any, c: MilvusCollection, name: str, label: str, *, row: dict[str, Any] | None = None
) -> None:
    """A row of collection ``name`` (shaped like ``c``; ``row``: its key and vector when the
    caller read one) searched for must come first."""
    client.load_collection(name)
    first = (
        [row]
        if row is not None
        else client.query(name, filter="", limit=1, output_fields=[c.primary, c.vector_field])
    )
    if not first:
        return
    metric = str((c.indexes[0] if c.indexes else {}).get("metric_type") or "")
    hits = client.search(
        name,
        data=[list(first[0][c.vector_field])],
        limit=1,
        anns_field=c.vector_field,
        output_fields=[c.primary],
        search_params={"metric_type": metric} if metric else None,
    )
    top = [h[c.primary] for h in hits[0]] if hits else []
    if not top or (metric in ("L2", "COSINE") and top[0] != first[0][c.primary]):
        raise StoreFormatError(
            f"pymilvus cannot search the migrated collection {label} consistently (a row "
            "is not its own nearest neighbour)"
        )


def _schema_fields(description: dict[str, Any], vector: str, dim: int) -> list[Any]:
    fields = []
    for f in description["fields"]:
        f = {k: v for k, v in f.items() if k != "field_id"}
        if f["name"] == vector:
            f["params"] = {**(f.get("params") or {}), "dim": dim}
        fields.append(f)
    return fields


def _index_shape(indexes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (i.get("field_name"), i.get("index_type"), i.get("metric_type"), i.get("index_name"))
        for i in indexes
    )


def check_collection(
    where: str,
    client: Any,
    c: MilvusCollection,
    keep: list[int],
    dim: int,
    space: EmbeddingSpace | None,
    *,
    name: str | None = None,
    aliases: bool = True,
    engine: Any = None,
) -> None:
    """Collection ``name`` (default ``c.name``) as the migration of ``c`` must have made it:
    schema (vector field at ``dim``), properties (``space`` recorded), partitions, indexes,
    aliases (unless ``aliases`` is False: a server's are moved at the switch), every kept
    row's key in its partition and no other, and the first `_VECTOR_CHECK_ROWS` rows whole
    (every field, the vector's dimension, finite). Reading the keys only keeps the check a
    fraction of a full read-back (the fields of a row are sent as they were read). With
    ``engine`` (milvus-lite's collection behind ``client``) keys and rows are read through
    it, as `_read_collection` read them."""
    name = name or c.name
    label = f"{where}: collection {name!r}"
    d = client.describe_collection(name)
    if _schema_fields(d, c.vector_field, dim) != _schema_fields(c.description, c.vector_field, dim):
        raise StoreFormatError(f"{label}: fields differ: {d['fields']}")
    if {str(k): str(v) for k, v in (d.get("properties") or {}).items()} != c.properties(space):
        raise StoreFormatError(f"{label}: properties differ")
    if sorted(client.list_partitions(name)) != sorted(c.partitions):
        raise StoreFormatError(f"{label}: partitions differ")
    indexes = [client.describe_index(name, i) for i in client.list_indexes(name)]
    if _index_shape(indexes) != _index_shape(c.indexes):
        raise StoreFormatError(f"{label}: indexes differ: {indexes}")
    if aliases and sorted(client.list_aliases(name).get("aliases") or []) != sorted(c.aliases):
        raise StoreFormatError(f"{label}: aliases differ")
    if engine is not None:
        _check_counts(label, engine, c, keep)
        sample = _spread(keep, _VECTOR_CHECK_ROWS)
    else:
        _check_keys(label, client, name, c, keep)
        sample = keep[:_VECTOR_CHECK_ROWS]
    # every vector was checked finite as it came from the server; the schema fixes the
    # dimension: read back a sample whole to see that the engine stored them so
    if sample:
        fields = [*_scalar_fields(c), c.vector_field]
        if engine is not None:  # each row looked up in its own partition only
            got = []
            for partition in c.partitions:
                ids = [c.rows[n][c.primary] for n in sample if c.row_partitions[n] == partition]
                if ids:
                    got += engine.get(ids, partition_names=[partition], output_fields=fields)
        else:
            ids = [c.rows[n][c.primary] for n in sample]
            got = client.get(name, ids=ids, output_fields=fields)
        by_key = {r[c.primary]: r for r in got}
        for n in sample:
            row = dict(by_key.get(c.rows[n][c.primary]) or {})
            row.pop(c.vector_field, None)
            if row != c.rows[n]:
                raise StoreFormatError(
                    f"{label}: row {c.rows[n][c.primary]!r} differs from the original"
                )
        vectors = np.asarray([by_key[c.rows[n][c.primary]][c.vector_field] for n in sample])
        if vectors.shape != (len(sample), dim):
            raise StoreFormatError(f"{label}: vectors of shape {vectors.shape}, expected {dim}")
        check_rows(vectors.astype(np.float32), label, 0)


def _check_keys(label: str, client: Any, name: str, c: MilvusCollection, keep: list[int]) -> None:
    """Every key of ``name`` (pymilvus' iterator) is a kept row's, in that row's partition."""
    expected = {c.rows[n][c.primary]: c.row_partitions[n] for n in keep}
    seen = 0
    for partition, record in iterate_rows(client, name, c.partitions, [c.primary]):
        key = record[c.primary]
        if expected.get(key) != partition:
            raise StoreFormatError(
                f"{label}: row {key!r} is not a row of the original's partition {partition!r}"
            )
        seen += 1
    if seen != len(expected):
        raise StoreFormatError(f"{label} holds {seen} rows, expected {len(expected)}")


def _check_counts(label: str, engine: Any, c: MilvusCollection, keep: list[int]) -> None:
    """The live rows of each partition, counted by milvus-lite over every key its files hold
    (``partition_num_entities``: keys and sequence numbers only, no row built), are the
    kept rows of that partition. The copy only ever received keys of the original's rows
    and the engine keeps one row per key, so equal counts mean each kept row is there
    once, and the spread sample then finds rows in their own partitions. (Listing the
    keys through ``query`` builds every row, vector included: 5 s per 200,000 rows.)"""
    want = Counter(c.row_partitions[n] for n in keep)
    for partition in c.partitions:
        got = int(engine.partition_num_entities(partition))
        if got != want.get(partition, 0):
            raise StoreFormatError(
                f"{label}: partition {partition!r} holds {got} rows, expected "
                f"{want.get(partition, 0)}"
            )


def _spread(keep: list[int], count: int) -> list[int]:
    """Up to ``count`` of ``keep``, evenly spread from the first to the last."""
    if len(keep) <= count:
        return list(keep)
    return [keep[round(i * (len(keep) - 1) / (count - 1))] for i in range(count)]


def _scalar_fields(c: MilvusCollection) -> list[str]:
    """Every field but the vector one (``$meta``: the dynamic fields, flattened)."""
    names = [f["name"] for f in c.description["fields"] if f["name"] != c.vector_field]
    return names + (["$meta"] if c.description.get("enable_dynamic_field") else [])


# -- reading ----------------------------------------------------------------------------
def read_milvus(
    path: Path, *, collection: str | None = None, text_field: str | None = None
) -> MilvusLiteStore:
    """Read a Milvus Lite database (from a scratch copy; the original is only read)."""
    if not is_milvus_lite_dir(path):
        raise StoreFormatError(f"{path} is not a Milvus Lite database (no LOCK + collections/).")
    for child in (path / "collections").iterdir():
        if child.is_dir() and not (child / "schema.json").is_file():
            raise StoreFormatError(
                f"{child} is not a complete Milvus Lite collection (no schema.json): a "
                "half-written or damaged database. Restore it from a backup; nothing was "
                "written."
            )
    pymilvus_module()
    if served_here(path):
        raise MigrationError(
            f"{path} is open in this process (milvus-lite's embedded server for it is "
            "running): close your MilvusClient and stop that server first "
            f"(milvus_lite.server_manager_instance.release_server({str(path)!r})), so the "
            "migration reads everything and nothing writes to the directory after the switch."
        )
    with tempfile.TemporaryDirectory(prefix=".vllm-embed-read-", dir=path.parent) as scratch:
        copy = Path(scratch) / path.name
        shutil.copytree(path, copy, symlinks=True)
        try:
            return _read_copy(path, copy, collection, text_field)
        except (StoreFormatError, MigrationError):
            raise
        except Exception as exc:
            raise StoreFormatError(
                f"{path}: pymilvus cannot read this Milvus Lite database "
                f"({type(exc).__name__}: {exc}). It may be damaged or half-written; nothing "
                "was written. Restore it from a backup."
            ) from exc


def _read_copy(
    path: Path, copy: Path, wanted: str | None, text_field: str | None
) -> MilvusLiteStore:
    lite = LiteClient(copy)
    with lite as client:
        names = sorted(str(n) for n in client.list_collections())
        if wanted is not None and wanted not in names:
            raise StoreFormatError(
                f"{path}: no collection {wanted!r}; collections: {', '.join(names)}."
            )
        chosen = [wanted] if wanted is not None else names
        if not chosen:
            raise StoreFormatError(f"{path}: the Milvus Lite database holds no collection.")
        untouched = {n: count_rows(client, n) for n in names if n not in chosen}
        collections = []
        start = 0
        for name in chosen:
            engine = lite.collection(name)
            check_engine(engine, f"{path}: collection {name!r}")  # what the writer uses
            c = _read_collection(path, client, name, text_field, engine=engine)
            c.start = start
            start += len(c.rows)
            collections.append(c)
    return MilvusLiteStore(path, collections, untouched)


def _read_collection(
    path: str | Path,
    client: Any,
    name: str,
    text_field: str | None,
    *,
    server: bool = False,
    engine: Any = None,
) -> MilvusCollection:
    """One collection; ``server``: a Milvus server, whose aliases are in the description
    (its ``list_aliases`` fails outside the default database; milvus-lite's description
    lists none). ``engine``: milvus-lite's collection behind ``client``, which the rows
    and the probe sample's vectors are read through."""
    d = client.describe_collection(name)
    if d.get("functions"):
        raise StoreFormatError(
            f"{path}: collection {name!r} has functions (e.g. BM25); this migration cannot "
            "create them again yet."
        )
    fields = {f["name"]: f for f in d["fields"]}
    vectors = [n for n, f in fields.items() if f["type"] == _FLOAT_VECTOR]
    preferred = [n for n in ("vector", "embedding") if n in vectors]
    if not vectors or (len(vectors) > 1 and not preferred):
        raise StoreFormatError(
            f"{path}: collection {name!r} has {len(vectors)} float vector fields "
            f"({', '.join(vectors) or 'none'}); cannot tell which holds the text's embedding."
        )
    vector = preferred[0] if preferred else vectors[0]
    primary = next(n for n, f in fields.items() if f.get("is_primary"))
    column = text_field or "text"
    if column not in fields and not d.get("enable_dynamic_field"):
        raise StoreFormatError(
            f"{path}: collection {name!r} has no field {column!r}; name the text field with "
            f"--text-field (fields: {', '.join(fields)})."
        )
    indexes = [client.describe_index(name, i) for i in client.list_indexes(name)]
    c = MilvusCollection(
        name=name,
        description=d,
        vector_field=vector,
        primary=primary,
        dim=int(fields[vector]["params"]["dim"]),
        text_field=column,
        kind=None,
        indexes=indexes,
        partitions=list(client.list_partitions(name)),
        aliases=list(
            (d.get("aliases") if server else client.list_aliases(name).get("aliases")) or []
        ),
    )
    sample: list[tuple[Any, str]] = []  # (primary key, text) of the probe sample
    llamaindex = False
    rows = (
        engine_rows(engine, c.partitions, _scalar_fields(c), f"{path}: collection {name!r}")
        if engine is not None
        else iterate_rows(client, name, c.partitions, _scalar_fields(c))
    )
    for partition, record in rows:
        c.rows.append(record)
        c.row_partitions.append(partition)
        text = record.get(column)
        if LLAMAINDEX_NODE_KEY in record and isinstance(text, str):
            llamaindex = True
            text = node_embed_text(record, text)
        c.texts.append(text if isinstance(text, str) else None)
        if isinstance(text, str) and text.strip() and len(sample) < SAMPLE_ROWS:
            sample.append((record[primary], text))
    if sample:
        keys = [k for k, _ in sample]
        got = (
            engine.get(keys, output_fields=[primary, vector])
            if engine is not None
            else client.get(name, ids=keys, output_fields=[primary, vector])
        )
        by_key = {r[primary]: r[vector] for r in got}
        pairs = [(t, by_key[k]) for k, t in sample if k in by_key]
        c.sample = [t for t, _ in pairs], np.asarray([v for _, v in pairs], dtype=np.float32)
    if column not in fields and not any(column in r for r in c.rows):
        raise StoreFormatError(
            f"{path}: collection {name!r} has no field {column!r}; name the text field with "
            f"--text-field (fields: {', '.join(fields)})."
        )
    if llamaindex:
        c.kind = "LlamaIndex MilvusVectorStore"
    elif {"pk", "text", "vector"} <= set(fields):
        c.kind = "LangChain Milvus"
    return c
