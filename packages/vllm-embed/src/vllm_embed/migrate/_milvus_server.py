"""Milvus servers (``http://host:19530``, ``https://...``): collections migrated beside the
old ones on the server, then switched with aliases.

The address: ``http(s)://[user:password@]host:port[/db_name]`` (also ``tcp://``,
``grpc(s)://``); the credentials come from the URL or ``MILVUS_TOKEN`` (``user:password``
or an API key) and are never printed (`ServerAddress.shown`; errors pass through
`vllm_embed._secrets.mask_url_in`).

- Reading: every collection of the database (or ``--collection``, a collection or an
  alias), as for Milvus Lite (`milvus._read_collection`): schema, properties, partitions,
  indexes, aliases, the rows without their vectors. The name readers use is the alias
  ``NAME`` of a collection ``NAME_vllm_d<dim>`` made by an earlier migration, else the
  collection's own name; what earlier migrations left (``*_vllm_bak_d<dim>``, and
  ``*_vllm_d<dim>`` collections no alias points at) is skipped unless named.
- Writing (`_milvus_server_fill.ServerWriter`, while the rows are embedded): a new
  collection ``<reader name>_vllm_d<new dim>`` is created beside the old one (same
  fields, the vector field at the new dimension, properties + the embedding space under
  ``SPACE_KEY``, indexes with their build parameters, partitions) and filled with
  ``insert``; its name and the rows written are kept in the migration's work directory,
  so a run killed while filling goes on where it stopped (the batches a kill may have
  left in flight are ``upsert``ed). A failed run may leave it half-filled: no alias
  points at it, readers never see it, and the rerun goes on in it.
- Verifying, before anything is switched: the schema, properties, partitions and
  indexes, ``count`` and every key in its partition (keys only), the first 1,024 rows
  whole (fields, vector dimension, finite), and a search that finds a row first.
- Switching (`MilvusServerStore.install`, `_milvus_switch.switch`): every alias of the
  old collection moves to the new one (``alter_alias``, atomic). When readers use an
  alias (any migration after the first), that is the whole switch. When they use the
  collection's own name (the first migration), the old collection is marked and renamed
  to ``NAME_vllm_bak_d<old dim>`` and an alias ``NAME`` created for the new one: between
  those two calls (milliseconds) a reader of ``NAME`` finds no collection. LlamaIndex's
  ``MilvusVectorStore`` looks its collection up in ``list_collections()``, which lists no
  alias (it would try to create it again), so its collections are switched by two renames
  instead (old -> backup, new -> ``NAME``; the same short window, at every migration).
  A run killed between the two calls is finished by the same command run again: the
  backup's mark names ``NAME`` and the new collection, so ``NAME`` is read from the
  backup, the work directory resumes and only the last call is made
  (`_milvus_switch.pending_switches`). The collections of a whole-database run are
  switched one by one: killed after A's switch and before (or during) B's, readers of A
  find A's new collection, which the run's plan (the work directory's ``*.milvus.json``:
  old collection -> new collection) names; A is then read from its old collection (its
  own name after an alias move, its backup after a rename;
  `_milvus_switch.finished_switches`), as the run read it, so the work directory
  resumes, and `install` does not switch A again. A LlamaIndex collection A renamed in
  before the kill has no alias: ``NAME`` is A's new collection itself. The plan records
  the server's id of every new collection it makes, and a rename switch's mark on the
  backup names that id (``made_id``; a rename keeps it): when ``NAME`` has the id the
  unfinished run made under the plan's new name and exactly one backup's mark names
  ``NAME`` and that id, A is read from that backup and its new collection is ``NAME``
  (`_milvus_switch.renamed_in`); a mark naming the id while ``NAME`` is another
  collection, or two such backups, is a `MigrationError`, nothing changed. Without an
  unfinished work directory the collections readers find are the source, as always.
  The old collection is never dropped: the summary says where it is and how to drop it.
- Auto-id collections (``auto_id=True``: keys made by the server): Milvus before 2.5
  takes no given key into such a collection, so the new one has ``auto_id=False`` on the
  same primary-key field and keeps every old key (the rest of the schema is the same);
  from then on inserts must give the key. The summary says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from vllm_embed._errors import MigrationError, StoreFormatError
from vllm_embed._secrets import mask_url_in

from ._dirstore import PartView
from ._journal import OUTPUT, work_dir_for
from ._milvus_collection import MilvusCollection, MilvusStore
from ._milvus_lite import count_rows, pymilvus_module
from ._milvus_server_fill import MIGRATED, Plan, ServerWriter
from ._milvus_switch import (
    BACKUP,
    aliases_of,
    finished_switches,
    mark_done,
    pending_switches,
    renamed_in,
    strip_mark,
    switch,
)
from ._store import Rows, RowWriter
from .milvus import _read_collection, check_collection, search_check

__all__ = [
    "MilvusServerStore",
    "ServerAddress",
    "is_milvus_server_uri",
    "looks_like_milvus_server",
    "read_milvus_server",
]

_SCHEMES = ("http", "https", "tcp", "grpc", "grpcs")
#: ``http:/host`` is what ``pathlib.Path("http://host")`` makes of a URL: read it back.
_COLLAPSED = re.compile(r"^(https?|tcp|grpcs?):/(?!/)", re.IGNORECASE)
_GENERATION = re.compile(r"_vllm_d\d+(_\d+)?$")
#: Environment variable with the server's credentials (``user:password`` or an API key).
TOKEN_ENV = "MILVUS_TOKEN"


def _uncollapse(text: str) -> str:
    return _COLLAPSED.sub(lambda m: m.group(0) + "/", text, count=1)


def looks_like_milvus_server(text: str) -> bool:
    """A URL a Milvus server could answer (http(s), tcp, grpc(s)), given as a path or URL."""
    parts = urlsplit(_uncollapse(str(text)))
    return parts.scheme.lower() in _SCHEMES and bool(parts.hostname)


def is_milvus_server_uri(text: str) -> bool:
    """A Milvus server address: a server URL that is not Qdrant's (ports 6333 / 6334)."""
    from ._qdrant_collections import looks_like_qdrant_url

    text = _uncollapse(str(text))
    return looks_like_milvus_server(text) and not looks_like_qdrant_url(text)


