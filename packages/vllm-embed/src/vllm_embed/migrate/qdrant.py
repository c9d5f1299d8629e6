"""Qdrant local-mode directories (``QdrantClient(path=...)``).

Local mode is what crewAI's knowledge store and many scripts use: the directory holds
``meta.json`` (every collection's configuration, aliases, text indexes) and
``collection/<name>/storage.sqlite`` (the points, pickled). The dimension is fixed per
vector of a collection, so nothing is patched: everything goes through qdrant-client.

Collections written by LangChain's ``QdrantVectorStore`` (text in the ``page_content``
payload, metadata under ``metadata``, the unnamed vector), LlamaIndex's
``QdrantVectorStore`` (node JSON in ``_node_content``, the dense vector named
``text-dense``; the text is what LlamaIndex embeds, ``MetadataMode.EMBED``) and plain
qdrant-client (``--text-field``: the payload key holding the text).

- Reading: the directory is copied to a scratch directory and only the copy is opened
  (opening takes the directory's lock and may write ``meta.json``). One collection is
  migrated (``--collection`` when there are several); the others stay as they are.
  With several dense vectors per point, ``--vector-name`` picks the one to re-embed
  (LlamaIndex's ``text-dense`` by default); the other vectors (dense and sparse) are
  kept unchanged.
- Writing (`QdrantStore.write`): the directory is copied to the work directory; in the
  copy the collection is deleted and created again with the same vector parameters
  (distance, per-vector HNSW / quantization / on-disk / datatype / multivector config,
  sparse vectors) but the new size, the same collection metadata plus the
  embedding-space record (``SPACE_KEY``; plus ``SOURCE_KEY``, the ``--vector-name`` /
  ``--text-field`` given, so later runs and ``doctor --store`` need neither) and the
  same text indexes, then filled with
  the same ids and payloads in batches. Collection-level HNSW and quantization
  settings are not stored by local mode at all, so there is nothing else to keep.
- Verifying: the copy is reopened with qdrant-client: count, ids, payloads, the kept
  vectors, the new size and finite values, and a query that must return the queried
  point first.
- Installing: the directories are exchanged atomically (as for Chroma) and the
  original is kept as ``NAME.d<old dim>.bak``.

Resumable: vectors are journaled by the engine; filling the copy is journaled beside it
(``output.tmp.progress.json``) and goes on from the collection's ``count()``.

Aliases: ``--collection`` may name an alias of the local store (its collection is
migrated); the collection's aliases point at the migrated collection again in the copy
(deleting a collection drops its aliases) and are checked before the swap.

A Qdrant server URL (``http://host:6333``) is migrated collection by collection behind an
alias instead (`_qdrant_switch`; the command line's ``cli/_qdrant.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._copy_progress import CopyProgress
from ._dirstore import swap_directory
from ._jsonio import fsync_file
from ._qdrant_collections import (
    SOURCE_KEY,
    UNNAMED,
    choose_vector,
    probe_sample,
    recorded_source,
    texts_of,
)
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix, Rows, Store, check_rows

__all__ = [
    "QdrantStore",
    "is_qdrant_dir",
    "read_qdrant",
]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
COLLECTIONS_DIR = "collection"
#: Points per scroll page. Local mode sorts every id and walks up to the offset on each
#: page, so a scroll costs (points / page) x points: 1,000-point pages made reading
#: 200,000 points quadratic; 10,000 keeps it to 20 passes (~90 MB of vectors per page).
_PAGE = 10_000
_BATCH = 1024


def is_qdrant_dir(path: Path) -> bool:
    """A Qdrant local-mode directory: ``meta.json`` with a ``collections`` table beside a
    ``collection/`` directory (or no collection yet)."""
    meta = path / META_FILE
    if not (path.is_dir() and meta.is_file()):
        return False
    if (path / COLLECTIONS_DIR).is_dir():
        return True
    try:
        document = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "collections" in document and "aliases" in document


def _qdrant() -> Any:
    try:
        import qdrant_client
    except ImportError as exc:
        raise MigrationError(
            "this is a Qdrant local-mode directory; reading and writing it needs the "
            "qdrant-client package: pip install qdrant-client"
        ) from exc
    return qdrant_client


@contextlib.contextmanager
def _client(path: Path) -> Iterator[Any]:
    """A local-mode QdrantClient on ``path``, always closed (which releases its lock)."""
    client = _open(path)
    try:
        yield client
    finally:
        client.close()


def _open(path: Path) -> Any:
    """A local-mode QdrantClient on ``path`` (the caller closes it)."""
    qdrant_client = _qdrant()
    with warnings.catch_warnings():
        # local mode's notes (payload indexes have no effect, large collections)
        warnings.simplefilter("ignore", UserWarning)
        return qdrant_client.QdrantClient(path=str(path))


def _check_unlocked(path: Path) -> None:
    """Refuse a directory another QdrantClient holds open: the swap would pull the files
    from under it (and its later writes would go to the backup)."""
    lock = path / ".lock"
    if not lock.is_file():
        return
    try:
        import portalocker
    except ImportError:
        return
    with open(lock, "r+") as f:
        try:
            portalocker.lock(
                f, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
        except portalocker.exceptions.LockException as exc:
            raise MigrationError(
                f"{path} is open in a QdrantClient (another process holds its lock). Close "
                "that application first, then run the same command again; nothing was written."
            ) from exc
        portalocker.unlock(f)


def _no_sync_per_point(client: Any, name: str) -> Callable[[], None]:
    """Local mode commits (and so fsyncs) every point on its own: 50 points/s on a busy
    disk, 20x slower than the rest of its work. While the work copy is filled that buys
    nothing (every file of the copy is fsynced once it is complete, before it is verified
    and swapped in; a killed process loses no committed point either way), so the copy's
    point table is written with ``PRAGMA synchronous=OFF`` in ``journal_mode=WAL`` (a
    commit appends to the log instead of creating and deleting a rollback journal: 1.5x
    faster at 5,000 points; a killed process still loses no committed point). Returns the
    call that puts the file's own journal mode back (checkpointing the log into the file)
    once the copy is filled. Private attributes of qdrant-client's local mode: when they
    are not there, points are written at its speed.
    """
    collection = getattr(getattr(client, "_client", None), "collections", {}).get(name)
    connection = getattr(getattr(collection, "storage", None), "storage", None)
    execute = getattr(connection, "execute", None)
    if not callable(execute):
        return lambda: None
    execute("PRAGMA synchronous=OFF")
    mode = str(execute("PRAGMA journal_mode").fetchone()[0])
    if mode.lower() == "wal":
        return lambda: None
    execute("PRAGMA journal_mode=WAL")
    return lambda: execute(f"PRAGMA journal_mode={mode}")


def _point_id(value: Any) -> str:
    return str(value)


class _DamagedCopy(Exception):
    """The work copy a killed run left cannot be opened (it is made again)."""


class QdrantStore(Store):
    """One collection of a Qdrant local-mode directory, read for migration."""

    def __init__(
        self,
        path: Path,
        collection: str,
        vector_name: str,
        config: dict[str, Any],
        text_indexes: dict[str, Any],
        points: list[tuple[Any, dict[str, Any], dict[str, Any]]],
        texts: list[str | None],
        kind: str,
        text_field: str,
        sample: tuple[list[str], F32Matrix] | None,
        source: dict[str, str] | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        self.path = self.target = path
        self.aliases = sorted(aliases)  # the aliases of the collection (kept pointing at it)
        self._source = source or {}  # what --vector-name / --text-field said
        self.collection = collection
        self.vector_name = vector_name
        self._config = config  # the collection's CreateCollection dict (meta.json)
        self._text_indexes = text_indexes
        self._points = points  # (id, payload, the other vectors)
        self._sample = sample
        self._space: EmbeddingSpace | None = None
        self._checked: Path | None = None  # the copy `check_with_library` checked in full
        self.ids = [_point_id(p[0]) for p in points]
        self.texts = texts
        self.text_field = text_field
        named = f", vector {vector_name!r}" if vector_name else ""
        self.format = f"Qdrant local ({kind}; collection {collection}{named})"
        self.old_dim = int(self._params()["size"])

    # -- configuration -------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        vectors = self._config.get("vectors") or {}
        if self.vector_name == UNNAMED and "size" in vectors:
            return dict(vectors)
        return dict(vectors[self.vector_name])

    def _metadata(self) -> dict[str, Any]:
        return dict(self._config.get("metadata") or {})

    # -- files ---------------------------------------------------------------------------
    def source_files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.name != ".lock")

    def backup_path(self) -> Path:
        """``qdrant_db`` -> ``qdrant_db.d384.bak`` (first free name)."""
        candidate = self.path.with_name(f"{self.path.name}.d{self.old_dim}.bak")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.d{self.old_dim}.bak{n}")
            n += 1
        return candidate

    # -- the embedding space -------------------------------------------------------------
    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`: the record goes into the collection's metadata."""
        self._space = space

    def recorded_space(self) -> EmbeddingSpace | None:
        value = self._metadata().get(SPACE_KEY)
        return EmbeddingSpace.from_json(value) if isinstance(value, str) else None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self._sample is None:
            return None
        texts, matrix = self._sample
        return texts[:count], matrix[:count]

    # -- writing -------------------------------------------------------------------------
    def _new_vectors_config(self, dim: int) -> Any:
        from qdrant_client import models

        vectors = self._config.get("vectors") or {}
        if self.vector_name == UNNAMED and "size" in vectors:
            return models.VectorParams(**{**vectors, "size": dim})
        return {
            name: models.VectorParams(
                **{**params, "size": dim if name == self.vector_name else params["size"]}
            )
            for name, params in vectors.items()
        }

    def _create_again(self, client: Any, dim: int) -> None:
        from qdrant_client import models

        metadata = self._metadata()
        if self._space is not None:
            metadata[SPACE_KEY] = self._space.to_json()
        if self._source:
            metadata[SOURCE_KEY] = json.dumps(self._source, sort_keys=True)
        sparse = self._config.get("sparse_vectors")
        client.delete_collection(self.collection)
        client.create_collection(
            self.collection,
            vectors_config=self._new_vectors_config(dim),
            sparse_vectors_config=(
                {k: models.SparseVectorParams(**v) for k, v in sparse.items()} if sparse else None
            ),
            metadata=metadata or None,
        )
        for field_name, params in self._text_indexes.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                client.create_payload_index(
                    self.collection, field_name, field_schema=models.TextIndexParams(**params)
                )
        # deleting the collection dropped its aliases: they point at the new one again
        if self.aliases:
            client.update_collection_aliases(
                [
                    models.CreateAliasOperation(
                        create_alias=models.CreateAlias(
                            collection_name=self.collection, alias_name=alias
                        )
                    )
                    for alias in self.aliases
                ]
            )

    def _not_copied(self, directory: str, names: list[str]) -> set[str]:
        """What the work copy leaves out: the lock, and the migrated collection's points
        (deleted in the copy anyway; local mode opens a collection whose folder is missing
        as an empty one, so the copy opens without loading every old point)."""
        skip = {".lock"} & set(names)
        if Path(directory) == self.path / COLLECTIONS_DIR and self.collection in names:
            skip.add(self.collection)
        return skip

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """Fill a copy of the directory; resumable per batch (see `_copy_progress.CopyProgress`)."""
        progress = CopyProgress(out)
        if not progress.copied():
            shutil.rmtree(out, ignore_errors=True)
            progress.reset()
            shutil.copytree(self.path, out, symlinks=True, ignore=self._not_copied)
            progress.mark_copied()
        matrix = (
            np.memmap(rows.path, dtype="<f4", mode="r", shape=(rows.count, rows.dim))
            if rows.count
            else np.empty((0, rows.dim), dtype=np.float32)
        )
        try:
            self._fill(out, keep, matrix, rows.dim, progress)
        except _DamagedCopy as exc:
            # the copy a killed run left cannot be opened (a power loss while it was
            # filled without fsync): start the copy again from the original
            logger.warning("the half-filled copy %s cannot be opened (%s); copying again", out, exc)
            progress.reset()
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(self.path, out, symlinks=True, ignore=self._not_copied)
            progress.mark_copied()
            self._fill(out, keep, matrix, rows.dim, progress)
        del matrix
        for file in out.rglob("*"):
            if file.is_file():
                fsync_file(file)

    def _fill(
        self, out: Path, keep: Sequence[int], matrix: Any, dim: int, progress: CopyProgress
    ) -> None:
        from qdrant_client import models

        resuming = progress.created(self.collection)
        try:
            client = _open(out)
        except Exception as exc:
            if not resuming:
                raise
            raise _DamagedCopy(str(exc)) from exc
        try:
            if resuming:
                try:
                    done = int(client.count(self.collection, exact=True).count)
                except Exception as exc:
                    raise _DamagedCopy(str(exc)) from exc
            else:
                self._create_again(client, dim)
                progress.mark_created(self.collection)
                done = 0
            restore = _no_sync_per_point(client, self.collection)
            for first in range(done, len(keep), _BATCH):
                part = keep[first : first + _BATCH]
                block = np.asarray(matrix[first : first + len(part)])
                points = []
                for n, vector in zip(part, block, strict=True):
                    point_id, payload, others = self._points[n]
                    if self.vector_name == UNNAMED and not others:
                        value: Any = vector.tolist()
                    else:
                        value = {**others, self.vector_name: vector.tolist()}
                    points.append(models.PointStruct(id=point_id, vector=value, payload=payload))
                client.upsert(self.collection, points=points)
            restore()
        finally:
            client.close()

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        if self._checked == path:  # `check_with_library` ran these checks in its open
            return
        with _client(path) as client:
            self._check(client, path, ids, dim)

    def _check(self, client: Any, path: Path, ids: Sequence[str], dim: int) -> None:
        """Everything `check_written` checks, through an open client."""
        where = f"written Qdrant directory {path}"
        want = {_point_id(p[0]): p for p in self._points}
        names = [c.name for c in client.get_collections().collections]
        if self.collection not in names:
            raise StoreFormatError(f"{where}: collection {self.collection!r} is missing")
        aliases = sorted(
            a.alias_name for a in client.get_collection_aliases(self.collection).aliases
        )
        if aliases != self.aliases:
            raise StoreFormatError(
                f"{where}: collection {self.collection!r} has aliases {aliases}, expected "
                f"{self.aliases}"
            )
        info = client.get_collection(self.collection)
        metadata = dict(getattr(info.config, "metadata", None) or {})
        ours = (SPACE_KEY, SOURCE_KEY)
        metadata = {k: v for k, v in metadata.items() if k not in ours}
        if metadata != {k: v for k, v in self._metadata().items() if k not in ours}:
            raise StoreFormatError(f"{where}: the collection metadata differs")
        count = int(client.count(self.collection, exact=True).count)
        if count != len(ids):
            raise StoreFormatError(f"{where}: {count} points, expected {len(ids)}")
        seen: list[str] = []
        offset = None
        while True:
            page, offset = client.scroll(
                self.collection,
                limit=_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for point in page:
                pid = _point_id(point.id)
                if pid not in want:
                    raise StoreFormatError(f"{where}: unexpected point {pid!r}")
                _, payload, others = want[pid]
                if (point.payload or {}) != (payload or {}):
                    raise StoreFormatError(f"{where}: point {pid!r} changed its payload")
                vectors = (
                    point.vector if isinstance(point.vector, dict) else {UNNAMED: point.vector}
                )
                vector = np.asarray(vectors.get(self.vector_name), dtype=np.float32)
                if vector.shape != (dim,):
                    raise StoreFormatError(
                        f"{where}: point {pid!r} holds a vector of shape {vector.shape}, "
                        f"expected ({dim},)"
                    )
                check_rows(vector[None, :], where, len(seen))
                for name in others:
                    if name not in vectors:
                        raise StoreFormatError(f"{where}: point {pid!r} lost vector {name!r}")
                seen.append(pid)
            if offset is None:
                break
        if sorted(seen) != sorted(ids):
            raise StoreFormatError(f"{where}: the point ids differ from the source")

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """`check_written`'s checks, then a nearest-neighbour query must return the queried
        point first. Local mode loads every point on opening: one open, not two."""
        with _client(path) as client:
            self._check(client, path, ids, dim)
            self._checked = path
            if not ids:
                return "qdrant-client"
            first = next(p for p in self._points if _point_id(p[0]) == ids[0])
            got = client.retrieve(self.collection, ids=[first[0]], with_vectors=True)
            vectors = got[0].vector if isinstance(got[0].vector, dict) else {UNNAMED: got[0].vector}
            using = self.vector_name or None
            hits = client.query_points(
                self.collection, query=vectors[self.vector_name], using=using, limit=1
            ).points
            if not hits or _point_id(hits[0].id) != ids[0]:
                raise StoreFormatError(
                    f"qdrant-client cannot query the migrated collection {self.collection!r} in "
                    f"{path} consistently (a point is not its own nearest neighbour)"
                )
        return "qdrant-client"

    # -- installing ------------------------------------------------------------------------
    installs_itself = True

    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the verified directory ``new`` at ``target``; the original becomes the backup."""
        progress = new.with_name(new.name + ".progress.json")
        if in_place:
            _check_unlocked(target)
        backup = swap_directory(new, target, self.backup_path() if in_place else None)
        progress.unlink(missing_ok=True)
        return backup


# -- reading ----------------------------------------------------------------------------
def read_qdrant(
    path: Path,
    *,
    collection: str | None = None,
    text_field: str | None = None,
    vector_name: str | None = None,
) -> QdrantStore:
    """Read one collection of a Qdrant local-mode directory (from a scratch copy)."""
    if not is_qdrant_dir(path):
        raise StoreFormatError(f"{path} is not a Qdrant local-mode directory (no {META_FILE}).")
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        collections = dict(meta["collections"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreFormatError(
            f"{path / META_FILE} is not a readable Qdrant meta.json ({exc}); the directory is "
            "damaged or half-written. Nothing was written; restore it from a backup."
        ) from exc
    aliases = {str(k): str(v) for k, v in dict(meta.get("aliases") or {}).items()}
    if collection in aliases:  # a collection addressed through its alias
        collection = aliases[collection]
    name = _choose(path, sorted(collections), collection)
    _check_unlocked(path)
    _qdrant()
    config = dict(collections[name])
    source = recorded_source(config)
    vector_name = vector_name if vector_name is not None else source.get("vector_name")
    text_field = text_field if text_field is not None else source.get("text_field")
    vector = choose_vector(path, name, config, vector_name)
    with tempfile.TemporaryDirectory(prefix=".vllm-embed-read-", dir=path.parent) as scratch:
        copy = Path(scratch) / path.name
        shutil.copytree(path, copy, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
        try:
            with _client(copy) as client:
                points, stored = _scroll(client, name, vector, config)
        except (StoreFormatError, MigrationError):
            raise
        except Exception as exc:
            raise StoreFormatError(
                f"{path}: qdrant-client cannot read collection {name!r} ({type(exc).__name__}: "
                f"{exc}). The directory may be damaged or half-written; nothing was written."
            ) from exc
    texts, kind, field = texts_of(path, name, points, text_field)
    given = {"vector_name": vector_name, "text_field": text_field}
    sample = probe_sample(texts, stored)
    indexes = dict((meta.get("text_indexes") or {}).get(name) or {})
    return QdrantStore(
        path,
        name,
        vector,
        config,
        indexes,
        points,
        texts,
        kind,
        field,
        sample,
        {k: v for k, v in given.items() if v is not None},
        [alias for alias, target in aliases.items() if target == name],
    )


def _choose(path: Path, names: list[str], wanted: str | None) -> str:
    if not names:
        raise StoreFormatError(f"{path}: the Qdrant directory holds no collection.")
    if wanted is not None:
        if wanted not in names:
            raise StoreFormatError(
                f"{path}: no collection {wanted!r}; collections: {', '.join(names)}."
            )
        return wanted
    if len(names) > 1:
        raise StoreFormatError(
            f"{path} holds {len(names)} collections ({', '.join(names)}): pick the one to "
            "migrate with --collection NAME (the others are kept as they are)."
        )
    return names[0]


def _scroll(
    client: Any, name: str, vector: str, config: dict[str, Any]
) -> tuple[list[tuple[Any, dict[str, Any], dict[str, Any]]], list[Any]]:
    """(id, payload, the vectors kept) of every point, and the re-embedded vector of the
    first page's points (for `probe_sample`; None after). The re-embedded vector is not kept for
    the rest: at 200,000 points x 384 Python floats that alone was ~2.5 GB."""
    dense = config.get("vectors") or {}
    names = ([] if "size" in dense else list(dense)) + list(config.get("sparse_vectors") or {})
    others: Any = [n for n in names if n != vector] or False
    points: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    stored: list[Any] = []
    offset = None
    first = True
    while True:
        page, offset = client.scroll(
            name,
            limit=_PAGE,
            offset=offset,
            with_payload=True,
            with_vectors=True if first else others,
        )
        for p in page:
            if p.vector is None:  # no vector asked for
                vectors: dict[str, Any] = {}
            else:
                vectors = p.vector if isinstance(p.vector, dict) else {UNNAMED: p.vector}
            stored.append(vectors.get(vector) if first else None)
            kept = {k: v for k, v in vectors.items() if k != vector}
            points.append((p.id, dict(p.payload or {}), kept))
        first = False
        if offset is None:
            return points, stored
