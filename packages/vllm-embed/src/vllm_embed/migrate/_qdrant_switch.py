"""Migrating one Qdrant collection through a `QdrantClient`, switched behind an alias.

Used for Qdrant server URLs (``http(s)://host:6333``) and written against the client API
only, so the same code runs on any transport (REST, gRPC, local mode; the tests hand it a
local-mode client). A Qdrant collection cannot be renamed and its vector size is fixed,
so the migration builds a new collection and moves the name readers use onto it:

1. ``NAME`` is resolved: an alias (the collection behind it is the source) or a
   collection. Every point is read (ids, payloads, all vectors); points without text
   stop the run with `MissingTextError` before anything is written.
2. The new collection ``NAME__vllm_embed_<id>`` (``<id>``: a hash of the source
   collection, the vector, the model and dimension, so a rerun finds it) is created with
   the source's configuration: vectors (the migrated one at the new size; the other
   dense and sparse vectors unchanged), distance, HNSW, optimizers, WAL, quantization,
   shards / replication, on-disk payload, collection metadata and payload indexes.
3. It is filled in batches of a few seconds of embedding; each batch is one upsert, so a
   killed run loses at most one batch: a rerun lists the ids already there and embeds the
   rest.
4. It is verified through qdrant-client: point count, every id, a sample of points
   (payload and the other vectors equal to the source's, the new vector at the new size
   and finite) and a query that must return a sampled point first. Only then is the
   embedding-space record (``SPACE_KEY``) written into its metadata: a collection with
   the record is complete.
5. The switch. ``NAME`` an alias: one ``update_collection_aliases`` call deletes it and
   creates it on the new collection (atomic on the server: readers see the old or the new
   collection, never neither); the old collection stays as the backup. ``NAME`` a
   collection: an alias cannot take a collection's name and a collection cannot be
   renamed, so the old collection must go. First its points are copied into
   ``NAME__vllm_embed_backup_<id>`` (same configuration, old vectors) and verified;
   then the old collection is deleted and, in one alias call, ``NAME`` is created on the
   new collection. Between those two calls (milliseconds) ``NAME`` does not resolve; a run
   killed right there finds its verified collection on the rerun and finishes the switch.
   Other aliases of the old collection are moved to the new one in the same alias call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, MissingTextError, StoreFormatError

from ._engine import NoProgress
from ._qdrant_collections import (
    SOURCE_KEY,
    UNNAMED,
    choose_vector,
    probe_sample,
    recorded_source,
    texts_of,
)
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix, check_rows

__all__ = [
    "QdrantCollectionReport",
    "QdrantSource",
    "estimate_seconds",
    "finish_pending_switch",
    "inspect_collection",
    "list_names",
    "migrate_qdrant_collection",
    "missing_text_error",
    "new_collection_name",
]

logger = logging.getLogger(__name__)

#: Collection metadata key of a collection this module builds: the name it is built for.
SWITCH_KEY = "vllm_embed_switch_for"
#: Collection metadata key of a backup collection: the collection it holds the points of.
BACKUP_KEY = "vllm_embed_backup_of"
_PAGE = 1000
_SAMPLE = 16
_FIRST_BATCH = 256
_MAX_BATCH = 8192
#: Seconds of embedding per upsert: what a killed run loses at most.
_BATCH_SECONDS = 3.0

Point = tuple[Any, dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class QdrantSource:
    """What a migration reads: the name readers use and the collection behind it."""

    name: str
    collection: str
    is_alias: bool
    vector_name: str
    text_field: str
    kind: str
    old_dim: int
    points: list[Point]
    texts: list[str | None]
    info: Any
    recorded: EmbeddingSpace | None
    #: ``--vector-name`` / ``--text-field`` as given or recorded by an earlier run.
    given: dict[str, str]

    def recorded_space(self) -> EmbeddingSpace | None:
        """The space a migration recorded (``doctor --store`` judges a source as a part)."""
        return self.recorded

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        """doctor's probe: a few (text, stored vector) pairs, as for a local directory."""
        stored = [p[2].get(self.vector_name) for p in self.points]
        return probe_sample(self.texts, stored, count)

    def describe(self) -> str:
        behind = f"alias of collection {self.collection!r}" if self.is_alias else "collection"
        named = f", vector {self.vector_name!r}" if self.vector_name else ""
        return (
            f"Qdrant {self.name!r} ({behind}; {self.kind}{named}); text from "
            f"{self.text_field}; {len(self.points)} points, dimension {self.old_dim}"
        )