@dataclass(frozen=True)
class ServerAddress:
    """Where a Milvus server is: ``uri`` without credentials, database, token (hidden)."""

    uri: str
    db_name: str
    token: str = field(default="", repr=False)
    given: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        given = _uncollapse(str(text))
        parts = urlsplit(given)
        try:
            port = parts.port
        except ValueError as exc:
            raise StoreFormatError(f"{mask_url_in(given, given)}: bad port ({exc})") from exc
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        uri = f"{parts.scheme.lower()}://{netloc}" + (f":{port}" if port else "")
        token = os.environ.get(TOKEN_ENV, "")
        if parts.username is not None:
            token = unquote(parts.username) + (
                f":{unquote(parts.password)}" if parts.password is not None else ""
            )
        db_name = parts.path.strip("/")
        if "/" in db_name:
            raise StoreFormatError(
                f"{uri}/{db_name}: a Milvus address names at most one database "
                "(http://host:19530/DB_NAME)."
            )
        return cls(uri=uri, db_name=db_name, token=token, given=given)

    @property
    def shown(self) -> str:
        """The address as printed: no credentials."""
        return f"{self.uri}/{self.db_name}" if self.db_name else self.uri

    def hide(self, message: str) -> str:
        """``message`` with the credentials (in any form this address was given) masked."""
        message = mask_url_in(message, self.given) if self.given else message
        return message.replace(self.token, "***") if self.token else message

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A MilvusClient on the server, closed at the end; errors with secrets masked."""
        pymilvus = pymilvus_module()
        try:
            client = pymilvus.MilvusClient(
                uri=self.uri, token=self.token, db_name=self.db_name, timeout=30
            )
        except Exception as exc:
            raise MigrationError(
                f"cannot connect to the Milvus server {self.shown}: "
                f"{self.hide(f'{type(exc).__name__}: {exc}')}. Check the address, that the "
                f"server runs, and its credentials (in the URL or {TOKEN_ENV})."
            ) from None
        try:
            yield client
        finally:
            client.close()


def state_dir() -> Path:
    """Where a server migration keeps its work directory (the journal of embedded rows)."""
    base = os.environ.get("VLLM_EMBED_MIGRATE_STATE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "vllm-embed",
        "migrate",
    )
    return Path(base)


class MilvusServerStore(MilvusStore):
    """Collections of a Milvus server read for migration; installs itself by aliases."""

    batch_rows = 10_000  # as many as the benchmark's ingest sends per insert
    can_drop_records = True

    def __init__(
        self,
        address: ServerAddress,
        anchor: Path,
        collections: list[MilvusCollection],
        readers: dict[str, str],
        pending: dict[str, str] | None = None,
        auto_ids: list[str] | None = None,
        finished: dict[str, str] | None = None,
        renamed: set[str] | None = None,
    ) -> None:
        self.address = address
        self.path = self.target = anchor
        self._readers = readers  # real collection name -> the name readers use
        #: a name whose switch a killed run began -> its backup (read as that name)
        self._pending = pending or {}
        #: an old collection whose switch a killed run finished -> where it is now
        self._finished = finished or {}
        #: of those, the ones whose new collection it renamed to the readers' name
        self._renamed = renamed or set()
        #: collections whose auto-id keys the new collection keeps (auto_id=False)
        self.auto_ids = auto_ids or []
        self.switched: list[str] = []
        names = [self._readers[c.name] for c in collections]
        self._hold(collections, f"Milvus server {address.shown}", names)

    @property
    def collections(self) -> list[str]:
        return [self._readers[c.name] for c in self._collections]

    def collection_views(self) -> list[PartView]:
        return [PartView(self._readers[c.name], c) for c in self._collections]

    def source_files(self) -> list[Path]:
        return [_snapshot_path(self.target)]

    def output_target(self, out: Path | None) -> Path:
        if out is not None:
            raise MigrationError(
                "--out does not apply to a Milvus server: the new collection is built beside "
                "the old one on the same server and switched in with aliases."
            )
        return self.target

    def new_name_of(self, plan: Plan, name: str) -> str | None:
        """Where the new collection of ``name`` is now: under the readers' name when the
        killed run renamed it in, else as the plan names it."""
        return self._readers[name] if name in self._renamed else plan.new_name(name)

    # -- writing -------------------------------------------------------------------------
    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter:
        """The new collections filled while the rows are embedded (`ServerWriter`)."""
        plan = Plan(out)
        return ServerWriter(
            self,
            self.address.client,
            plan,
            self._readers,
            partial(self.new_name_of, plan),
            keep,
            dim,
        )

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """Create and fill the new collections from ``rows``; resumable per batch (`Plan`)."""
        writer = self.open_writer(out, keep, rows.dim)
        try:
            writer.begin()
            for block in rows.blocks():
                writer.add(block)
            writer.finish()
        finally:
            writer.abort()

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        plan = Plan(path)
        where = f"new collection on {self.address.shown}"
        kept = set(ids)
        prefix = len(self._collections) > 1
        with self.address.client() as client:
            for c in self._collections:
                new = self.new_name_of(plan, c.name)
                if new is None or not client.has_collection(new):
                    raise StoreFormatError(f"{where}: the new collection of {c.name!r} is missing")
                keep = [
                    n
                    for n, i in enumerate(c.ids)
                    if (f"{c.name}/{i}" if prefix else i) in kept  # as `_join_parts` names them
                ]
                if count_rows(client, new) != len(keep):
                    raise StoreFormatError(
                        f"{where}: {new!r} counts {count_rows(client, new)} rows, "
                        f"expected {len(keep)}"
                    )
                check_collection(where, client, c, keep, dim, self._space, name=new, aliases=False)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        plan = Plan(path)
        with self.address.client() as client:
            for c in self._collections:
                new = self.new_name_of(plan, c.name) or c.name
                search_check(client, c, new, f"{new!r} on {self.address.shown}")
        return "pymilvus"

    # -- switching -------------------------------------------------------------------------
    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Move the aliases to the verified new collections (see the module docstring)."""
        plan = Plan(new)
        with self.address.client() as client:
            for c in self._collections:
                made = self.new_name_of(plan, c.name)
                reader = self._readers[c.name]
                if made is None:  # verified just before: only a removed work dir does this
                    raise MigrationError(f"{new}: no new collection recorded for {reader!r}")
                pending = self._pending.get(c.name)
                backup = self._finished.get(c.name)
                if backup is None:
                    made, backup = switch(client, c.name, c.kind, c.dim, made, reader, pending)
                else:  # switched by the killed run: not again (an alias a kill left moves)
                    for alias in aliases_of(client, backup) if backup == c.name else []:
                        client.alter_alias(made, alias)
                    if c.name in self._renamed:  # renamed in; killed before its mark?
                        mark_done(client, backup, made)
                self.switched.append(
                    f"switched     {reader!r} -> collection {made!r} (dimension {c.dim} -> "
                    f"{self._space.dimension if self._space else '?'})"
                    + ("; the switch an interrupted run began is finished" if pending else "")
                    + ("; switched by the interrupted run" if c.name in self._finished else "")
                )
                if c.name in self.auto_ids:
                    self.switched.append(
                        f"keys         {reader!r} keeps its auto-id keys: the new collection "
                        f"has auto_id=False, so inserts must give {c.primary!r} (LangChain "
                        "Milvus: auto_id=False and ids=...)"
                    )
                self.switched.append(
                    f"backup       collection {backup!r} on {self.address.shown}; drop it "
                    f"when no longer needed: MilvusClient(uri).drop_collection({backup!r})"
                )
        return None

    def final_path(self, target: Path) -> Path:
        return target


