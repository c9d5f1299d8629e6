"""The switch of a Milvus server migration, and the end of one that a kill interrupted.

`switch` moves the readers of an old collection onto its verified new one: every alias
of the old collection moves (``alter_alias``, atomic). When readers use the old
collection's own name (the first migration; every migration of a LlamaIndex collection),
the old collection is renamed to its backup name ``NAME_vllm_bak_d<old dim>`` and the new
one then takes ``NAME`` (an alias; for LlamaIndex a second rename). Just before that
rename the old collection is marked (collection property `MARK`: the name, the new
collection, how the switch ends, ``done: false``); when the switch is over the mark says
``done: true``.

A run killed between the two calls leaves no collection or alias ``NAME``, a backup whose
mark waits for ``NAME`` and the new collection it names, without aliases.
`pending_switches` finds exactly that state (two backups waiting for one name is
ambiguous: `MigrationError`, nothing changed); the server reader then reads the backup
as the collection ``NAME`` was, so the same command resumes its work directory (nothing
is embedded again), verifies the new collection again and `switch` only ends the switch.

A whole-database run switches its collections one by one: killed after collection A's
switch and before (or during) B's, readers of A find A's new collection already.
`finished_switches` reads the killed run's plan (old collection -> the new one it made)
and, for each new collection that now has an alias, finds the old one where the switch
left it: under its own name without alias (an alias move), or as the one backup whose
done mark names the alias and that new collection (a first migration's rename). The
server reader then reads that old collection as the run read it before its switch, so
the same command resumes the run's work directory and A is not switched again. Any
other state (the old collection gone, several backups) is not guessed: `MigrationError`.

A LlamaIndex collection's finished switch leaves no alias: its new collection was renamed
to ``NAME``. It is known by its Milvus collection id, which a rename keeps: the run's plan
records the id of each new collection it made, the marks of a rename switch record it too
(``made``: the name it was made under, ``made_id``). `renamed_in` finds, for each old
collection of the plan whose new collection is gone under its made name, the one backup
whose mark names ``NAME`` and that id, and only when ``NAME`` now has that id (a kill
before the mark said ``done`` is covered too); ``NAME`` is then read from that backup.
A mark naming the id while ``NAME`` is another collection, or several such backups, is
not guessed: `MigrationError`. Without an unfinished run nothing of this applies: a
completed migration's new collections are the source of the next one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vllm_embed._errors import MigrationError

__all__ = [
    "MARK",
    "collection_id",
    "finished_switches",
    "mark_done",
    "pending_switches",
    "renamed_in",
    "strip_mark",
    "switch",
]

#: Collection property of an old collection being (or having been) switched away from.
MARK = "vllm_embed_switch"
#: A backup's name: ``NAME_vllm_bak_d<dim>`` (``_2``... when taken).
BACKUP = re.compile(r"_vllm_bak_d\d+(_\d+)?$")
#: LlamaIndex's MilvusVectorStore looks its collection up in ``list_collections()``, which
#: lists no alias (it would try to create the collection again): renamed, not aliased.
LLAMAINDEX = "LlamaIndex MilvusVectorStore"


def aliases_of(client: Any, name: str) -> list[str]:
    """A server's aliases of collection ``name`` (from its description: Milvus 2.3's
    ``list_aliases`` fails outside the default database)."""
    return list(client.describe_collection(name).get("aliases") or [])


def collection_id(client: Any, name: str) -> int | None:
    """The server's id of collection ``name``: it stays the same through renames."""
    got = client.describe_collection(name).get("collection_id")
    return int(got) if got is not None else None


def free_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... the first not in ``taken`` (then taken)."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _mark_of(description: dict[str, Any]) -> dict[str, Any] | None:
    raw = (description.get("properties") or {}).get(MARK)
    try:
        mark = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def strip_mark(description: dict[str, Any]) -> None:
    """Drop the mark from a collection's description as read: a collection migrated
    (again) is created and checked without it."""
    properties = description.get("properties")
    if isinstance(properties, dict):
        properties.pop(MARK, None)


def _set_mark(client: Any, collection: str, **mark: Any) -> None:
    client.alter_collection_properties(collection, {MARK: json.dumps(mark, sort_keys=True)})


def mark_done(client: Any, backup: str, now: str) -> None:
    """Say ``done`` in ``backup``'s mark (a kill came between the last call of its switch
    and the mark), the new collection being ``now``."""
    mark = _mark_of(client.describe_collection(backup))
    if mark is not None and not mark.get("done"):
        _set_mark(client, backup, **{**mark, "new": now, "done": True})


def pending_switches(
    client: Any,
    names: list[str],
    aliases: dict[str, list[str]],
    shown: str,
    wanted: str | None = None,
) -> dict[str, str]:
    """Names whose switch a kill interrupted -> the backup to read them from (only
    ``wanted``'s, when given).

    Such a name is neither a collection nor an alias; one backup's mark waits for it
    (not done) and names a new collection that exists and has no alias.
    """
    taken = set(names) | {a for found in aliases.values() for a in found}
    waiting: dict[str, list[str]] = {}
    for backup in names:
        if not BACKUP.search(backup):
            continue
        mark = _mark_of(client.describe_collection(backup))
        if mark is None or mark.get("done") or mark.get("name") in taken:
            continue
        if wanted is not None and mark.get("name") != wanted:
            continue
        new = mark.get("new")
        if new in names and not aliases.get(str(new)):
            waiting.setdefault(str(mark.get("name")), []).append(backup)
    for name, backups in waiting.items():
        if len(backups) > 1:
            raise MigrationError(
                f"{shown}: collection {name!r} is missing and several backups wait for an "
                f"interrupted switch to it ({', '.join(sorted(backups))}); the migration will "
                "not guess which one. Rename the right backup back to "
                f"{name!r} (MilvusClient(uri).rename_collection(BACKUP, {name!r})) and run "
                "the command again; nothing was changed."
            )
    return {name: backups[0] for name, backups in waiting.items()}


