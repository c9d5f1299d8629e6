"""Verifying the written copy before it replaces the original: the collections left
alone are unchanged; each migrated one has its ids in order, documents, metadatas, uris,
configuration and new dimension; and chromadb's own query finds each record's vector."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import StoreFormatError

from .._space import SPACE_KEY, EmbeddingSpace
from .._store import check_rows
from ._client import PAGE, label, name_of, open_client
from ._collection import Collection, by_group
from ._config import configuration_of, retargeted, same_configuration


def check_written(
    path: Path,
    collections: list[Collection],
    untouched: dict[tuple[str, str, str], int],
    space: EmbeddingSpace | None,
    ids: Sequence[str],
    dim: int,
) -> None:
    """Re-read the written directory at ``path``; a `StoreFormatError` for any difference."""
    where = f"written Chroma directory {path}"
    kept = set(ids)
    prefix = len(collections) > 1
    for group in sorted({k[:2] for k in untouched}):
        with open_client(path, *group) as client:
            names = {name_of(c) for c in client.list_collections()}
            for (tenant, database, name), count in untouched.items():
                if (tenant, database) != group:
                    continue
                if name not in names or client.get_collection(name).count() != count:
                    raise StoreFormatError(
                        f"{where}: collection {label(tenant, database, name)!r} changed"
                    )
    for group, members in by_group(collections):
        with open_client(path, *group) as client:
            names = {name_of(c) for c in client.list_collections()}
            for c in members:
                expected = [i for i in c.ids if (f"{c.label}/{i}" if prefix else i) in kept]
                _check_collection(where, client, names, c, expected, space, dim)


def _check_collection(
    where: str,
    client: Any,
    names: set[str],
    c: Collection,
    expected: list[str],
    space: EmbeddingSpace | None,
    dim: int,
) -> None:
    if c.name not in names:
        raise StoreFormatError(f"{where}: collection {c.label!r} is missing")
    collection = client.get_collection(c.name, embedding_function=None)
    if collection.count() != len(expected):
        raise StoreFormatError(
            f"{where}: collection {c.label!r} holds {collection.count()} records, "
            f"expected {len(expected)}"
        )
    if not same_configuration(configuration_of(collection), retargeted(c.configuration, space)):
        raise StoreFormatError(f"{where}: collection {c.label!r} lost its configuration")
    meta = dict(collection.metadata or {})
    meta.pop(SPACE_KEY, None)
    if meta != dict(c.metadata or {}):
        raise StoreFormatError(f"{where}: collection {c.label!r} metadata differs")
    _check_records(where, collection, c, expected, dim)


def _check_records(
    where: str, collection: Any, c: Collection, expected: list[str], dim: int
) -> None:
    want = {i: n for n, i in enumerate(c.ids)}
    done = 0
    for offset in range(0, len(expected), PAGE):
        page = collection.get(
            offset=offset, limit=PAGE, include=["documents", "metadatas", "embeddings", "uris"]
        )
        got_ids = list(page["ids"])
        if got_ids != expected[offset : offset + PAGE]:
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


def check_queries(path: Path, collections: list[Collection]) -> None:
    """A nearest-neighbour query per collection must return the queried record first."""
    for group, members in by_group(collections):
        with open_client(path, *group) as client:
            for c in members:
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