# -- reading ----------------------------------------------------------------------------
def _snapshot_path(anchor: Path) -> Path:
    return anchor.with_name(anchor.name + ".source.json")


def read_milvus_server(
    text: str, *, collection: str | None = None, text_field: str | None = None
) -> MilvusServerStore:
    """Read the collections of a Milvus server (only read; nothing is written there)."""
    address = ServerAddress.parse(text)
    with address.client() as client:
        try:
            return _read_server(address, client, collection, text_field)
        except (StoreFormatError, MigrationError):
            raise
        except Exception as exc:
            raise StoreFormatError(
                f"{address.shown}: pymilvus cannot read this Milvus server's collections "
                f"({address.hide(f'{type(exc).__name__}: {exc}')}). Nothing was written."
            ) from None


def _read_server(
    address: ServerAddress, client: Any, wanted: str | None, text_field: str | None
) -> MilvusServerStore:
    names = sorted(str(n) for n in client.list_collections())
    aliases = {c: aliases_of(client, c) for c in names}
    alias_of = {a: c for c, found in aliases.items() for a in found}
    readers = {c: _reader_name(c, aliases[c]) for c in names}
    pending = pending_switches(client, names, aliases, address.shown, wanted)
    if wanted is not None:
        real = alias_of.get(wanted, wanted)
        if real not in names and wanted not in pending:
            raise StoreFormatError(_not_found(address, wanted, names))
        if real in names:
            readers[real] = wanted if wanted in alias_of else readers[real]
        chosen = [real]
    else:
        chosen = [c for c in names if not _left_by_a_migration(c, aliases[c])]
        chosen = sorted(chosen + list(pending))
    if not chosen:
        raise StoreFormatError(f"{address.shown}: the database holds no collection.")
    readers.update({name: name for name in pending})
    # the readers' names are the same before and after a switch: so is the work dir
    anchor = state_dir() / _anchor_name(address, [readers[c] for c in chosen])
    finished = _finished_by_a_killed_run(address, client, names, aliases, anchor, chosen)
    for old, (new, _) in finished.items():  # (a collection renamed in: new == old)
        chosen[chosen.index(new)] = old
        readers[old] = readers[new]
    chosen.sort()
    source = {**pending, **{old: where for old, (_, where) in finished.items()}}
    collections = []
    auto_ids = []
    start = 0
    for name in chosen:
        # a name whose switch a kill interrupted, or finished in a run killed before
        # its end, is read where its old collection is, as it was read before the kill
        # (so the run's work directory resumes)
        c = _read_collection(address.shown, client, source.get(name, name), text_field, server=True)
        c.name = name
        strip_mark(c.description)
        if _keep_auto_id_keys(c):
            auto_ids.append(name)
        c.start = start
        start += len(c.rows)
        collections.append(c)
    anchor.parent.mkdir(parents=True, exist_ok=True)
    _write_snapshot(_snapshot_path(anchor), address, collections, readers)
    return MilvusServerStore(
        address,
        anchor,
        collections,
        {c: readers[c] for c in chosen},
        {name: backup for name, backup in pending.items() if name in chosen},
        auto_ids,
        {old: where for old, (_, where) in finished.items()},
        {old for old, (new, _) in finished.items() if new == old},
    )


