"""Open a ``NanoVectorDB`` only when its stored dimension matches the server's.

nano-vectordb itself checks the dimension with an ``assert`` (gone under ``python -O``)
and only after you chose a dimension; apps that switch models then find out when
``upsert`` fails, or never. :func:`open_db` asks the server for its real dimension, reads
the file's ``embedding_dim`` and refuses a mismatch *before* anything is written, with
the exact ``vllm-embed migrate`` command that fixes the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from nano_vectordb import NanoVectorDB

from vllm_embed import (
    AsyncEmbeddingClient,
    DimensionMismatchError,
    EmbeddingClient,
    StoreFormatError,
    doctor,
)
from vllm_embed_nanovectordb._function import VLLMEmbeddingFunction

__all__ = ["aopen_db", "migrate_command", "open_db", "stored_dimension"]

Source = EmbeddingClient | AsyncEmbeddingClient | VLLMEmbeddingFunction

# nano-vectordb writes embedding_dim as the first key: read it without parsing the matrix.
_HEAD = re.compile(rb'^\s*\{\s*"embedding_dim"\s*:\s*(-?\d+)\s*[,}]')
_HEAD_BYTES = 4096


def stored_dimension(path: str | os.PathLike[str]) -> int | None:
    """The ``embedding_dim`` recorded in a nano-vectordb JSON file; None if it doesn't exist.

    Raises :class:`~vllm_embed.StoreFormatError` for a file that is not a nano-vectordb store.
    """
    file = Path(path)
    if not file.exists():
        return None
    with file.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    match = _HEAD.match(head)
    if match:
        return _valid_dim(int(match.group(1)), file)
    try:
        with file.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreFormatError(f"{file}: not a readable nano-vectordb JSON file ({exc})") from exc
    if not isinstance(data, dict) or "embedding_dim" not in data:
        raise StoreFormatError(
            f"{file}: no 'embedding_dim' key, so this is not a nano-vectordb store"
        )
    return _valid_dim(data["embedding_dim"], file)


def _valid_dim(value: Any, file: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StoreFormatError(f"{file}: embedding_dim must be a positive integer, got {value!r}")
    return value


def migrate_command(
    path: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    model: str | None = None,
    dimensions: int | None = None,
) -> str:
    """The ``vllm-embed migrate`` command that re-embeds the store at ``path``.

    The API key is never part of it: the command reads ``VLLM_EMBED_API_KEY`` & co.
    """
    return doctor.migrate_command(
        os.fspath(path), base_url=base_url, model=model, dimensions=dimensions
    )


def _core(source: Source) -> EmbeddingClient | AsyncEmbeddingClient:
    return source.client if isinstance(source, VLLMEmbeddingFunction) else source


def _mismatch_error(
    path: str | os.PathLike[str],
    stored: int,
    server_dim: int,
    client: EmbeddingClient | AsyncEmbeddingClient,
    model: str | None,
) -> DimensionMismatchError:
    command = migrate_command(
        path,
        base_url=client.base_urls[0] if client.base_urls else None,
        model=model,
        dimensions=client.requested_dimensions,
    )
    return DimensionMismatchError(
        f"{os.fspath(path)} holds {stored}-dim vectors but the server now produces "
        f"{server_dim}-dim vectors. Re-embed the store with:\n    {command}\n"
        "(nothing was written; the command reads the API key from VLLM_EMBED_API_KEY).",
        expected=stored,
        actual=server_dim,
        path=os.fspath(path),
    )


def open_db(
    path: str | os.PathLike[str], client: Source, *, metric: str = "cosine", **kwargs: Any
) -> NanoVectorDB:
    """Open or create the nano-vectordb store at ``path`` for ``client``'s embeddings.

    ``client`` is an :class:`~vllm_embed.EmbeddingClient` or a
    :class:`VLLMEmbeddingFunction`; with an async client use :func:`aopen_db`. Raises
    :class:`~vllm_embed.DimensionMismatchError` (naming the file, both dimensions and the
    migrate command) if the file was built with another dimension; nothing is written.
    Extra keyword arguments go to ``NanoVectorDB``.
    """
    core = _core(client)
    if isinstance(core, AsyncEmbeddingClient):
        raise TypeError("open_db needs a sync client; use `await aopen_db(...)`")
    server_dim = (
        client.dimension() if isinstance(client, VLLMEmbeddingFunction) else core.dimension()
    )
    stored = stored_dimension(path)
    if stored is not None and stored != server_dim:
        raise _mismatch_error(path, stored, server_dim, core, core.model_name())
    return NanoVectorDB(server_dim, metric=metric, storage_file=os.fspath(path), **kwargs)


async def aopen_db(
    path: str | os.PathLike[str], client: Source, *, metric: str = "cosine", **kwargs: Any
) -> NanoVectorDB:
    """Async :func:`open_db`; takes an :class:`~vllm_embed.AsyncEmbeddingClient` too."""
    if isinstance(client, VLLMEmbeddingFunction):
        server_dim = (await client.resolve()).embedding_dim
    elif isinstance(client, AsyncEmbeddingClient):
        server_dim = await client.dimension()
    else:
        server_dim = await asyncio.to_thread(client.dimension)
    stored = stored_dimension(path)
    if stored is not None and stored != server_dim:
        core = _core(client)
        if isinstance(core, AsyncEmbeddingClient):
            model = await core.model_name()
        else:
            model = await asyncio.to_thread(core.model_name)
        raise _mismatch_error(path, stored, server_dim, core, model)
    return NanoVectorDB(server_dim, metric=metric, storage_file=os.fspath(path), **kwargs)
