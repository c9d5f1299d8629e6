"""Chroma persistent directories (``chromadb.PersistentClient(path=...)``).

Written by plain chromadb, LangChain's ``Chroma(persist_directory=...)`` (default
collection ``langchain``) and LlamaIndex's ``ChromaVectorStore`` (node JSON in the
metadata key ``_node_content``, the node text in the document). The directory holds
``chroma.sqlite3`` plus one directory of HNSW files per vector segment; the dimension
is fixed per collection, so the files are never patched: everything goes through
chromadb's own API.

- Reading: the directory is copied to a scratch directory first and only the copy is
  opened (opening a persistent directory may write to it); ids, documents, metadatas,
  collection metadata and configuration are read a page at a time.
- Text: the document. For LlamaIndex nodes, what LlamaIndex embeds: the node rebuilt
  from ``_node_content`` + the document, ``get_content(MetadataMode.EMBED)``.
- Writing (`ChromaStore.write`): the original directory is copied to the work
  directory; in the copy every migrated collection is deleted and created again with
  the same name, metadata (plus the embedding-space record under ``SPACE_KEY``) and
  configuration (HNSW / SPANN parameters and the embedding-function record, which
  chromadb 1.x refuses to see change; a record of vllm-embed-chroma's function,
  ``"vllm-embed"``, is rewritten to describe the new vectors: model, dimension,
  instructions, and ``dimensions`` when one was asked for), then filled in batches of at most
  ``client.get_max_batch_size()`` with the same ids, documents and metadatas.
- Verifying: the copy is reopened with chromadb: counts, ids in order, documents,
  metadatas, configuration, dimension, and a query per collection that must return
  its own record first.
- Installing (`ChromaStore.install`): the new directory and the original are
  exchanged atomically (``renameat2(RENAME_EXCHANGE)`` where the kernel has it, else
  two renames), and the original ends up as ``NAME.d<old dim>.bak``.

Every tenant and database of the directory is read (``chroma.sqlite3`` lists them;
each is opened with ``PersistentClient(path, tenant=..., database=...)``). A collection
outside the default tenant and database is named ``TENANT/DATABASE/NAME`` in messages
and in ``--collection``; a plain name picks the collection of that name when it is
unique in the directory.

The embedding itself is the engine's: vectors are journaled in the work directory, so
a killed run resumes without embedding anything twice. Filling the copy is resumable
too: the copy and the collections already created in it are journaled beside it
(``output.tmp.progress.json``), and a collection goes on from its ``count()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._dirstore import swap_directory
from ._jsonio import fsync_file
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix, Rows, Store, check_rows
from .llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text

__all__ = ["CHROMA_FILE", "ChromaStore", "is_chroma_dir", "read_chroma"]

logger = logging.getLogger(__name__)

CHROMA_FILE = "chroma.sqlite3"
#: The registry name of vllm-embed-chroma's embedding function, whose record describes
#: the vectors (so a migration rewrites it).
VLLM_EMBED_FUNCTION = "vllm-embed"
#: Stored vectors kept from reading, for ``doctor --store``'s probe.
SAMPLE_ROWS = 16
_PAGE = 1000
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"


def is_chroma_dir(path: Path) -> bool:
    """A directory holding ``chroma.sqlite3`` (a Chroma persistent directory)."""
    return path.is_dir() and (path / CHROMA_FILE).is_file()


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError as exc:
        raise MigrationError(
            "this is a Chroma persistent directory; reading and writing it needs the chromadb "
            "package (the same major version that wrote it): pip install chromadb"
        ) from exc
    return chromadb


@contextlib.contextmanager
def _client(
    path: Path, tenant: str = DEFAULT_TENANT, database: str = DEFAULT_DATABASE
) -> Iterator[Any]:
    """A PersistentClient on ``path`` (one tenant and database) with chromadb's default
    settings, always closed.

    Default settings, as LangChain and LlamaIndex use: chromadb refuses a second client
    for one path with other settings. Closing releases the path's cached system, so a
    later client for the same path (after a directory swap) opens the new files.
    """
    chromadb = _chromadb()
    with warnings.catch_warnings():
        # chromadb's notes about legacy / unbuildable embedding-function records: the
        # migration carries those records over and never embeds through them
        warnings.filterwarnings("ignore", module=r"chromadb(\..*)?$")
        client = chromadb.PersistentClient(path=str(path), tenant=tenant, database=database)
        try:
            yield client
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()
            else:  # chromadb < 1.1: drop the cached system by hand
                from chromadb.api.shared_system_client import SharedSystemClient

                SharedSystemClient.clear_system_cache()


def _still_open(path: Path) -> bool:
    """True when this process still holds a chromadb client on ``path`` (it would keep
    reading the files that are now the backup)."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:
        return False
    systems = getattr(SharedSystemClient, "_identifier_to_system", {})
    return str(path) in systems