def _finished_by_a_killed_run(
    address: ServerAddress,
    client: Any,
    names: list[str],
    aliases: dict[str, list[str]],
    anchor: Path,
    chosen: list[str],
) -> dict[str, tuple[str, str]]:
    """Old collection -> (its new collection, where the old one is now) for every chosen
    collection that is the new collection of a killed run whose switch was finished (the
    run's work dir is unfinished): behind the old one's alias
    (`_milvus_switch.finished_switches`), or renamed to the old one's name, which is then
    both (`_milvus_switch.renamed_in`: LlamaIndex). Empty when there is no such run: a
    completed migration's new collections are read as they are."""
    work = work_dir_for(anchor)
    if not (work / "manifest.json").is_file():
        return {}
    plan = Plan(work / OUTPUT)
    made = {old: new for old, new in plan.made().items() if new in chosen and old not in chosen}
    found = finished_switches(client, names, aliases, made, address.shown, work)
    finished = {old: (made[old], where) for old, where in found.items()}
    mine = {old: new for old, new in plan.made().items() if old in chosen}
    renamed = renamed_in(client, names, mine, plan.made_ids(), address.shown, work)
    return {**finished, **{old: (old, backup) for old, backup in renamed.items()}}


def _keep_auto_id_keys(c: MilvusCollection) -> bool:
    """An auto-id collection (keys made by the server): Milvus before 2.5 takes no given
    key into one (``insert`` / ``upsert`` fail), so the new collection is described with
    ``auto_id=False`` on the same primary-key field and gets the old keys; the rest of
    the schema is unchanged. True if ``c`` was one."""
    if not c.description.get("auto_id"):
        return False
    c.description["auto_id"] = False
    for f in c.description["fields"]:
        f.pop("auto_id", None)
    return True


