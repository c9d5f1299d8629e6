"""Filling the new collections on a Milvus server while the rows are embedded
(`ServerWriter`, the `RowWriter` of `vllm_embed.migrate._milvus_server.MilvusServerStore`).

What it saves over filling after embedding (measured: ``benchmarks/README.md``):

- the new collection is created without its indexes in `begin` (quick), and its indexes
  are created and the collection loaded (pymilvus waits for the load: ~2-3 s) in the
  background while the rows are sent (`create_collection` with the indexes would wait
  for the load before the first row could go in);
- each batch is sent as it is journaled, and `IN_FLIGHT` inserts are in flight at once
  (pymilvus encodes a batch in Python while the server stores the one before: the
  client waited on the server for most of an insert);
- a row goes to pymilvus as a dict holding its vector as a float32 numpy row, which
  pymilvus encodes itself (no list of Python floats made first).

Resumable per batch, as before: the rows written are marked in the run's `Plan` in
order (a batch's mark waits for every batch before it). A killed run may have written
up to `IN_FLIGHT` batches after its last mark, so a resumed collection ``upsert``s the
rows up to ``IN_FLIGHT x batch_rows`` past the mark (an upsert replaces a row already
there), then ``insert``s (an upsert is a delete + insert per key: 2x slower).
"""

from __future__ import annotations

import copy
import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vllm_embed._errors import MigrationError

from ._milvus_collection import by_partition, create_collection, index_params_of
from ._milvus_switch import collection_id, free_name
from ._store import F32Matrix, RowWriter

if TYPE_CHECKING:
    from ._milvus_collection import MilvusCollection, MilvusStore

__all__ = ["IN_FLIGHT", "MIGRATED", "Plan", "ServerWriter"]

#: A new collection's name: ``<reader name>_vllm_d<dim>``.
MIGRATED = "_vllm_d"

#: Inserts sent before the oldest one is waited for.
IN_FLIGHT = 2