def finished_switches(
    client: Any,
    names: list[str],
    aliases: dict[str, list[str]],
    made: dict[str, str],
    shown: str,
    work: Path,
) -> dict[str, str]:
    """The switches an interrupted run finished: its old collection -> where that old
    collection is now (itself, or its backup), for every new collection in ``made`` (the
    run's plan: old collection -> the new collection it made) that has an alias now.

    ``work`` is the run's work directory (named in the error when the state is not one
    a switch leaves: the migration will not guess its source)."""
    found: dict[str, str] = {}
    for old, new in made.items():
        if new not in names or not aliases.get(new):
            continue  # not switched (yet): the run resumes as it is
        if old in names:  # readers used an alias: it moved, the old collection stayed
            found[old] = old
            continue
        backups = [
            b
            for b in names
            if BACKUP.search(b)
            and (mark := _mark_of(client.describe_collection(b))) is not None
            and mark.get("done")
            and (mark.get("name"), mark.get("new")) == (old, new)
        ]
        if len(backups) != 1:
            raise MigrationError(
                f"{shown}: {new!r} is the new collection of {old!r} that an interrupted "
                f"migration made and switched in (its work directory: {work}), but "
                + (
                    f"several backups are marked as {old!r} switched to it "
                    f"({', '.join(sorted(backups))})"
                    if backups
                    else f"{old!r} is neither a collection nor a backup marked as switched to it"
                )
                + "; the migration will not guess which collection was its source. Nothing "
                "was changed. Remove that work directory to migrate the collections as "
                f"they are now ({new!r} is then read as the source of {old!r})."
            )
        found[old] = backups[0]
    return found


def renamed_in(
    client: Any,
    names: list[str],
    made: dict[str, str],
    made_ids: dict[str, int],
    shown: str,
    work: Path,
) -> dict[str, str]:
    """The rename switches (LlamaIndex) an interrupted run finished: its old collection ->
    the backup it was renamed to, for every old collection in ``made`` (the run's plan: old
    collection -> the new collection it made, whose ids are ``made_ids``) whose name is now
    that new collection (the same id; its made name is gone).

    ``work`` is the run's work directory (named in the error when a backup's mark says
    the run renamed its new collection in but the name is another collection now)."""
    found: dict[str, str] = {}
    for old, new in made.items():
        made_id = made_ids.get(old)
        if made_id is None or new in names or old not in names:
            continue  # not renamed in: the run resumes as it is
        backups = [
            b
            for b in names
            if BACKUP.search(b)
            and (mark := _mark_of(client.describe_collection(b))) is not None
            and (mark.get("name"), mark.get("finish"), mark.get("made_id"))
            == (old, "rename", made_id)
        ]
        if not backups:
            continue  # no switch of this run left a mark: ``old`` is what it read
        if len(backups) == 1 and collection_id(client, old) == made_id:
            found[old] = backups[0]
            continue
        raise MigrationError(
            f"{shown}: an interrupted migration (its work directory: {work}) made {new!r} "
            f"for {old!r} and renamed it to {old!r}, but "
            + (
                f"several backups are marked as {old!r} switched to it "
                f"({', '.join(sorted(backups))})"
                if len(backups) > 1
                else f"{old!r} is another collection now (not the one it made; its old "
                f"collection is {backups[0]!r})"
            )
            + "; the migration will not guess which collection was its source. Nothing was "
            "changed. Remove that work directory to migrate the collections as they are now "
            f"({old!r} is then read as the source)."
        )
    return found


def switch(
    client: Any,
    old: str,
    kind: str | None,
    dim: int,
    made: str,
    reader: str,
    pending_backup: str | None = None,
) -> tuple[str, str]:
    """Switch the readers of ``old`` (read by them as ``reader``) to ``made``; with
    ``pending_backup``, end the switch a killed run began (``old`` is that backup now).
    Returns (the collection readers find now, the backup)."""
    finish = "rename" if kind == LLAMAINDEX else "alias"
    # a new collection renamed to ``reader`` is known by its id afterwards (`renamed_in`)
    renamed = {"made": made, "made_id": collection_id(client, made)} if finish == "rename" else {}
    if pending_backup is None:
        for alias in aliases_of(client, old):
            client.alter_alias(made, alias)
        if reader != old:  # readers use an alias: moving it was the whole switch
            return made, old
        backup = free_name(f"{old}_vllm_bak_d{dim}", set(client.list_collections()))
        _set_mark(client, old, name=reader, new=made, finish=finish, done=False, **renamed)
        client.rename_collection(old, backup)
    else:
        backup = pending_backup
    if finish == "rename":
        client.rename_collection(made, reader)
        made = reader
    else:
        client.create_alias(made, reader)
    _set_mark(client, backup, name=reader, new=made, finish=finish, done=True, **renamed)
    return made, backup
