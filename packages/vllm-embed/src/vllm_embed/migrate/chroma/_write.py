"""Writing the migrated collections into the copy of the directory: each collection
deleted and created again with its name, metadata (plus the embedding-space record) and
configuration, then filled in batches with the same ids, documents, metadatas and uris."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import StoreFormatError

from .._copy_progress import CopyProgress
from .._space import SPACE_KEY, EmbeddingSpace
from .._store import F32Matrix
from ._client import open_client
from ._collection import Collection, by_group
from ._config import (
    configuration_of,
    create_attempts,
    restore_registry,
    retargeted,
    same_configuration,
)

#: Creates a collection again in an open client (`create_again`, or a test's stand-in).
CreateAgain = Callable[[Any, Collection], Any]


def create_again(client: Any, c: Collection, space: EmbeddingSpace | None) -> Any:
    """Delete ``c`` in the copy and create it again with the same settings; its metadata
    gains the record of ``space`` and its vllm-embed function record describes it."""
    metadata = dict(c.metadata or {})
    if space is not None:
        metadata[SPACE_KEY] = space.to_json()
    client.delete_collection(c.name)
    wanted = retargeted(c.configuration, space)
    last: dict[str, Any] | None = None
    for kwargs in create_attempts(wanted):
        with warnings.catch_warnings(), restore_registry():
            warnings.simplefilter("ignore")
            collection = client.create_collection(
                c.name, metadata=metadata or None, embedding_function=None, **kwargs
            )
        last = configuration_of(collection)
        if same_configuration(last, wanted):
            return collection
        client.delete_collection(c.name)
    raise StoreFormatError(
        f"chromadb would not create collection {c.label!r} again with its configuration "
        f"{c.configuration!r} (it made {last!r}); nothing was replaced."
    )


def fill(
    out: Path,
    collections: list[Collection],
    kept: set[int],
    matrix: F32Matrix,
    *,
    batch_cap: int,
    progress: CopyProgress,
    make: CreateAgain,
) -> None:
    """Add the kept records of every collection, with their rows of ``matrix`` (in record
    order), to the copy at ``out``. A collection already created by a killed run
    (``progress``) goes on from its ``count()``: each ``collection.add`` is atomic."""
    row = 0  # the first row of the current collection in `matrix`
    for group, members in by_group(collections):
        with open_client(out, *group) as client:
            batch = max(1, min(int(client.get_max_batch_size()), batch_cap))
            for c in members:
                mine = [i for i in range(len(c.ids)) if c.start + i in kept]
                if progress.created(c.label):  # a killed run made it: go on from there
                    collection = client.get_collection(c.name, embedding_function=None)
                    done = int(collection.count())
                else:
                    collection = make(client, c)
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
