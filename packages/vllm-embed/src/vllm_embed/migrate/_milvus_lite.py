"""milvus-lite's embedded engine as `vllm_embed.migrate.milvus` uses it: the client on a
database directory (closed with its embedded server), paged reads, and the engine's own
collections behind the client for the rows.

milvus-lite 3.x runs one gRPC server per database path inside the process that opens it
(``milvus_lite.server_manager_instance``); ``MilvusClient.close()`` leaves it running, holding
the directory open and its data in memory, so `MilvusClient` here always stops it. That
server hands every call to milvus-lite's engine (``milvus_lite.MilvusLite``, the library's
documented Python API) in this process: the rows of a Milvus Lite database are read,
written and checked through that engine's collections (`LiteClient.collection`,
`engine_rows`), the same calls pymilvus' ``query`` / ``insert`` end in, without encoding
every row into protobuf and back twice (more than half of pymilvus' ``insert`` time here);
the schema, indexes, partitions, properties and aliases still go through pymilvus. Plain
collections skip the engine's row dicts too (`_milvus_lite_engine`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vllm_embed._errors import MigrationError

from ._milvus_lite_engine import engine_columns, plain

__all__ = [
    "LiteClient",
    "count_rows",
    "engine_rows",
    "iterate_rows",
    "pymilvus_module",
    "served_here",
]

_PAGE = 16384  # pymilvus' largest iterator batch (small ones re-scan: 4x slower)


def pymilvus_module() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise MigrationError(
            "this is a Milvus database; reading and writing it needs pymilvus (and "
            "milvus-lite for a local file): pip install pymilvus milvus-lite"
        ) from exc
    return pymilvus


def _servers() -> Any:
    """milvus-lite's per-process registry of embedded servers (one per database path)."""
    from milvus_lite.server_manager import server_manager_instance

    return server_manager_instance


def served_here(path: Path) -> bool:
    """True when this process runs milvus-lite's embedded server on ``path``."""
    try:
        servers = _servers()
    except ImportError:
        return False
    return os.path.abspath(path) in getattr(servers, "_servers", {})


class LiteClient:
    """A MilvusClient on a database directory, always closed, and milvus-lite's embedded
    server for the path stopped (``client.close()`` leaves it running in the process,
    holding the directory open and its data in memory until exit).

    pymilvus only takes a local path that ends in ``.db``; a work copy
    (``output.tmp``) is opened through a ``.db`` symlink beside it, removed on close.
    """

    def __init__(self, path: Path) -> None:
        self.link: Path | None = None
        if path.suffix != ".db":
            self.link = path.with_name(path.name + ".open.db")
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(path.name)
            path = self.link
        self.path = path
        try:
            self.client = pymilvus_module().MilvusClient(str(path))
        except BaseException:
            self._release()
            raise
        # pymilvus caches schemas process-wide by server address, which milvus-lite's
        # embedded servers can reuse: forget what another database said (see _forget_schema)
        with contextlib.suppress(Exception):
            self.client._get_connection()._invalidate_db_schemas("")

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.close()
        finally:
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(ImportError):
            _servers().release_server(str(self.path))
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def _unlink(self) -> None:
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def collection(self, name: str) -> Any:
        """milvus-lite's engine collection ``name`` behind this client (``Collection`` of
        ``milvus_lite.MilvusLite``: ``query``, ``get``, ``insert``, ``upsert``), loaded."""
        entry = getattr(_servers(), "_servers", {}).get(os.path.abspath(self.path))
        if entry is None or not hasattr(entry[1], "get_collection"):
            import milvus_lite

            version = getattr(milvus_lite, "__version__", "unknown")
            raise MigrationError(
                f"{self.path}: this milvus-lite ({version}) runs no embedded engine that "
                "vllm-embed can reach in this process (the migration reads and writes through "
                "milvus-lite 3.x's in-process engine, tested with 3.2); the original is untouched: "
                "pip install 'milvus-lite>=3.2,<4'"
            )
        collection = entry[1].get_collection(name)
        if collection.load_state != "loaded":
            collection.load()
        return collection


def _forget_schema(client: Any, name: str) -> None:
    """Drop pymilvus' process-wide cached schema of ``name``. The cache is keyed by server
    address and collection name, and milvus-lite's embedded servers can reuse an address:
    a collection of the same name in another database (another pk type) would otherwise
    make ``query_iterator`` page with the wrong key expression (seen: ``pk > id-9``)."""
    with contextlib.suppress(Exception):
        client._get_connection()._invalidate_schema(name)


def count_rows(client: Any, name: str) -> int:
    client.load_collection(name)
    got = client.query(name, filter="", output_fields=["count(*)"])
    return int(got[0]["count(*)"])


def iterate_rows(
    client: Any, name: str, partitions: list[str], fields: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of ``name`` (``fields``), partition by partition."""
    client.load_collection(name)  # a reopened database holds released collections
    _forget_schema(client, name)
    # milvus-lite has no server clock: pymilvus' iterator says so once per call (noise)
    iterator_log = logging.getLogger("pymilvus.orm.iterator")
    level = iterator_log.level
    iterator_log.setLevel(logging.ERROR)
    try:
        yield from _pages(client, name, partitions, fields)
    finally:
        iterator_log.setLevel(level)


def engine_rows(
    collection: Any, partitions: list[str], fields: list[str], where: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every row of an engine ``collection`` (``fields``; dynamic fields flattened, as
    pymilvus gives them), partition by partition, in key order (as pymilvus' iterator);
    a column at a time when the collection's fields allow (`_milvus_lite_engine.plain`)."""
    columnar = plain(collection, collection._vector_name)
    for partition in partitions:
        records = (
            engine_columns(collection, partition, fields, where)
            if columnar
            else collection.query(
                None, output_fields=fields, partition_names=[partition], order_by_pk=True
            )
        )
        for record in records:
            yield partition, record


def _pages(
    client: Any, name: str, partitions: list[str], fields: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for partition in partitions:
        it = client.query_iterator(
            name, batch_size=_PAGE, filter="", output_fields=fields, partition_names=[partition]
        )
        try:
            while True:
                page = it.next()
                if not page:
                    break
                for record in page:
                    yield partition, dict(record)
        finally:
            it.close()
