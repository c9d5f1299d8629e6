"""milvus-lite's engine collections as the Milvus Lite migration reads and fills them,
column by column: `engine_columns` (the rows of a partition) and `EngineInsert` (rows into
the copy), both through steps private to milvus-lite, checked by `check_engine`.

milvus-lite's public calls work one Python dict per row. ``Collection.query`` builds
every row whole, its vector included (a 384-float list per row), to keep the fields
asked for; ``Collection.insert`` checks every element of every vector in Python
(``validate_record``: 77 million ``isinstance`` calls per 200,000 rows of 384 floats),
then builds its write-ahead-log batch from those lists again. For collections whose
fields are plain scalars and the one float vector (`plain`):

- reading takes the engine's own candidate rows of a partition (``assemble_candidates``:
  its segments and memtable) and its own live-row mask (``build_valid_mask``: newest
  version of each key, deletes applied), in key order as ``query(order_by_pk=True)``, and
  takes the fields from each segment's Arrow table a column at a time (memtable rows
  still row by row, through the engine's ``materialize_row`` and projection);
- writing builds the batch columnar (the vectors a zero-copy ``FixedSizeList`` over the
  float32 block; the scalars are the original's values, read from the same schema by the
  same engine, and the vectors were checked finite as the server sent them) and hands it
  to the rest of the engine's own insert, unchanged: sequence numbers, the write-ahead
  log and memtable (``_apply``), the flush when a byte budget fills (``_should_flush`` /
  ``_trigger_flush``) and everything after it (Parquet, manifest, compaction, indexes)
  stay milvus-lite's; no file is written here.

`check_engine` looks for each private step when the store is opened and refuses a
release without them by name, with its version and the range tested. Other collections
(auto-id keys, functions, partition keys, dynamic fields, defaults, other field types)
are read through ``Collection.query`` and written through ``Collection.insert``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError

from ._store import F32Matrix

__all__ = ["TESTED_RANGE", "EngineInsert", "check_engine", "engine_columns", "plain"]

#: The milvus-lite releases whose engine internals below were checked (pip's spelling).
TESTED_RANGE = ">=3.2,<4"
#: What the columnar read and insert use of an engine ``Collection`` (private to milvus-lite).
_ENGINE_ENTRY_POINTS = (
    "_read_snapshot",
    "_memtable",
    "_vector_name",
    "_apply",
    "_should_flush",
    "_trigger_flush",
    "_next_seq",
    "_wal_data_schema",
    "_manifest",
    "_schema",
    "_pk_name",
    "_auto_id",
    "_partition_key_field",
    "_ingestion_chain",
    "_bm25_analyzers",
)
#: The engine's functions the columnar read and insert call (module, name).
_MODULE_ENTRY_POINTS = (
    ("milvus_lite.engine.operation", "InsertOp"),
    ("milvus_lite.search.assembler", "assemble_candidates"),
    ("milvus_lite.search.assembler", "materialize_record"),
    ("milvus_lite.search.bitmap", "build_valid_mask"),
    ("milvus_lite.engine.projection", "build_projection_plan"),
    ("milvus_lite.engine.projection", "project_record"),
)
#: Scalar field types whose stored values go back as they were read (milvus_lite.DataType
#: names); anything else is inserted through ``Collection.insert``.
_PLAIN_TYPES = {"BOOL", "INT8", "INT16", "INT32", "INT64", "FLOAT", "DOUBLE", "VARCHAR"}


def _version() -> str:
    import milvus_lite

    return str(getattr(milvus_lite, "__version__", "unknown"))


def check_engine(engine: Any, where: str) -> None:
    """Refuse, by name, an engine collection without the steps `engine_columns` and
    `EngineInsert` use (with the milvus-lite version and the range tested)."""
    missing = [name for name in _ENGINE_ENTRY_POINTS if not hasattr(engine, name)]
    for module, name in _MODULE_ENTRY_POINTS:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            missing.append(f"{module}.{name}")
    if missing:
        raise _refused(where, missing)


def _refused(where: str, missing: list[str]) -> MigrationError:
    return MigrationError(
        f"{where}: this milvus-lite ({_version()}) has no {', '.join(missing)} in its "
        "engine, which vllm-embed reads and writes the migrated rows through (tested with "
        f"milvus-lite{TESTED_RANGE}); the original is untouched: "
        f"pip install 'milvus-lite{TESTED_RANGE}'"
    )


class EngineInsert:
    """Inserts rows of one engine collection: columnar when its schema allows (`columnar`),
    else through ``Collection.insert``."""

    def __init__(self, engine: Any, vector_field: str, where: str) -> None:
        check_engine(engine, where)
        self._engine = engine
        self._vector = vector_field
        self._where = where
        self.columnar = plain(engine, vector_field)

    def insert(self, partition: str, rows: Sequence[dict[str, Any]], vectors: F32Matrix) -> None:
        """Insert ``rows`` (scalar fields as read) with ``vectors`` into ``partition``."""
        if not rows:
            return
        engine = self._engine
        if not self.columnar:
            records = []
            for row, vector in zip(rows, vectors.tolist(), strict=True):
                record = dict(row)
                record[self._vector] = vector
                records.append(record)
            engine.insert(records, partition_name=partition)
            return
        from milvus_lite.engine.operation import InsertOp

        if not engine._manifest.has_partition(partition):
            raise MigrationError(f"{self._where}: the copy has no partition {partition!r}")
        batch = self._batch(partition, rows, vectors, engine._next_seq)
        engine._next_seq += len(rows)  # as Collection.insert allocates them
        engine._apply(InsertOp(partition=partition, batch=batch))
        if engine._should_flush():
            engine._trigger_flush()

    def _batch(
        self, partition: str, rows: Sequence[dict[str, Any]], vectors: F32Matrix, first: int
    ) -> Any:
        """The write-ahead log's record batch of ``rows``, sequence numbers from ``first``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(rows)
        schema = self._engine._wal_data_schema
        columns = []
        for field in schema:
            if field.name == "_seq":
                column = pa.array(np.arange(first, first + n, dtype=np.uint64))
            elif field.name == "_partition":
                column = pa.array([partition] * n, type=pa.string())
            elif field.name == self._vector:
                dim = field.type.list_size
                block = np.ascontiguousarray(vectors, dtype=np.float32)
                if block.shape != (n, dim):
                    raise MigrationError(
                        f"{self._where}: vectors of shape {block.shape} for {n} rows of "
                        f"dimension {dim}"
                    )
                column = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), dim)
            else:
                column = pa.array([row.get(field.name) for row in rows], type=field.type)
                if column.null_count and not field.nullable:
                    raise MigrationError(
                        f"{self._where}: field {field.name!r} is not nullable but a row "
                        "has no value for it"
                    )
                limit = self._max_length(field.name)
                if limit is not None and n and pc.max(pc.utf8_length(column)).as_py() > limit:
                    raise MigrationError(
                        f"{self._where}: a value of field {field.name!r} is longer than its "
                        f"max_length {limit}"
                    )
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _max_length(self, name: str) -> int | None:
        for f in self._engine._schema.fields:
            if f.name == name and f.dtype.name == "VARCHAR":
                return int(f.max_length) if f.max_length is not None else None
        return None