@dataclass(frozen=True)
class QdrantCollectionReport:
    """What `migrate_qdrant_collection` did (printed by the CLI)."""

    name: str
    source: str
    new_collection: str
    backup: str
    switch: str
    points: int
    resumed: int
    old_dim: int
    new_dim: int
    seconds: float
    truncated: int
    unchanged: bool = False


# -- reading ----------------------------------------------------------------------------
def _aliases(client: Any) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def list_names(client: Any) -> list[str]:
    """Every collection and alias (``alias -> collection``) the client sees."""
    aliases = [f"{a} -> {c}" for a, c in sorted(_aliases(client).items())]
    return _collections(client) + aliases


def _collections(client: Any) -> list[str]:
    return sorted(c.name for c in client.get_collections().collections)


def _scroll(client: Any, collection: str, *, vectors: bool = True) -> list[Point]:
    points: list[Point] = []
    offset = None
    while True:
        page, offset = client.scroll(
            collection, limit=_PAGE, offset=offset, with_payload=vectors, with_vectors=vectors
        )
        for p in page:
            got = p.vector if isinstance(p.vector, dict) else {UNNAMED: p.vector}
            points.append((p.id, dict(p.payload or {}), dict(got or {})))
        if offset is None:
            return points


def _vectors_dict(params: Any) -> dict[str, Any]:
    """The collection's dense vectors as meta.json spells them (``{"size": ...}`` for one
    unnamed vector, else ``{name: {...}}``)."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return {k: v.model_dump(exclude_none=True) for k, v in params.items()}
    return dict(params.model_dump(exclude_none=True))


def inspect_collection(
    client: Any, name: str, *, text_field: str | None = None, vector_name: str | None = None
) -> QdrantSource:
    """Read ``name`` (a collection, or an alias of one) for migration."""
    aliases = _aliases(client)
    collections = _collections(client)
    if name in aliases:
        collection, is_alias = aliases[name], True
    elif name in collections:
        collection, is_alias = name, False
    else:
        raise StoreFormatError(
            f"Qdrant has no collection or alias {name!r}; collections: "
            f"{', '.join(collections) or 'none'}; aliases: {', '.join(sorted(aliases)) or 'none'}."
        )
    info = client.get_collection(collection)
    metadata = dict(info.config.metadata or {})
    config = {"vectors": _vectors_dict(info.config.params.vectors), "metadata": metadata}
    source = recorded_source(config)
    vector_name = vector_name if vector_name is not None else source.get("vector_name")
    text_field = text_field if text_field is not None else source.get("text_field")
    where = f"Qdrant {name!r}"
    vector = choose_vector(where, collection, config, vector_name)
    points = _scroll(client, collection)
    texts, kind, field = texts_of(where, collection, points, text_field)
    vectors = config["vectors"]
    params = vectors if vector == UNNAMED and "size" in vectors else vectors[vector]
    raw = metadata.get(SPACE_KEY)
    return QdrantSource(
        name=name,
        collection=collection,
        is_alias=is_alias,
        vector_name=vector,
        text_field=field,
        kind=kind,
        old_dim=int(params["size"]),
        points=points,
        texts=texts,
        info=info,
        recorded=EmbeddingSpace.from_json(raw) if isinstance(raw, str) else None,
        given={
            k: v for k, v in (("vector_name", vector), ("text_field", text_field)) if v is not None
        },
    )


def missing_text_error(source: QdrantSource) -> MissingTextError | None:
    """`MissingTextError` naming the points without text, or None."""
    missing = [
        str(p[0])
        for p, t in zip(source.points, source.texts, strict=True)
        if not isinstance(t, str) or not t.strip()
    ]
    if not missing:
        return None
    listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
    return MissingTextError(
        f"{len(missing)} of {len(source.points)} points of Qdrant {source.name!r} have no text "
        f"in {source.text_field} (ids: {listed}); nothing was sent or written. Name the payload "
        "key holding the text with --text-field, or give those points text.",
        ids=missing,
    )


# -- the new collection -----------------------------------------------------------------
def new_collection_name(
    source: QdrantSource, space: EmbeddingSpace, *, backup: bool = False
) -> str:
    """``NAME__vllm_embed_<id>`` (or ``NAME__vllm_embed_backup_<id>``), stable per run."""
    key = json.dumps(
        [
            source.name,
            source.collection,
            source.vector_name,
            source.text_field,
            space.model,
            space.dimension,
            space.document_instruction,
        ],
    )
    short = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{source.name}__vllm_embed_{'backup_' if backup else ''}{short}"


def _diff(cls: Any, value: Any) -> Any:
    """A ``*ConfigDiff`` holding what ``value`` (a ``*Config`` read back) sets."""
    if value is None:
        return None
    fields = value.model_dump(exclude_none=True)
    try:
        return cls(**{k: v for k, v in fields.items() if k in cls.model_fields})
    except ValueError as exc:  # pydantic's ValidationError
        logger.warning(
            "cannot copy %s of the collection (%s); the server default is used", cls.__name__, exc
        )
        return None


def _create_like(
    client: Any, source: QdrantSource, name: str, dim: int, metadata: dict[str, Any]
) -> None:
    """Create ``name`` with the source's configuration, the migrated vector at ``dim``."""
    from qdrant_client import models

    cfg = source.info.config
    vectors = _vectors_dict(cfg.params.vectors)
    if source.vector_name == UNNAMED and "size" in vectors:
        vectors_config: Any = models.VectorParams(**{**vectors, "size": dim})
    else:
        vectors_config = {
            k: models.VectorParams(**{**v, "size": dim if k == source.vector_name else v["size"]})
            for k, v in vectors.items()
        }
    client.create_collection(
        name,
        vectors_config=vectors_config,
        sparse_vectors_config=cfg.params.sparse_vectors,
        shard_number=cfg.params.shard_number,
        replication_factor=cfg.params.replication_factor,
        write_consistency_factor=cfg.params.write_consistency_factor,
        on_disk_payload=cfg.params.on_disk_payload,
        hnsw_config=_diff(models.HnswConfigDiff, cfg.hnsw_config),
        optimizers_config=_diff(models.OptimizersConfigDiff, cfg.optimizer_config),
        wal_config=_diff(models.WalConfigDiff, cfg.wal_config),
        quantization_config=cfg.quantization_config,
        metadata=metadata or None,
    )
    for field_name, index in (source.info.payload_schema or {}).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # local mode: indexes have no effect
            client.create_payload_index(
                name, field_name, field_schema=index.params or index.data_type
            )