def _chroma_error(path: Path, exc: Exception) -> StoreFormatError:
    return StoreFormatError(
        f"{path}: chromadb cannot open this Chroma directory ({type(exc).__name__}: {exc}). "
        "It may be damaged or written by another chromadb major version; nothing was written."
    )


@dataclass
class _Collection:
    """One collection as read: everything needed to create it again."""

    name: str
    metadata: dict[str, Any] | None
    configuration: dict[str, Any]
    dimension: int | None
    ids: list[str] = field(default_factory=list)
    documents: list[str | None] = field(default_factory=list)
    metadatas: list[dict[str, Any] | None] = field(default_factory=list)
    uris: list[str | None] = field(default_factory=list)
    start: int = 0  # index of the first record in the store's flat lists
    llamaindex: bool = False
    #: (texts, stored vectors) of a few records, for ``doctor --store``'s probe.
    sample: tuple[list[str], F32Matrix] | None = None
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE

    @property
    def group(self) -> tuple[str, str]:
        """(tenant, database): the client this collection is opened with."""
        return (self.tenant, self.database)

    @property
    def label(self) -> str:
        """The name in messages and ``--collection``: ``NAME`` in the default tenant and
        database, else ``TENANT/DATABASE/NAME``."""
        return _label(self.tenant, self.database, self.name)


def _label(tenant: str, database: str, name: str) -> str:
    if (tenant, database) == (DEFAULT_TENANT, DEFAULT_DATABASE):
        return name
    return f"{tenant}/{database}/{name}"


@dataclass(frozen=True)
class ChromaCollectionView:
    """One collection of a `ChromaStore` as ``doctor --store`` judges it."""

    #: What ``--collection`` takes to pick it (see `ChromaStore.collections`).
    selector: str
    _metadata: dict[str, Any] | None
    _sample: tuple[list[str], F32Matrix] | None

    def recorded_space(self) -> EmbeddingSpace | None:
        value = (self._metadata or {}).get(SPACE_KEY)
        return EmbeddingSpace.from_json(value) if isinstance(value, str) else None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self._sample is None:
            return None
        texts, matrix = self._sample
        return texts[:count], matrix[:count]


