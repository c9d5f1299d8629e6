"""A Milvus collection as `vllm_embed.migrate.milvus` and `_milvus_server` read it
(`MilvusCollection`), made again (`create_collection`, `create_again`) and filled
(`by_partition`), and the base both Milvus stores share (`MilvusStore`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._dirstore import DirectoryStore, SampledPart, parts_format, parts_text_field
from ._milvus_lite import pymilvus_module
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix

__all__ = [
    "MilvusCollection",
    "MilvusStore",
    "by_partition",
    "create_again",
    "create_collection",
    "index_build_params",
    "index_params_of",
]

_DEFAULT_PARTITION = "_default"


@dataclass
class MilvusCollection(SampledPart):
    """One collection as read: everything needed to create it again."""

    name: str
    description: dict[str, Any]
    vector_field: str
    primary: str
    dim: int
    text_field: str
    kind: str | None
    indexes: list[dict[str, Any]]
    partitions: list[str]
    aliases: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)  # without the vector
    row_partitions: list[str] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    start: int = 0
    sample: tuple[list[str], F32Matrix] | None = None

    @property
    def ids(self) -> list[str]:
        return [str(r[self.primary]) for r in self.rows]

    def properties(self, space: EmbeddingSpace | None) -> dict[str, str]:
        props = {str(k): str(v) for k, v in (self.description.get("properties") or {}).items()}
        props.pop(SPACE_KEY, None)
        if space is not None:
            props[SPACE_KEY] = space.to_json()
        return props

    def recorded_space(self) -> EmbeddingSpace | None:
        raw = (self.description.get("properties") or {}).get(SPACE_KEY)
        return EmbeddingSpace.from_json(raw) if isinstance(raw, str) else None


class MilvusStore(DirectoryStore):
    """What the Milvus Lite and the Milvus server stores share: their collections as
    read, the embedding space kept for the writer, pymilvus imported in the background."""

    #: Rows per write (one mark each: what a kill can cost).
    batch_rows: int
    _collections: list[MilvusCollection]
    _space: EmbeddingSpace | None

    def _hold(self, collections: list[MilvusCollection], where: str, names: list[str]) -> None:
        self._collections = collections
        self._space = None
        kinds = [c.kind for c in collections]
        self.format = parts_format(where, kinds, "collection", names)
        self.text_field = parts_text_field(
            [c.text_field for c in collections], kinds, "LlamaIndex MilvusVectorStore"
        )
        self._join_parts()

    @property
    def _parts(self) -> list[MilvusCollection]:
        return self._collections

    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for the writer: the record goes into each new collection's properties."""
        self._space = space

    def warm_up(self) -> None:
        pymilvus_module()


def create_collection(
    client: Any, c: MilvusCollection, name: str, dim: int, space: EmbeddingSpace | None
) -> None:
    """Create ``name`` like ``c`` (fields, the vector field at ``dim``, dynamic-field and
    auto-id settings, properties with ``space`` recorded, indexes, partitions), empty."""
    pymilvus = pymilvus_module()
    d = c.description
    schema = client.create_schema(
        auto_id=bool(d.get("auto_id")),
        enable_dynamic_field=bool(d.get("enable_dynamic_field")),
        description=str(d.get("description") or ""),
    )
    for f in d["fields"]:
        params = dict(f.get("params") or {})
        if f["name"] == c.vector_field:
            params["dim"] = dim
        extra = {
            k: (pymilvus.DataType(v) if k == "element_type" else v)
            for k, v in f.items()
            if k not in ("field_id", "name", "type", "params")
        }
        schema.add_field(f["name"], pymilvus.DataType(f["type"]), **extra, **params)
    index_params = index_params_of(client, c)
    client.create_collection(
        name,
        schema=schema,
        index_params=index_params if c.indexes else None,
        properties=c.properties(space),
    )
    for partition in c.partitions:
        if partition != _DEFAULT_PARTITION:
            client.create_partition(name, partition)


#: What ``describe_index`` reports beside the build parameters (pymilvus flattens them in).
_INDEX_STATE = {
    "field_name",
    "index_type",
    "metric_type",
    "index_name",
    "total_rows",
    "indexed_rows",
    "pending_index_rows",
    "state",
    "params",
}


def index_params_of(client: Any, c: MilvusCollection, made: frozenset[str] = frozenset()) -> Any:
    """pymilvus' index parameters for the indexes of ``c`` (with their build parameters),
    leaving out those named in ``made`` (a killed run created them already)."""
    index_params = client.prepare_index_params()
    for idx in c.indexes:
        if idx.get("index_name", "") not in made:
            index_params.add_index(
                field_name=idx["field_name"],
                index_type=idx.get("index_type", ""),
                metric_type=idx.get("metric_type"),
                index_name=idx.get("index_name", ""),
                params=index_build_params(idx),
            )
    return index_params


def index_build_params(idx: dict[str, Any]) -> dict[str, Any]:
    """The build parameters of a described index (``M``, ``efConstruction``, ``nlist``...)."""
    params = dict(idx.get("params") or {})
    params.update({k: v for k, v in idx.items() if k not in _INDEX_STATE})
    return params


def create_again(client: Any, c: MilvusCollection, dim: int) -> None:
    """Drop ``c`` from the copy of its database (its aliases first) and create it again,
    empty, at ``dim`` (its embedding space is recorded when it is filled)."""
    if c.name in client.list_collections():
        for alias in client.list_aliases(c.name).get("aliases") or []:
            client.drop_alias(alias)
        client.drop_collection(c.name)
    create_collection(client, c, c.name, dim, None)


def by_partition(
    c: MilvusCollection, part: list[int], vectors: Iterable[Any]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Rows ``part`` of ``c`` with their new vectors, grouped by partition, in order.
    ``vectors``: one per row, as the writer's library takes them (milvus-lite's engine:
    lists of Python floats; pymilvus: float32 numpy rows, which it encodes itself)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    field = c.vector_field
    rows, partitions = c.rows, c.row_partitions
    for n, vector in zip(part, vectors, strict=True):
        record = rows[n].copy()
        record[field] = vector
        groups.setdefault(partitions[n], []).append(record)
    yield from groups.items()