def _present_ids(client: Any, collection: str) -> set[str]:
    return {str(p[0]) for p in _scroll(client, collection, vectors=False)}


def _point(source: QdrantSource, n: int, vector: Any) -> Any:
    from qdrant_client import models

    point_id, payload, vectors = source.points[n]
    if vector is None:  # the backup: the old vectors as they are
        value: Any = vectors.get(UNNAMED) if list(vectors) == [UNNAMED] else vectors
    elif source.vector_name == UNNAMED and list(vectors) == [UNNAMED]:
        value = vector
    else:
        value = {**vectors, source.vector_name: vector}
    return models.PointStruct(id=point_id, vector=value, payload=payload)


def _fill(
    client: Any,
    source: QdrantSource,
    new: str,
    embedder: Any,
    dim: int,
    progress: Any,
    batch: int,
) -> tuple[int, int]:
    """Embed and upsert the points not in ``new`` yet; (points resumed, inputs truncated)."""
    present = _present_ids(client, new)
    todo = [n for n, p in enumerate(source.points) if str(p[0]) not in present]
    resumed = len(source.points) - len(todo)
    progress.start(len(source.points), resumed)
    truncated = 0
    smallest = batch
    first = 0
    try:
        while first < len(todo):
            part = todo[first : first + batch]
            began = time.perf_counter()
            result = embedder.embed_with_info([str(source.texts[n]) for n in part], kind="document")
            block = np.asarray(result.vectors, dtype=np.float32)
            if block.shape != (len(part), dim):
                raise MigrationError(
                    f"the server returned vectors of shape {block.shape}, expected "
                    f"({len(part)}, {dim}); nothing of this batch was written"
                )
            check_rows(block, "the server's vectors", first)
            truncated += int(result.truncated)
            rows = block.tolist()
            client.upsert(
                new, points=[_point(source, n, row) for n, row in zip(part, rows, strict=True)]
            )
            progress.advance(len(part))
            first += len(part)
            took = max(time.perf_counter() - began, 1e-3)
            batch = max(smallest, min(_MAX_BATCH, int(len(part) * _BATCH_SECONDS / took)))
    finally:
        progress.close()
    return resumed, truncated