def plain(engine: Any, vector_field: str) -> bool:
    """True when ``Collection.insert`` would only check and copy this collection's rows
    and ``query`` only build them: no auto-id, functions, partition key, dynamic field or
    defaults; scalar fields of `_PLAIN_TYPES` and the one float vector."""
    schema = engine._schema
    if (
        engine._auto_id
        or engine._partition_key_field is not None
        or engine._ingestion_chain
        or engine._bm25_analyzers
        or getattr(schema, "functions", None)
        or schema.enable_dynamic_field
    ):
        return False
    for f in schema.fields:
        if f.default_value is not None or getattr(f, "is_function_output", False):
            return False
        if f.name == vector_field:
            if f.dtype.name != "FLOAT_VECTOR" or f.nullable:
                return False
        elif f.dtype.name not in _PLAIN_TYPES:
            return False
    return True


def engine_columns(
    engine: Any, partition: str, fields: Sequence[str], where: str
) -> list[dict[str, Any]]:
    """The live rows of ``partition`` (``fields``) in key order, as
    ``engine.query(None, output_fields=fields, partition_names=[partition],
    order_by_pk=True)`` returns them, for a `plain` collection: segment rows taken a column
    at a time from the segment's Arrow table, without building their vectors."""
    from milvus_lite.engine.projection import build_projection_plan, project_record
    from milvus_lite.search.assembler import assemble_candidates, materialize_record
    from milvus_lite.search.bitmap import build_valid_mask

    segments, deltas = engine._read_snapshot()
    pks, seqs, _, sources, _ = assemble_candidates(
        segments=segments,
        memtable=engine._memtable,
        vector_field=engine._vector_name,
        partition_names=[partition],
        filter_compiled=None,
        indexed_filter_plan=None,
    )
    if not pks:
        return []
    mask = build_valid_mask(pks, seqs, deltas, filter_mask=None, memtable=engine._memtable)
    live = sorted(np.flatnonzero(mask).tolist(), key=pks.__getitem__)
    names = list(dict.fromkeys([*fields, engine._pk_name]))
    out: list[dict[str, Any]] = [{}] * len(live)
    by_segment: dict[int, tuple[Any, list[int], list[int]]] = {}
    plan = None
    for at, i in enumerate(live):
        source, ref = sources[i]
        if isinstance(ref, int):  # a segment's row
            by_segment.setdefault(id(source), (source, [], []))
            by_segment[id(source)][1].append(at)
            by_segment[id(source)][2].append(ref)
        else:  # the memtable's: row by row, as query does
            plan = plan or build_projection_plan(names, engine._schema, api_kind="query")
            out[at] = project_record(materialize_record(sources[i]), engine._schema, plan)
    for segment, ats, rows in by_segment.values():
        if not hasattr(segment, "table"):
            raise _refused(where, ["Segment.table"])
        picked = segment.table.select(names).take(rows)
        columns = [picked.column(name).to_pylist() for name in names]
        for at, values in zip(ats, zip(*columns, strict=True), strict=True):
            out[at] = dict(zip(names, values, strict=True))
    return out
