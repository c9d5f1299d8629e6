"""Reading a Chroma directory: from a scratch copy (opening a persistent directory may
write to it), every collection picked, a page at a time, through chromadb."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from .._store import F32Matrix
from ._client import (
    CHROMA_FILE,
    chroma_error,
    chromadb_module,
    is_chroma_dir,
    name_of,
    open_client,
)
from ._collection import Collection
from ._config import configuration_of
from ._layout import check_sqlite_header, choose, groups
from ._store import ChromaStore

#: Stored vectors kept from reading, for ``doctor --store``'s probe.
SAMPLE_ROWS = 16


def read_chroma(path: Path, *, collection: str | None = None) -> ChromaStore:
    """Read a Chroma persistent directory (from a scratch copy; the original is only read)."""
    if path.name == CHROMA_FILE:
        path = path.parent
    if not is_chroma_dir(path):
        raise StoreFormatError(f"{path} is not a Chroma persistent directory (no {CHROMA_FILE}).")
    check_sqlite_header(path / CHROMA_FILE)
    chromadb_module()
    with tempfile.TemporaryDirectory(prefix=".vllm-embed-read-", dir=path.parent) as scratch:
        copy = Path(scratch) / path.name
        shutil.copytree(path, copy, symlinks=True)
        try:
            return _read_copy(path, copy, collection)
        except (StoreFormatError, MigrationError):
            raise
        except Exception as exc:
            raise chroma_error(path, exc) from exc


def _read_copy(path: Path, copy: Path, wanted: str | None) -> ChromaStore:
    found: list[tuple[str, str, str]] = []
    counts: dict[tuple[str, str, str], int] = {}
    for tenant, database in groups(copy):
        with open_client(copy, tenant, database) as client:
            for name in sorted(name_of(c) for c in client.list_collections()):
                found.append((tenant, database, name))
                counts[found[-1]] = int(client.get_collection(name).count())
    if not found:
        raise StoreFormatError(f"{path}: the Chroma directory holds no collection.")
    chosen = [found[n] for n in choose(path, found, wanted)]
    untouched = {key: count for key, count in counts.items() if key not in chosen}
    collections: list[Collection] = []
    start = 0
    for tenant, database in dict.fromkeys(key[:2] for key in chosen):
        with open_client(copy, tenant, database) as client:
            for key in chosen:
                if key[:2] != (tenant, database):
                    continue
                c = _read_collection(client, key[2])
                c.tenant, c.database = tenant, database
                c.start = start
                start += len(c.ids)
                collections.append(c)
                if c.ids:  # each collection's own sample: doctor judges them one by one
                    c.sample = _sample(client, c)
    return ChromaStore(path, collections, untouched)


def _read_collection(client: Any, name: str) -> Collection:
    collection = client.get_collection(name, embedding_function=None)
    model = getattr(collection, "_model", None)
    c = Collection(
        name=name,
        metadata=dict(collection.metadata) if collection.metadata else None,
        configuration=configuration_of(collection),
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
    if c.dimension is None and total:
        first = collection.get(limit=1, include=["embeddings"])
        c.dimension = len(first["embeddings"][0])
    return c


def _sample(client: Any, c: Collection) -> tuple[list[str], F32Matrix] | None:
    """Up to `SAMPLE_ROWS` (text, stored vector) pairs of records that have text."""
    collection = client.get_collection(c.name, embedding_function=None)
    got = collection.get(ids=c.ids[: SAMPLE_ROWS * 2], include=["embeddings"])
    by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
    pairs = [
        (t, by_id[i])
        for i, t in zip(c.ids, c.texts(), strict=False)
        if isinstance(t, str) and t.strip() and i in by_id
    ][:SAMPLE_ROWS]
    if not pairs:
        return None
    return [t for t, _ in pairs], np.asarray([v for _, v in pairs], dtype=np.float32)