def _copy_points(client: Any, source: QdrantSource, backup: str) -> None:
    """The backup: every old point, with its old vectors (resumable by id)."""
    present = _present_ids(client, backup)
    todo = [n for n, p in enumerate(source.points) if str(p[0]) not in present]
    for first in range(0, len(todo), _MAX_BATCH // 4):
        part = todo[first : first + _MAX_BATCH // 4]
        client.upsert(backup, points=[_point(source, n, None) for n in part])


# -- checking ---------------------------------------------------------------------------
def _same(a: Any, b: Any, *, cosine: bool) -> bool:
    """Equal vectors; for a Cosine vector equal directions (Qdrant may normalise it on
    upsert, and local mode keeps what an older writer stored unnormalised)."""
    try:
        x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return bool(a == b)
    if x.dtype == object or y.dtype == object or x.shape != y.shape:
        return bool(a == b)
    if cosine:
        x = x / max(float(np.linalg.norm(x)), 1e-12)
        y = y / max(float(np.linalg.norm(y)), 1e-12)
    return bool(np.allclose(x, y, atol=1e-5))


def _cosine_vectors(source: QdrantSource) -> set[str]:
    vectors = _vectors_dict(source.info.config.params.vectors)
    if "size" in vectors:
        vectors = {UNNAMED: vectors}
    return {k for k, v in vectors.items() if str(v.get("distance", "")).lower().endswith("cosine")}


def _verify(client: Any, source: QdrantSource, collection: str, dim: int, *, backup: bool) -> None:
    """Count, every id, a sample of points and (new collection) a query, through the client."""
    where = f"Qdrant collection {collection!r}"
    count = int(client.count(collection, exact=True).count)
    if count != len(source.points):
        raise StoreFormatError(f"{where}: {count} points, expected {len(source.points)}")
    want = {str(p[0]): p for p in source.points}
    if _present_ids(client, collection) != set(want):
        raise StoreFormatError(f"{where}: the point ids differ from {source.collection!r}")
    sample = [str(p[0]) for p in source.points[:_SAMPLE]]
    if not sample:
        return
    got = client.retrieve(
        collection, ids=[want[i][0] for i in sample], with_payload=True, with_vectors=True
    )
    if len(got) != len(sample):
        raise StoreFormatError(f"{where}: sampled points are missing")
    cosine = _cosine_vectors(source)
    for point in got:
        pid = str(point.id)
        _, payload, vectors = want[pid]
        if (point.payload or {}) != payload:
            raise StoreFormatError(f"{where}: point {pid!r} changed its payload")
        have = point.vector if isinstance(point.vector, dict) else {UNNAMED: point.vector}
        for name, old in vectors.items():
            if (backup or name != source.vector_name) and not _same(
                have.get(name), old, cosine=name in cosine
            ):
                raise StoreFormatError(f"{where}: point {pid!r} changed its vector {name!r}")
        vector = np.asarray(have.get(source.vector_name), dtype=np.float32)
        if vector.shape != (dim,):
            raise StoreFormatError(
                f"{where}: point {pid!r} holds a vector of shape {vector.shape}, expected ({dim},)"
            )
        check_rows(vector[None, :], where, 0)
    if backup:
        return
    first = got[0]
    have = first.vector if isinstance(first.vector, dict) else {UNNAMED: first.vector}
    hits = client.query_points(
        collection, query=have[source.vector_name], using=source.vector_name or None, limit=1
    ).points
    if not hits or str(hits[0].id) != str(first.id):
        raise StoreFormatError(
            f"{where}: a query with point {first.id!r}'s vector does not return it first"
        )


def _recorded(client: Any, collection: str) -> EmbeddingSpace | None:
    raw = (client.get_collection(collection).config.metadata or {}).get(SPACE_KEY)
    return EmbeddingSpace.from_json(raw) if isinstance(raw, str) else None


# -- the switch -------------------------------------------------------------------------
def _alias_ops(name: str, new: str, also: Sequence[str], *, delete_first: bool) -> list[Any]:
    from qdrant_client import models

    ops: list[Any] = []
    for alias in ([name] if delete_first else []) + list(also):
        ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
    for alias in [name, *also]:
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=new, alias_name=alias)
            )
        )
    return ops


def finish_pending_switch(client: Any, name: str) -> str | None:
    """A run killed between dropping collection ``name`` and creating alias ``name``: the
    verified new collection built for ``name`` gets the alias now. Its name, or None."""
    if name in _collections(client) or name in _aliases(client):
        return None
    ready = []
    for collection in _collections(client):
        metadata = client.get_collection(collection).config.metadata or {}
        if metadata.get(SWITCH_KEY) == name and SPACE_KEY in metadata:
            ready.append(collection)
    if not ready:
        return None
    if len(ready) > 1:
        raise MigrationError(
            f"Qdrant name {name!r} resolves to nothing, and several verified migrated "
            f"collections were built for it ({', '.join(ready)}): create the alias {name!r} "
            "on the one to use (update_collection_aliases); nothing was changed."
        )
    client.update_collection_aliases(_alias_ops(name, ready[0], (), delete_first=False))
    return str(ready[0])