class Plan:
    """The new collections' names and rows written, in the work dir beside ``out``; at
    the end ``out`` itself holds the names (the engine fsyncs it, the checks read it)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.with_name(out.name + ".milvus.json")
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._state: dict[str, Any] = loaded if isinstance(loaded, dict) else {}

    def made(self) -> dict[str, str]:
        """Every old collection -> the new collection made for it (so far)."""
        return {str(k): str(v) for k, v in (self._state.get("new") or {}).items() if v}

    def made_ids(self) -> dict[str, int]:
        """Every old collection -> the server's id of the new collection made for it."""
        return {str(k): int(v) for k, v in (self._state.get("ids") or {}).items()}

    def set_made_id(self, name: str, made_id: int | None) -> None:
        if made_id is not None:
            self._state.setdefault("ids", {})[name] = made_id
            self._save(self.path)

    def new_name(self, name: str) -> str | None:
        got = self._state.get("new", {}).get(name)
        return str(got) if got else None

    def set_new_name(self, name: str, new: str) -> None:
        self._state.setdefault("new", {})[name] = new
        self._save(self.path)

    def rows_done(self, name: str) -> int:
        return int(self._state.get("rows", {}).get(name, 0))

    def mark_rows(self, name: str, count: int) -> None:
        self._state.setdefault("rows", {})[name] = count
        self._save(self.path)

    def write_output(self) -> None:
        self._save(self.out)

    def _save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class ServerWriter(RowWriter):
    """Fills the new collections in record order while the rows are embedded.

    `begin` connects, creates each new collection (once: its name is in the plan; a
    collection a killed run made goes on after its marked rows) and its missing
    partitions. `add` sends `MilvusServerStore.batch_rows` rows at a time (`IN_FLIGHT` at
    once). `finish` sends the rest, waits for every insert, records the embedding space in
    each new collection's properties, flushes them and writes the plan to ``out``.
    """

    def __init__(
        self,
        store: MilvusStore,
        connect: Callable[[], AbstractContextManager[Any]],
        plan: Plan,
        readers: dict[str, str],
        new_name_of: Callable[[str], str | None],
        keep: Sequence[int],
        dim: int,
    ) -> None:
        self._store = store
        self._connect = connect
        self._readers = readers  # old collection -> the name its readers use
        self._new_name_of = new_name_of  # old collection -> its new one (a resumed run's)
        self._plan = plan
        self._dim = dim
        kept = set(keep)
        #: per collection: its row numbers that are kept, in order
        self._mine = [
            [i for i in range(len(c.rows)) if c.start + i in kept] for c in store._collections
        ]
        self._exit = ExitStack()
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._flying: deque[tuple[Future[None], int, int]] = deque()  # (insert, coll, rows)
        self._loads: list[Future[None]] = []  # indexes created and loaded, in the background
        self._names: list[str] = []  # the new collection of each
        self._sent: list[int] = []  # rows of each collection sent (or written before)
        self._upsert_until: list[int] = []  # rows a killed run may have written
        self._current = 0  # the collection the next rows belong to
        self._seen = 0  # rows of the current collection received so far
        self._pending: list[F32Matrix] = []  # received rows not sent yet

    def begin(self) -> None:
        store, plan = self._store, self._plan
        self._client = client = self._exit.enter_context(self._connect())
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="vllm-embed-milvus")
        existing = set(client.list_collections())
        for c in store._collections:
            new = self._new_name_of(c.name)
            resumed = new is not None and new in existing
            if new is None or not resumed:
                new = new or free_name(f"{self._readers[c.name]}{MIGRATED}{self._dim}", existing)
                existing.add(new)
                plan.set_new_name(c.name, new)
                bare = copy.copy(c)
                bare.indexes = []  # made by `_index_and_load`
                create_collection(client, bare, new, self._dim, store._space)
                plan.mark_rows(c.name, 0)
            # its id, kept through a rename, tells it after one (`renamed_in`)
            plan.set_made_id(c.name, collection_id(client, new))
            self._loads.append(self._pool.submit(_index_and_load, client, c, new))
            for partition in set(c.partitions) - set(client.list_partitions(new)):
                client.create_partition(new, partition)  # killed while creating it
            done = plan.rows_done(c.name)
            self._names.append(new)
            self._sent.append(done)
            self._upsert_until.append(done + IN_FLIGHT * store.batch_rows if resumed else 0)

    def add(self, block: F32Matrix) -> None:
        start = 0
        while start < len(block):
            while self._seen == len(self._mine[self._current]):  # the next collection
                self._send(self._pending_rows())
                self._current += 1
                self._seen = 0
            take = min(len(block) - start, len(self._mine[self._current]) - self._seen)
            # rows a killed run wrote (and marked) already are skipped
            skip = min(take, max(0, self._sent[self._current] - self._seen))
            if skip < take:
                self._pending.append(block[start + skip : start + take])
            self._seen += take
            start += take
            while self._pending_rows() >= self._store.batch_rows:
                self._send(self._store.batch_rows)

    def _pending_rows(self) -> int:
        return sum(len(p) for p in self._pending)

    def _send(self, count: int) -> None:
        """Send the first ``count`` pending rows to the current collection's new one."""
        if count == 0:
            return
        assert self._pool is not None
        n = self._current
        c = self._store._collections[n]
        matrix = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        rest = matrix[count:]
        self._pending = [rest] if len(rest) else []
        first = self._sent[n]
        part = self._mine[n][first : first + count]
        upsert = first < self._upsert_until[n]
        batches = list(by_partition(c, part, matrix[:count]))
        while len(self._flying) >= IN_FLIGHT:
            self._land()
        self._sent[n] = first + count
        insert = self._pool.submit(self._write, self._names[n], batches, upsert)
        self._flying.append((insert, n, first + count))

    def _write(
        self, name: str, batches: list[tuple[str, list[dict[str, Any]]]], upsert: bool
    ) -> None:
        write = self._client.upsert if upsert else self._client.insert
        for partition, rows in batches:
            write(name, rows, partition_name=partition)

    def _land(self) -> None:
        """Wait for the oldest insert in flight and mark its rows written."""
        insert, n, rows = self._flying.popleft()
        insert.result()
        self._plan.mark_rows(self._store._collections[n].name, rows)

    def finish(self) -> None:
        self._send(self._pending_rows())
        while self._flying:
            self._land()
        for load in self._loads:
            load.result()
        store, client = self._store, self._client
        for c, mine, sent, new in zip(
            store._collections, self._mine, self._sent, self._names, strict=True
        ):
            if sent != len(mine):
                raise MigrationError(f"new collection {new!r} got {sent} of {len(mine)} rows")
            if store._space is not None:  # recorded after the rows were embedded
                client.alter_collection_properties(new, c.properties(store._space))
        for new in self._names:
            client.flush(new)
        self.abort()
        self._plan.write_output()

    def abort(self) -> None:
        pool, self._pool = self._pool, None
        try:
            if pool is not None:  # no insert goes on after this
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._flying.clear()
            self._exit.close()


def _index_and_load(client: Any, c: MilvusCollection, name: str) -> None:
    """Create the indexes of ``c`` on ``name`` (those a killed run made are kept) and load
    it, as ``create_collection`` with the indexes would have done."""
    index_params = index_params_of(client, c, frozenset(client.list_indexes(name)))
    if len(index_params):
        client.create_index(name, index_params)
    if c.indexes:
        client.load_collection(name)
