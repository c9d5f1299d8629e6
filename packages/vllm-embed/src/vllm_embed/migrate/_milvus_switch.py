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
"""

from __future__ import annotations

import json
import re
from typing import Any

from vllm_embed._errors import MigrationError

__all__ = ["MARK", "pending_switches", "strip_mark", "switch"]

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
    if pending_backup is None:
        for alias in aliases_of(client, old):
            client.alter_alias(made, alias)
        if reader != old:  # readers use an alias: moving it was the whole switch
            return made, old
        backup = free_name(f"{old}_vllm_bak_d{dim}", set(client.list_collections()))
        _set_mark(client, old, name=reader, new=made, finish=finish, done=False)
        client.rename_collection(old, backup)
    else:
        backup = pending_backup
    if finish == "rename":
        client.rename_collection(made, reader)
        made = reader
    else:
        client.create_alias(made, reader)
    _set_mark(client, backup, name=reader, new=made, finish=finish, done=True)
    return made, backup
