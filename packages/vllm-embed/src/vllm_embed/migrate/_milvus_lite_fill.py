"""Filling the copy of a Milvus Lite database while the server embeds (`LiteWriter`, the
`RowWriter` of `vllm_embed.migrate.milvus.MilvusLiteStore`): rows go in through
milvus-lite's engine collections behind the client (`_milvus_lite.LiteClient.collection`),
as columnar batches where the schema allows (`_milvus_lite_engine.EngineInsert`),
journaled per batch so a killed run goes on (`_RowsDone`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError

from ._copy_progress import CopyProgress
from ._jsonio import fsync_file
from ._milvus_collection import MilvusCollection, MilvusStore, by_partition, create_again
from ._milvus_lite import LiteClient
from ._milvus_lite_engine import EngineInsert
from ._store import F32Matrix, RowWriter

__all__ = ["LiteWriter"]


class _RowsDone(CopyProgress):
    """`CopyProgress` plus the rows already written per collection."""

    def rows_done(self, name: str) -> int:
        return int(self._state.get("rows", {}).get(name, 0))

    def mark_rows(self, name: str, count: int) -> None:
        self._state.setdefault("rows", {})[name] = count
        self._save()


class LiteWriter(RowWriter):
    """Fills the copy of the database in record order while the rows are embedded.

    `begin` copies the directory without the migrated collections (once: journaled beside
    it, `_RowsDone`) and creates each of them again (once; its aliases are still in the
    copy's alias file); a collection a killed run created goes on after the rows marked
    written, the first batch being an ``upsert`` (it may be in without its mark). `add`
    inserts `MilvusLiteStore.batch_rows` rows at a time through milvus-lite's engine
    (`EngineInsert`), marking each batch. `finish` inserts the rest, records the embedding
    space in each collection's properties, makes missing aliases, closes the database
    (milvus-lite writes its memtable to Parquet) and syncs the files.
    """

    def __init__(self, store: MilvusStore, out: Path, keep: Sequence[int], dim: int) -> None:
        self._store = store
        self._out = out
        self._dim = dim
        kept = set(keep)
        #: per collection: its row numbers that are kept, in order
        self._mine = [
            [i for i in range(len(c.rows)) if c.start + i in kept] for c in store._collections
        ]
        self._progress = _RowsDone(out)
        self._lite: LiteClient | None = None
        self._client: Any = None
        self._engines: list[Any] = []
        self._inserts: list[EngineInsert] = []
        self._done: list[int] = []  # rows of each collection written and marked
        self._resumed: list[bool] = []  # its next batch may be in already: upsert it
        self._current = 0  # the collection the next rows belong to
        self._seen = 0  # rows of the current collection received so far
        self._pending: list[F32Matrix] = []  # received rows not written yet

    def begin(self) -> None:
        progress, store = self._progress, self._store
        if not progress.copied():  # no copy yet, or one a killed run left half made
            shutil.rmtree(self._out, ignore_errors=True)
            progress.reset()
            rebuilt = {c.name for c in store._collections}
            collections = store.path / "collections"
            shutil.copytree(
                store.path,
                self._out,
                symlinks=True,
                ignore=lambda where, names: [
                    n for n in names if Path(where) == collections and n in rebuilt
                ],
            )
            progress.mark_copied()
        _sync_files(self._out)  # the copied collections, while the server embeds
        self._lite = LiteClient(self._out)
        self._client = self._lite.__enter__()
        for c in store._collections:
            resumed = progress.created(c.name)
            if not resumed:
                create_again(self._client, c, self._dim)
                progress.mark_created(c.name)
            engine = self._lite.collection(c.name)
            self._engines.append(engine)
            self._inserts.append(EngineInsert(engine, c.vector_field, f"{self._out}: {c.name!r}"))
            self._done.append(progress.rows_done(c.name))
            self._resumed.append(resumed)

    def add(self, block: F32Matrix) -> None:
        start = 0
        while start < len(block):
            while self._seen == len(self._mine[self._current]):  # the next collection
                self._write(self._pending_rows())
                self._current += 1
                self._seen = 0
            take = min(len(block) - start, len(self._mine[self._current]) - self._seen)
            # rows a killed run wrote already are skipped
            skip = min(take, max(0, self._done[self._current] - self._seen))
            if skip < take:
                self._pending.append(block[start + skip : start + take])
            self._seen += take
            start += take
            while self._pending_rows() >= self._store.batch_rows:
                self._write(self._store.batch_rows)

    def _pending_rows(self) -> int:
        return sum(len(p) for p in self._pending)

    def _take(self, count: int) -> F32Matrix:
        """The first ``count`` pending rows, the rest left pending. One array of just these
        rows: the engine's memtable keeps the batch's vectors without a copy until its
        flush, so a pending tail copied in with them would stay in memory that long too."""
        head: list[F32Matrix] = []
        taken = 0
        while taken < count:
            piece = self._pending[0]
            if len(piece) <= count - taken:
                head.append(self._pending.pop(0))
                taken += len(piece)
            else:
                head.append(piece[: count - taken])
                self._pending[0] = piece[count - taken :]
                taken = count
        return np.concatenate(head) if len(head) > 1 else head[0]

    def _write(self, count: int) -> None:
        """Insert the first ``count`` pending rows into the current collection; mark them."""
        if count == 0:
            return
        n = self._current
        c = self._store._collections[n]
        matrix = self._take(count)
        first = self._done[n]
        part = self._mine[n][first : first + count]
        if self._resumed[n]:  # may be in already: the engine's upsert (dicts), once
            for partition, batch in by_partition(c, part, matrix.tolist()):
                self._engines[n].upsert(batch, partition_name=partition)
        else:
            for partition, rows, vectors in _by_partition(c, part, matrix):
                self._inserts[n].insert(partition, rows, vectors)
        self._resumed[n] = False
        self._done[n] = first + count
        self._progress.mark_rows(c.name, first + count)

    def finish(self) -> None:
        self._write(self._pending_rows())
        store, client = self._store, self._client
        for c, mine, done in zip(store._collections, self._mine, self._done, strict=True):
            if done != len(mine):
                raise MigrationError(
                    f"{self._out}: collection {c.name!r} got {done} of {len(mine)} rows"
                )
            if store._space is not None:
                client.alter_collection_properties(c.name, c.properties(store._space))
            existing = set(client.list_aliases(c.name).get("aliases") or [])
            for alias in c.aliases:
                if alias not in existing:
                    client.create_alias(c.name, alias)
        self.abort()  # closed: milvus-lite writes its memtable and waits for its compactions
        _sync_files(self._out)

    def abort(self) -> None:
        lite, self._lite = self._lite, None
        if lite is not None:
            lite.__exit__(None, None, None)


def _by_partition(
    c: MilvusCollection, part: list[int], vectors: F32Matrix
) -> Iterator[tuple[str, list[dict[str, Any]], F32Matrix]]:
    """Rows ``part`` of ``c`` (scalar fields) and their vectors, grouped by partition, in
    order (the vectors not copied when every row is in one partition)."""
    partitions = [c.row_partitions[n] for n in part]
    if len(set(partitions)) <= 1:
        if part:
            yield partitions[0], [c.rows[n] for n in part], vectors
        return
    groups: dict[str, list[int]] = {}
    for k, partition in enumerate(partitions):
        groups.setdefault(partition, []).append(k)
    for partition, ks in groups.items():
        yield partition, [c.rows[part[k]] for k in ks], vectors[np.asarray(ks)]


def _sync_files(root: Path) -> None:
    for file in root.rglob("*"):
        if file.is_file():
            fsync_file(file)