def migrate_qdrant_collection(
    client: Any,
    name: str,
    embedder: Any,
    space: EmbeddingSpace,
    *,
    text_field: str | None = None,
    vector_name: str | None = None,
    progress: Any = None,
    source: QdrantSource | None = None,
    batch: int = _FIRST_BATCH,
) -> QdrantCollectionReport:
    """Re-embed ``name`` (collection or alias) into a new collection and switch ``name`` to it.

    ``space`` is the new embedding space (model, dimension, instructions; recorded in the
    new collection's metadata). ``batch``: points in the first upsert (later ones are
    sized to a few seconds of embedding, never fewer). Resumable: run it again after a
    kill. See the module doc.
    """
    began = time.perf_counter()
    progress = progress or NoProgress()
    pending = finish_pending_switch(client, name)
    if pending is not None:
        metadata = client.get_collection(pending).config.metadata or {}
        count = int(client.count(pending, exact=True).count)
        backups = [c for c in _collections(client) if c.startswith(f"{name}__vllm_embed_backup_")]
        return QdrantCollectionReport(
            name,
            str(metadata.get(SWITCH_KEY)),
            pending,
            ", ".join(backups),
            "finished (resumed)",
            count,
            count,
            0,
            space.dimension,
            time.perf_counter() - began,
            0,
        )
    source = source or inspect_collection(
        client, name, text_field=text_field, vector_name=vector_name
    )
    if source.recorded is not None and not source.recorded.differences(space):
        n = len(source.points)
        return QdrantCollectionReport(
            name,
            source.collection,
            source.collection,
            "",
            "none",
            n,
            n,
            source.old_dim,
            space.dimension,
            time.perf_counter() - began,
            0,
            unchanged=True,
        )
    missing = missing_text_error(source)
    if missing is not None:
        raise missing
    dim = space.dimension
    new = new_collection_name(source, space)
    base = dict(source.info.config.metadata or {})
    for key in (SPACE_KEY, SWITCH_KEY, BACKUP_KEY):
        base.pop(key, None)
    base[SOURCE_KEY] = json.dumps(source.given, sort_keys=True)
    if new not in _collections(client):
        _create_like(client, source, new, dim, {**base, SWITCH_KEY: name})
    resumed, truncated = _fill(client, source, new, embedder, dim, progress, batch)
    _verify(client, source, new, dim, backup=False)
    client.update_collection(new, metadata={SPACE_KEY: space.to_json()})
    old_aliases = sorted(a for a, c in _aliases(client).items() if c == source.collection)
    others = [a for a in old_aliases if a != name]
    if source.is_alias:
        client.update_collection_aliases(_alias_ops(name, new, others, delete_first=True))
        backup, switch = source.collection, "alias moved (one atomic alias call)"
    else:
        backup = new_collection_name(source, space, backup=True)
        if backup not in _collections(client):
            metadata = {**dict(source.info.config.metadata or {}), BACKUP_KEY: name}
            _create_like(client, source, backup, source.old_dim, metadata)
        _copy_points(client, source, backup)
        _verify(client, source, backup, source.old_dim, backup=True)
        client.delete_collection(name)
        client.update_collection_aliases(_alias_ops(name, new, others, delete_first=False))
        switch = "collection replaced by an alias of the same name"
    return QdrantCollectionReport(
        name=name,
        source=source.collection,
        new_collection=new,
        backup=backup,
        switch=switch,
        points=len(source.points),
        resumed=resumed,
        old_dim=source.old_dim,
        new_dim=dim,
        seconds=time.perf_counter() - began,
        truncated=truncated,
    )


def estimate_seconds(embedder: Any, source: QdrantSource) -> float:
    """Seconds to embed every point, from a probe of up to 64 texts."""
    probe = [t for t in source.texts if isinstance(t, str) and t.strip()][:64]
    if not probe:
        return 0.0
    began = time.perf_counter()
    embedder.embed_with_info(probe, kind="document")
    rate = len(probe) / max(time.perf_counter() - began, 1e-3)
    return math.ceil(len(source.points) / rate)
