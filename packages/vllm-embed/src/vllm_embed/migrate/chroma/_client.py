"""Opening a Chroma persistent directory with chromadb: the import, one client per
(tenant, database), always closed, and what chromadb's records look like."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vllm_embed._errors import MigrationError, StoreFormatError

CHROMA_FILE = "chroma.sqlite3"
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
#: Records (or databases) per page when reading or checking.
PAGE = 1000


def is_chroma_dir(path: Path) -> bool:
    """A directory holding ``chroma.sqlite3`` (a Chroma persistent directory)."""
    return path.is_dir() and (path / CHROMA_FILE).is_file()


def chromadb_module() -> Any:
    """The chromadb package, or a `MigrationError` saying how to install it."""
    try:
        import chromadb
    except ImportError as exc:
        raise MigrationError(
            "this is a Chroma persistent directory; reading and writing it needs the chromadb "
            "package (the same major version that wrote it): pip install chromadb"
        ) from exc
    return chromadb


@contextlib.contextmanager
def open_client(
    path: Path, tenant: str = DEFAULT_TENANT, database: str = DEFAULT_DATABASE
) -> Iterator[Any]:
    """A PersistentClient on ``path`` (one tenant and database) with chromadb's default
    settings, always closed.

    Default settings, as LangChain and LlamaIndex use: chromadb refuses a second client
    for one path with other settings. Closing releases the path's cached system, so a
    later client for the same path (after a directory swap) opens the new files.
    """
    chromadb = chromadb_module()
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


def still_open(path: Path) -> bool:
    """True when this process still holds a chromadb client on ``path`` (it would keep
    reading the files that are now the backup)."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:
        return False
    systems = getattr(SharedSystemClient, "_identifier_to_system", {})
    return str(path) in systems


def chroma_error(path: Path, exc: Exception) -> StoreFormatError:
    """What chromadb failing to open ``path`` means for the user."""
    return StoreFormatError(
        f"{path}: chromadb cannot open this Chroma directory ({type(exc).__name__}: {exc}). "
        "It may be damaged or written by another chromadb major version; nothing was written."
    )


def label(tenant: str, database: str, name: str) -> str:
    """A collection's name in messages and ``--collection``: ``NAME`` in the default tenant
    and database, else ``TENANT/DATABASE/NAME``."""
    if (tenant, database) == (DEFAULT_TENANT, DEFAULT_DATABASE):
        return name
    return f"{tenant}/{database}/{name}"


def name_of(collection: Any) -> str:
    """The name of an entry of ``list_collections()`` (a name in 1.x, an object before)."""
    return collection if isinstance(collection, str) else str(collection.name)


def field_of(record: Any, key: str) -> Any:
    """A field of a chromadb record (a TypedDict in 1.x, an object in some versions)."""
    return record[key] if isinstance(record, dict) else getattr(record, key)
