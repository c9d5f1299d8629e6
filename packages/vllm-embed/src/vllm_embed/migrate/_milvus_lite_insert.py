"""Rows into milvus-lite's engine collection as one columnar batch (`EngineInsert`, used by
`_milvus_lite_fill.LiteWriter`).

milvus-lite's ``Collection.insert`` takes a list of row dicts: it checks every element of
every vector in Python (``validate_record``: 77 million ``isinstance`` calls per 200,000
rows of 384 floats), then builds its write-ahead-log batch from those lists again. The
copy's rows are the original's scalar values (read from the same schema by the same
engine) and float32 vectors the migration checked as the server sent them, so here the
batch is built columnar (the vectors a zero-copy ``FixedSizeList`` over the float32 block)
and handed to the rest of the engine's own insert, unchanged: sequence numbers, the
write-ahead log and memtable (``_apply``), the flush when a byte budget fills
(``_should_flush`` / ``_trigger_flush``) and everything after it (Parquet, manifest,
compaction, indexes) stay milvus-lite's; no file is written here.

Those steps are private to milvus-lite: `check_engine` looks for each of them when the
store is opened and refuses a release without them by name, with its version and the
range tested. Collections the engine's insert does more for (auto-id keys, functions,
partition keys, dynamic fields, defaults, field types other than scalars and the one
float vector) keep going through ``Collection.insert`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError

from ._store import F32Matrix

__all__ = ["TESTED_RANGE", "EngineInsert", "check_engine"]

#: The milvus-lite releases whose engine internals below were checked (pip's spelling).
TESTED_RANGE = ">=3.2,<4"
#: What the columnar insert uses of an engine ``Collection`` (private to milvus-lite).
_ENGINE_ENTRY_POINTS = (
    "_apply",
    "_should_flush",
    "_trigger_flush",
    "_next_seq",
    "_wal_data_schema",
    "_manifest",
    "_schema",
    "_auto_id",
    "_partition_key_field",
    "_ingestion_chain",
    "_bm25_analyzers",
)
#: Scalar field types whose stored values go back as they were read (milvus_lite.DataType
#: names); anything else is inserted through ``Collection.insert``.
_PLAIN_TYPES = {"BOOL", "INT8", "INT16", "INT32", "INT64", "FLOAT", "DOUBLE", "VARCHAR"}


def _version() -> str:
    import milvus_lite

    return str(getattr(milvus_lite, "__version__", "unknown"))


def check_engine(engine: Any, where: str) -> None:
    """Refuse, by name, an engine collection without the insert path `EngineInsert` uses."""
    missing = [name for name in _ENGINE_ENTRY_POINTS if not hasattr(engine, name)]
    try:
        from milvus_lite.engine.operation import InsertOp  # noqa: F401
    except ImportError:
        missing.append("milvus_lite.engine.operation.InsertOp")
    if missing:
        raise MigrationError(
            f"{where}: this milvus-lite ({_version()}) has no {', '.join(missing)} in its "
            "engine, which vllm-embed writes the migrated rows through (tested with "
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
        self.columnar = _plain(engine, vector_field)

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


def _plain(engine: Any, vector_field: str) -> bool:
    """True when ``Collection.insert`` would only check and copy this collection's rows:
    no auto-id, functions, partition key, dynamic field or defaults; scalar fields of
    `_PLAIN_TYPES` and the one float vector."""
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