class ChromaStore(Store):
    """A Chroma persistent directory read for migration (every collection, or one)."""

    def __init__(
        self,
        path: Path,
        collections: list[_Collection],
        untouched: dict[tuple[str, str, str], int],
        sample: tuple[list[str], F32Matrix] | None,
    ) -> None:
        self.path = self.target = path
        self._collections = collections
        self._untouched = untouched  # other collections: (tenant, database, name) -> count
        self._sample = sample
        self._space: EmbeddingSpace | None = None
        llama = any(c.llamaindex for c in collections)
        kind = "LlamaIndex ChromaVectorStore" if llama else None
        if kind is None and [c.name for c in collections] == ["langchain"]:
            kind = "LangChain Chroma"
        names = ", ".join(c.label for c in collections)
        self.format = f"Chroma ({kind}; collection {names})" if kind else f"Chroma ({names})"
        self.text_field = (
            "document (+ LlamaIndex node metadata, as LlamaIndex embeds it)"
            if llama
            else "document"
        )
        dims = {c.dimension for c in collections if c.dimension is not None}
        self.old_dim = min(dims) if dims else None
        prefix = len(collections) > 1
        self.ids = []
        self.texts = []
        for c in collections:
            self.ids.extend(f"{c.label}/{i}" if prefix else i for i in c.ids)
            if c.llamaindex:
                self.texts.extend(
                    node_embed_text(m, d) if isinstance(d, str) else None
                    for d, m in zip(c.documents, c.metadatas, strict=True)
                )
            else:
                self.texts.extend(c.documents)

    def collection_views(self) -> list[ChromaCollectionView]:
        """Each collection read, with its own recorded space and probe sample (for
        ``doctor --store``, which judges the collections one by one from one read)."""
        return [
            ChromaCollectionView(selector, c.metadata, c.sample)
            for selector, c in zip(self.collections, self._collections, strict=True)
        ]

    @property
    def collections(self) -> list[str]:
        """The migrated collections, as ``--collection`` picks each of them: the label, or
        ``TENANT/DATABASE/NAME`` when the plain name is also used in another tenant or
        database of the directory."""
        names = [c.name for c in self._collections] + [k[2] for k in self._untouched]
        return [
            c.label
            if "/" in c.label or names.count(c.name) == 1
            else "/".join((c.tenant, c.database, c.name))
            for c in self._collections
        ]

    # -- files ---------------------------------------------------------------------------
    def source_files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    def backup_path(self) -> Path:
        """``chroma_db`` -> ``chroma_db.d384.bak`` (first free name)."""
        dim = f"d{self.old_dim}" if self.old_dim is not None else "dunknown"
        candidate = self.path.with_name(f"{self.path.name}.{dim}.bak")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.{dim}.bak{n}")
            n += 1
        return candidate

    def space_anchor(self, target: Path) -> Path:
        return target

    def stores_unit_vectors(self) -> bool:
        return False

    # -- the embedding space -------------------------------------------------------------
    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`: the record goes into each migrated collection's metadata."""
        self._space = space

    def recorded_space(self) -> EmbeddingSpace | None:
        for c in self._collections:
            value = (c.metadata or {}).get(SPACE_KEY)
            if isinstance(value, str):
                return EmbeddingSpace.from_json(value)
        return None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self._sample is None:
            return None
        texts, matrix = self._sample
        return texts[:count], matrix[:count]

    # -- writing -------------------------------------------------------------------------
    #: Most records per ``collection.add`` (chromadb's own limit can only lower it).
    batch_cap = 4096

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """Fill a copy of the directory; resumable per batch (see `_Progress`)."""
        progress = _Progress(out)
        if not progress.copied():  # no copy yet, or one a killed run left half made
            shutil.rmtree(out, ignore_errors=True)
            progress.reset()
            shutil.copytree(self.path, out, symlinks=True)
            progress.mark_copied()
        kept = set(keep)
        matrix = (
            np.memmap(rows.path, dtype="<f4", mode="r", shape=(rows.count, rows.dim))
            if rows.count
            else np.empty((0, rows.dim), dtype=np.float32)
        )
        row = 0  # the first row of the current collection in `rows`
        for group, collections in _by_group(self._collections):
            with _client(out, *group) as client:
                batch = max(1, min(int(client.get_max_batch_size()), self.batch_cap))
                for c in collections:
                    mine = [i for i in range(len(c.ids)) if c.start + i in kept]
                    if progress.created(c.label):  # a killed run made it: go on from there
                        collection = client.get_collection(c.name, embedding_function=None)
                        done = int(collection.count())
                    else:
                        collection = self._create_again(client, c)
                        progress.mark_created(c.label)
                        done = 0
                    for first in range(done, len(mine), batch):
                        part = mine[first : first + batch]
                        vectors = np.asarray(matrix[row + first : row + first + len(part)])
                        uris = [c.uris[i] for i in part]
                        collection.add(
                            ids=[c.ids[i] for i in part],
                            embeddings=vectors,
                            documents=[c.documents[i] for i in part],
                            metadatas=[c.metadatas[i] for i in part],
                            **({"uris": uris} if any(u is not None for u in uris) else {}),
                        )
                    row += len(mine)
        del matrix
        for file in out.rglob("*"):
            if file.is_file():
                fsync_file(file)

    def _create_again(self, client: Any, c: _Collection) -> Any:
        """Delete ``c`` in the copy and create it again with the same settings."""
        metadata = dict(c.metadata or {})
        if self._space is not None:
            metadata[SPACE_KEY] = self._space.to_json()
        client.delete_collection(c.name)
        wanted = _retargeted(c.configuration, self._space)
        last: dict[str, Any] | None = None
        for kwargs in _create_attempts(wanted):
            with warnings.catch_warnings(), _restore_registry():
                warnings.simplefilter("ignore")
                collection = client.create_collection(
                    c.name, metadata=metadata or None, embedding_function=None, **kwargs
                )
            last = _configuration_of(collection)
            if _same_configuration(last, wanted):
                return collection
            client.delete_collection(c.name)
        raise StoreFormatError(
            f"chromadb would not create collection {c.label!r} again with its configuration "
            f"{c.configuration!r} (it made {last!r}); nothing was replaced."
        )

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        where = f"written Chroma directory {path}"
        kept = set(ids)
        prefix = len(self._collections) > 1
        for group in sorted({k[:2] for k in self._untouched}):
            with _client(path, *group) as client:
                names = {_name(c) for c in client.list_collections()}
                for (tenant, database, name), count in self._untouched.items():
                    if (tenant, database) != group:
                        continue
                    if name not in names or client.get_collection(name).count() != count:
                        label = _label(tenant, database, name)
                        raise StoreFormatError(f"{where}: collection {label!r} changed")
        for group, collections in _by_group(self._collections):
            with _client(path, *group) as client:
                names = {_name(c) for c in client.list_collections()}
                for c in collections:
                    self._check_collection(where, client, names, c, kept, prefix, dim)

    def _check_collection(
        self,
        where: str,
        client: Any,
        names: set[str],
        c: _Collection,
        kept: set[str],
        prefix: bool,
        dim: int,
    ) -> None:
        expected = [i for i in c.ids if (f"{c.label}/{i}" if prefix else i) in kept]
        if c.name not in names:
            raise StoreFormatError(f"{where}: collection {c.label!r} is missing")
        collection = client.get_collection(c.name, embedding_function=None)
        if collection.count() != len(expected):
            raise StoreFormatError(
                f"{where}: collection {c.label!r} holds {collection.count()} records, "
                f"expected {len(expected)}"
            )
        wanted = _retargeted(c.configuration, self._space)
        if not _same_configuration(_configuration_of(collection), wanted):
            raise StoreFormatError(f"{where}: collection {c.label!r} lost its configuration")
        meta = dict(collection.metadata or {})
        meta.pop(SPACE_KEY, None)
        if meta != dict(c.metadata or {}):
            raise StoreFormatError(f"{where}: collection {c.label!r} metadata differs")
        _check_records(where, collection, c, expected, dim)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """A nearest-neighbour query per collection must return the queried record first."""
        for group, collections in _by_group(self._collections):
            with _client(path, *group) as client:
                for c in collections:
                    collection = client.get_collection(c.name, embedding_function=None)
                    if collection.count() == 0:
                        continue
                    first = collection.get(limit=1, include=["embeddings"])
                    vector = np.asarray(first["embeddings"][0], dtype=np.float32)
                    hits = collection.query(query_embeddings=[vector], n_results=1, include=[])
                    if hits["ids"][0][:1] != first["ids"][:1]:
                        raise StoreFormatError(
                            f"chromadb cannot query the migrated collection {c.label!r} in "
                            f"{path} consistently (a record is not its own nearest neighbour)"
                        )
        return "chromadb"

    # -- installing ------------------------------------------------------------------------
    installs_itself = True

    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the verified directory ``new`` at ``target``; the original becomes the backup."""
        if not in_place:
            return swap_directory(new, target, None)
        backup = swap_directory(new, target, self.backup_path())
        if _still_open(target):
            logger.warning(
                "a chromadb client in this process is still open on %s: it keeps reading the "
                "old files (now %s). Close it and open a new one to see the migrated store.",
                target,
                backup,
            )
        return backup


class _Progress:
    """How far `ChromaStore.write` got with the copy, beside it in the work directory.

    ``copied``: the copy of the original is complete. ``created``: collections already
    created again in the copy; their records were added in order, one atomic
    ``collection.add`` per batch, so ``collection.count()`` says where to go on. A run
    killed while filling a large collection resumes there instead of from scratch.
    """

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".progress.json")
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._state: dict[str, Any] = loaded if isinstance(loaded, dict) else {}

    def copied(self) -> bool:
        return bool(self._state.get("copied"))

    def created(self, name: str) -> bool:
        return name in self._state.get("created", [])

    def reset(self) -> None:
        self._state = {}
        self.path.unlink(missing_ok=True)

    def mark_copied(self) -> None:
        self._state = {"copied": True, "created": []}
        self._save()

    def mark_created(self, name: str) -> None:
        self._state.setdefault("created", []).append(name)
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _create_attempts(configuration: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Ways to create a collection with ``configuration``, most faithful first.

    A collection created from ``hnsw:*`` metadata only (LangChain, older code) records
    no embedding function; one created with a configuration records one (``legacy``
    when none was given). The embedding-function record is rebuilt with chromadb's own
    registry, or carried over verbatim when its class is not importable here.
    """
    if configuration.get("embedding_function") is None:
        yield {}
    config: dict[str, Any] = {}
    for index in ("hnsw", "spann"):
        if configuration.get(index) is not None:
            config[index] = dict(configuration[index])
    ef = configuration.get("embedding_function")
    if isinstance(ef, dict) and ef.get("type") == "known":
        config["embedding_function"] = _known_function(ef)
    yield {"configuration": config}


def _retargeted(configuration: dict[str, Any], space: EmbeddingSpace | None) -> dict[str, Any]:
    """``configuration`` with a vllm-embed function record describing ``space`` (the
    migrated vectors); any other configuration unchanged. ``dimensions`` (a Matryoshka
    size asked of the server) follows the new dimension only when the record had one."""
    ef = configuration.get("embedding_function")
    if space is None or not isinstance(ef, dict) or ef.get("name") != VLLM_EMBED_FUNCTION:
        return configuration
    config = dict(ef.get("config") or {})
    config["model"] = space.model
    config["dimension"] = space.dimension
    if config.get("dimensions") is not None:
        config["dimensions"] = space.dimension
    config["instructions"] = {
        "query": space.query_instruction,
        "document": space.document_instruction,
    }
    return {**configuration, "embedding_function": {**ef, "config": config}}


@contextlib.contextmanager
def _restore_registry() -> Iterator[None]:
    """chromadb's registry of embedding functions as it was (see `_PersistedFunction`)."""
    from chromadb.utils.embedding_functions import known_embedding_functions

    saved = dict(known_embedding_functions)
    try:
        yield
    finally:
        known_embedding_functions.clear()
        known_embedding_functions.update(saved)


def _known_function(ef: dict[str, Any]) -> Any:
    """The embedding function a ``{"type": "known", "name", "config"}`` record describes."""
    from chromadb.utils.embedding_functions import known_embedding_functions

    cls = known_embedding_functions.get(ef.get("name"))
    if cls is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls.build_from_config(ef.get("config") or {})
        except Exception:
            pass
    return _PersistedFunction.for_record(ef)


class _PersistedFunction:
    """Carries an embedding-function record over unchanged; never embeds.

    Used when the function's class cannot be built in this process (its package or its
    API-key variable is missing). chromadb registers the class under its name while
    creating the collection; the registry entry is restored right after
    (`_restore_registry`).
    """

    _record: dict[str, Any]

    @classmethod
    def for_record(cls, record: dict[str, Any]) -> _PersistedFunction:
        name = str(record.get("name"))
        sub = type("PersistedEmbeddingFunction", (cls,), {"name": staticmethod(lambda: name)})
        instance: _PersistedFunction = sub()
        instance._record = record
        return instance

    def __call__(self, input: Any) -> Any:
        raise MigrationError("the migrated vectors are given explicitly; nothing is embedded here")

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self._record.get("config") or {}
        return config

    def default_space(self) -> str:
        return "l2"

    def supported_spaces(self) -> list[str]:
        return ["l2", "cosine", "ip"]


def _configuration_of(collection: Any) -> dict[str, Any]:
    model = getattr(collection, "_model", None)
    raw = getattr(model, "configuration_json", None)
    if isinstance(raw, dict):
        return raw
    config = getattr(collection, "configuration_json", None)
    return config if isinstance(config, dict) else {}


def _same_configuration(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("hnsw", "spann", "embedding_function")
    return all(a.get(k) == b.get(k) for k in keys)


def _name(collection: Any) -> str:
    return collection if isinstance(collection, str) else str(collection.name)


def _check_records(
    where: str, collection: Any, c: _Collection, expected: list[str], dim: int
) -> None:
    want = {i: n for n, i in enumerate(c.ids)}
    done = 0
    for offset in range(0, len(expected), _PAGE):
        page = collection.get(
            offset=offset, limit=_PAGE, include=["documents", "metadatas", "embeddings", "uris"]
        )
        got_ids = list(page["ids"])
        if got_ids != expected[offset : offset + _PAGE]:
            raise StoreFormatError(f"{where}: collection {c.label!r}: record ids differ")
        vectors = np.asarray(page["embeddings"], dtype=np.float32)
        if vectors.shape != (len(got_ids), dim):
            raise StoreFormatError(
                f"{where}: collection {c.label!r} holds vectors of shape {vectors.shape}, "
                f"expected ({len(got_ids)}, {dim})"
            )
        check_rows(vectors, f"{where}, collection {c.label!r}", done)
        uris = page.get("uris") or [None] * len(got_ids)
        for rid, document, metadata, uri in zip(
            got_ids, page["documents"], page["metadatas"], uris, strict=True
        ):
            n = want[rid]
            if (
                document != c.documents[n]
                or (metadata or None) != (c.metadatas[n] or None)
                or uri != c.uris[n]
            ):
                raise StoreFormatError(
                    f"{where}: collection {c.label!r}: record {rid!r} changed its document or "
                    "metadata"
                )
        done += len(got_ids)


# -- reading ----------------------------------------------------------------------------
def read_chroma(path: Path, *, collection: str | None = None) -> ChromaStore:
    """Read a Chroma persistent directory (from a scratch copy; the original is only read)."""
    if path.name == CHROMA_FILE:
        path = path.parent
    if not is_chroma_dir(path):
        raise StoreFormatError(f"{path} is not a Chroma persistent directory (no {CHROMA_FILE}).")
    _check_sqlite_header(path / CHROMA_FILE)
    _chromadb()
    with tempfile.TemporaryDirectory(prefix=".vllm-embed-read-", dir=path.parent) as scratch:
        copy = Path(scratch) / path.name
        shutil.copytree(path, copy, symlinks=True)
        try:
            return _read_copy(path, copy, collection)
        except (StoreFormatError, MigrationError):
            raise
        except Exception as exc:
            raise _chroma_error(path, exc) from exc


def _check_sqlite_header(file: Path) -> None:
    with open(file, "rb") as f:
        header = f.read(16)
    if header != b"SQLite format 3\x00":
        raise StoreFormatError(
            f"{file} is not an SQLite database (damaged or truncated); nothing was written. "
            "Restore the Chroma directory from a backup."
        )


def _groups(copy: Path) -> list[tuple[str, str]]:
    """Every (tenant, database) of the directory, the default first.

    chromadb's AdminAPI lists the databases of a tenant (``list_databases``) but has no
    call that lists tenants (1.5: ``create_tenant`` / ``get_tenant`` only), so the
    tenant names are read from ``chroma.sqlite3``'s ``tenants`` table (read only, in the
    scratch copy) and each tenant's databases are listed by chromadb. The default pair
    alone when there is no such table (an older layout); the ``databases`` table when
    the installed chromadb's client has no AdminAPI.
    """
    default = (DEFAULT_TENANT, DEFAULT_DATABASE)
    try:
        uri = (copy / CHROMA_FILE).resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            tenants = sorted({str(t) for (t,) in db.execute("SELECT id FROM tenants")})
            rows = db.execute("SELECT tenant_id, name FROM databases").fetchall()
    except sqlite3.Error:
        return [default]
    found = {(str(t), str(d)) for t, d in rows}
    with _client(copy) as client:
        admin = getattr(client, "_admin_client", None)  # the client's own AdminClient
        if admin is not None and hasattr(admin, "list_databases"):
            found = set()
            for tenant in tenants:
                offset = 0
                while True:
                    page = list(admin.list_databases(limit=_PAGE, offset=offset, tenant=tenant))
                    found.update((tenant, str(_field(d, "name"))) for d in page)
                    if len(page) < _PAGE:
                        break
                    offset += _PAGE
    return [default, *sorted(found - {default})]


def _field(record: Any, key: str) -> Any:
    """A field of a chromadb record (a TypedDict in 1.x, an object in some versions)."""
    return record[key] if isinstance(record, dict) else getattr(record, key)


def _by_group(collections: list[_Collection]) -> list[tuple[tuple[str, str], list[_Collection]]]:
    """Collections grouped by (tenant, database), in their order (one client per group)."""
    groups: dict[tuple[str, str], list[_Collection]] = {}
    for c in collections:
        groups.setdefault(c.group, []).append(c)
    return list(groups.items())


def _choose(path: Path, found: list[tuple[str, str, str]], wanted: str | None) -> list[int]:
    """Indices into ``found`` of the collections to migrate (``--collection``)."""
    if wanted is None:
        return list(range(len(found)))
    if wanted.count("/") == 2:  # TENANT/DATABASE/NAME
        exact = [n for n, key in enumerate(found) if "/".join(key) == wanted]
    else:  # a plain name: every tenant and database
        exact = [n for n, key in enumerate(found) if key[2] == wanted]
    labels = [_label(*key) for key in found]
    if not exact:
        raise StoreFormatError(
            f"{path}: no collection {wanted!r}; collections: {', '.join(labels)}."
        )
    if len(exact) > 1:
        raise StoreFormatError(
            f"{path}: {len(exact)} collections are named {wanted!r} (in other tenants or "
            f"databases): {', '.join('/'.join(found[n]) for n in exact)}. Pick one with "
            "--collection TENANT/DATABASE/NAME."
        )
    return exact


def _read_copy(path: Path, copy: Path, wanted: str | None) -> ChromaStore:
    found: list[tuple[str, str, str]] = []
    counts: dict[tuple[str, str, str], int] = {}
    for tenant, database in _groups(copy):
        with _client(copy, tenant, database) as client:
            for name in sorted(_name(c) for c in client.list_collections()):
                found.append((tenant, database, name))
                counts[found[-1]] = int(client.get_collection(name).count())
    if not found:
        raise StoreFormatError(f"{path}: the Chroma directory holds no collection.")
    chosen = [found[n] for n in _choose(path, found, wanted)]
    untouched = {key: count for key, count in counts.items() if key not in chosen}
    collections: list[_Collection] = []
    start = 0
    sample: tuple[list[str], F32Matrix] | None = None
    for tenant, database in dict.fromkeys(key[:2] for key in chosen):
        with _client(copy, tenant, database) as client:
            for key in chosen:
                if key[:2] != (tenant, database):
                    continue
                c = _read_collection(client, key[2])
                c.tenant, c.database = tenant, database
                c.start = start
                start += len(c.ids)
                collections.append(c)
                if c.ids:  # each collection's own sample: doctor judges them one by one
                    c.sample = _sample(client, c, ChromaStore(path, [c], {}, None).texts)
                    sample = sample if sample is not None else c.sample
    return ChromaStore(path, collections, untouched, sample)


def _read_collection(client: Any, name: str) -> _Collection:
    collection = client.get_collection(name, embedding_function=None)
    model = getattr(collection, "_model", None)
    c = _Collection(
        name=name,
        metadata=dict(collection.metadata) if collection.metadata else None,
        configuration=_configuration_of(collection),
        dimension=getattr(model, "dimension", None),
    )
    total = int(collection.count())
    page = max(1, min(int(client.get_max_batch_size()), 5000))
    for offset in range(0, total, page):
        got = collection.get(offset=offset, limit=page, include=["documents", "metadatas", "uris"])
        c.ids.extend(got["ids"])
        c.documents.extend(d if isinstance(d, str) else None for d in got["documents"])
        c.metadatas.extend(dict(m) if m else None for m in got["metadatas"])
        c.uris.extend(u if isinstance(u, str) else None for u in (got.get("uris") or []))
    if len(c.uris) != len(c.ids):  # a chromadb without uris
        c.uris = [None] * len(c.ids)
    if len(c.ids) != total:
        raise StoreFormatError(
            f"collection {name!r} reports {total} records but {len(c.ids)} could be read"
        )
    c.llamaindex = any(m is not None and LLAMAINDEX_NODE_KEY in m for m in c.metadatas)
    if c.dimension is None and total:
        first = collection.get(limit=1, include=["embeddings"])
        c.dimension = len(first["embeddings"][0])
    return c


def _sample(
    client: Any, c: _Collection, texts: list[str | None]
) -> tuple[list[str], F32Matrix] | None:
    collection = client.get_collection(c.name, embedding_function=None)
    got = collection.get(ids=c.ids[: SAMPLE_ROWS * 2], include=["embeddings"])
    by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
    pairs = [
        (t, by_id[i])
        for i, t in zip(c.ids, texts, strict=False)
        if isinstance(t, str) and t.strip() and i in by_id
    ][:SAMPLE_ROWS]
    if not pairs:
        return None
    return [t for t, _ in pairs], np.asarray([v for _, v in pairs], dtype=np.float32)