def _left_by_a_migration(name: str, aliases: list[str]) -> bool:
    """A backup (``*_vllm_bak_d<dim>``), or a collection an earlier migration made that no
    alias points at any more (the backup of an alias flip, or a half-filled one)."""
    return bool(BACKUP.search(name) or (_GENERATION.search(name) and not aliases))


def _reader_name(name: str, aliases: list[str]) -> str:
    """The alias ``A`` of ``A_vllm_d<dim>[_n]`` (an earlier migration's), else ``name``."""
    for alias in aliases:
        if name.startswith(f"{alias}{MIGRATED}"):
            return alias
    return name


def _not_found(address: ServerAddress, wanted: str, names: list[str]) -> str:
    backups = [n for n in names if n.startswith(f"{wanted}_vllm_bak_d")]
    message = f"{address.shown}: no collection or alias {wanted!r}; collections: " + (
        ", ".join(names) or "none"
    )
    if backups:
        message += (
            f". {backups[-1]!r} is the backup of an earlier migration of {wanted!r}, but no "
            "interrupted switch waits for it (its mark is done or missing, or its new "
            "collection is gone or aliased), so nothing is resumed: point the alias at the "
            f"new collection (MilvusClient(uri).create_alias('{wanted}{MIGRATED}<dim>', "
            f"{wanted!r})) or rename the backup back."
        )
    return message


def _anchor_name(address: ServerAddress, readers: list[str]) -> str:
    key = hashlib.sha256(f"{address.shown}|{'|'.join(sorted(readers))}".encode()).hexdigest()
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", address.uri.split("://", 1)[1])
    return f"milvus-{host}-{key[:12]}"


def _write_snapshot(
    path: Path, address: ServerAddress, collections: list[MilvusCollection], readers: dict[str, str]
) -> None:
    """What the resume fingerprint hashes for a server: the collections as read (name,
    schema, row count, a hash of the keys). Rewritten only when it changed."""
    document = {
        "server": address.shown,
        "collections": [
            {
                "name": c.name,
                "reader": readers[c.name],
                "fields": repr(c.description.get("fields")),
                "rows": len(c.rows),
                "keys": hashlib.sha256(repr(c.ids).encode()).hexdigest(),
            }
            for c in collections
        ],
    }
    text = json.dumps(document, sort_keys=True)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    path.write_text(text, encoding="utf-8")
