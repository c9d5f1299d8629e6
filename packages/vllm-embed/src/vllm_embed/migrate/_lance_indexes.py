"""The indexes of a LanceDB table, read and created again (`vllm_embed.migrate.lancedb`).

Vector indexes (IVF_PQ, IVF_FLAT, IVF_SQ, IVF_RQ, IVF_HNSW_*) keep their name, distance
and parameters (partitions, sub-vectors, bits, HNSW ``m``) and are trained again on the
new vectors; a sub-vector count that does not divide the new dimension falls back to
lancedb's default (logged). FTS indexes keep their tokenizer settings; BTree, Bitmap and
LabelList scalar indexes are created again on their column. Any other index type is
refused before anything is embedded.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_embed._errors import StoreFormatError

__all__ = ["Index", "create_indexes", "read_index"]

logger = logging.getLogger(__name__)

#: lancedb index types -> (config class in ``lancedb.index``, its parameters).
_VECTOR_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "IvfPq": ("IvfPq", ("num_partitions", "num_sub_vectors", "num_bits")),
    "IvfFlat": ("IvfFlat", ("num_partitions",)),
    "IvfSq": ("IvfSq", ("num_partitions",)),
    "IvfRq": ("IvfRq", ("num_partitions", "num_bits")),
    "IvfHnswPq": ("HnswPq", ("num_partitions", "num_sub_vectors", "num_bits", "m")),
    "IvfHnswSq": ("HnswSq", ("num_partitions", "m")),
    "IvfHnswFlat": ("HnswFlat", ("num_partitions", "m")),
}
_SCALAR_INDEXES = ("BTree", "Bitmap", "LabelList")
#: FTS settings as ``list_indices`` reports them -> ``lancedb.index.FTS`` fields.
_FTS_FIELDS = {
    "with_position": "with_position",
    "base_tokenizer": "base_tokenizer",
    "language": "language",
    "max_token_length": "max_token_length",
    "lower_case": "lower_case",
    "stem": "stem",
    "remove_stop_words": "remove_stop_words",
    "ascii_folding": "ascii_folding",
    "min_ngram_length": "ngram_min_length",
    "max_ngram_length": "ngram_max_length",
    "prefix_only": "prefix_only",
    "custom_stop_words": "custom_stop_words",
}


@dataclass(frozen=True)
class Index:
    """One index of a table, as it is created again."""

    name: str
    kind: str  # lancedb's index type name ("IvfPq", "FTS", "BTree", ...)
    column: str
    params: dict[str, Any]

    def config(self, dim: int) -> Any:
        from lancedb import index

        if self.kind == "FTS":
            return index.FTS(**self.params)
        if self.kind in _SCALAR_INDEXES:
            return getattr(index, self.kind)()
        cls_name, _ = _VECTOR_INDEXES[self.kind]
        params = dict(self.params)
        sub = params.get("num_sub_vectors")
        if isinstance(sub, int) and dim % sub:  # trained for the old dimension
            logger.warning(
                "index %r: %d sub-vectors do not divide the new dimension %d; lancedb's "
                "default is used",
                self.name,
                sub,
                dim,
            )
            params.pop("num_sub_vectors")
        return getattr(index, cls_name)(**params)


def create_indexes(table: Any, indexes: list[Index], vector_column: str, dim: int) -> None:
    """The table's indexes created again (vector ones trained on the new vectors)."""
    existing = {i.name for i in table.list_indices()}
    for index in indexes:
        if index.name in existing:  # a killed run created it already
            continue
        column_dim = dim if index.column == vector_column else 0
        table.create_index(
            index.column, config=index.config(column_dim), name=index.name, replace=True
        )


def read_index(path: Path, table: Any, lance: Any, index: Any) -> Index:
    kind = str(index.index_type)
    column = str(index.columns[0])
    details = dict(getattr(index, "index_details", None) or {})
    if kind == "FTS":
        fts = {new: details[old] for old, new in _FTS_FIELDS.items() if old in details}
        return Index(str(index.name), kind, column, fts)
    if kind in _SCALAR_INDEXES:
        return Index(str(index.name), kind, column, {})
    if kind not in _VECTOR_INDEXES:
        raise StoreFormatError(
            f"{path}: table {table.name!r} has a {kind} index ({index.name!r}) this migration "
            "cannot create again; drop it (table.drop_index) and re-create it afterwards."
        )
    stats = _lance_index_stats(lance, str(index.name))
    sub = stats.get("sub_index") or {}
    found = {
        "num_partitions": stats.get("num_partitions"),
        "num_sub_vectors": sub.get("num_sub_vectors"),
        "num_bits": sub.get("nbits"),
        "m": sub.get("m"),
    }
    _, names = _VECTOR_INDEXES[kind]
    params: dict[str, Any] = {k: found[k] for k in names if isinstance(found.get(k), int)}
    metric = str(stats.get("metric_type") or table.index_stats(index.name).distance_type)
    params["distance_type"] = metric.lower()
    return Index(str(index.name), kind, column, params)


def _lance_index_stats(lance: Any, name: str) -> dict[str, Any]:
    """The first segment's statistics of a vector index (partitions, sub-index)."""
    os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")
    with contextlib.suppress(Exception):
        stats = lance.stats.index_stats(name)
        indices = stats.get("indices") or []
        if indices:
            return dict(indices[0])
    return {}
