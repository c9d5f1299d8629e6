"""What the database-directory formats share (Chroma, LanceDB, Milvus Lite; Qdrant uses
`swap_directory`): the new database is built in a copy of the directory by the store's own
library, verified, then exchanged with the original, which is kept as
``NAME.d<old dim>.bak``."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._jsonio import fsync_dir
from ._space import EmbeddingSpace
from ._store import F32Matrix, Store

__all__ = [
    "DirectoryStore",
    "PartView",
    "SampledPart",
    "exchange_directories",
    "parts_format",
    "parts_text_field",
    "swap_directory",
]


def exchange_directories(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if absent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_directory(new: Path, target: Path, backup: Path | None) -> Path | None:
    """Put the verified directory ``new`` at ``target``. With a ``backup`` path the
    original becomes it (exchanged atomically with ``renameat2`` where the kernel can);
    without one, ``target`` does not exist yet (``--out``). Returns the backup."""
    if backup is None:
        os.rename(new, target)
        fsync_dir(target.parent)
        return None
    if exchange_directories(new, target):
        os.rename(new, backup)  # `new` now holds the original
    else:
        os.rename(target, backup)
        os.rename(new, target)
    fsync_dir(target.parent)
    fsync_dir(new.parent)
    return backup


class SampledPart:
    """A part of a directory store that keeps a few (text, stored vector) pairs read with it
    (``sample``, or None) for ``doctor --store``'s probe."""

    sample: tuple[list[str], F32Matrix] | None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self.sample is None:
            return None
        texts, matrix = self.sample
        return texts[:count], matrix[:count]


@dataclass(frozen=True)
class PartView:
    """One part of a `DirectoryStore` as ``doctor --store`` judges it: its own recorded
    space and probe sample."""

    #: What ``--collection`` takes to pick it.
    selector: str
    part: Any

    def recorded_space(self) -> EmbeddingSpace | None:
        return self.part.recorded_space()  # type: ignore[no-any-return]

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        return self.part.sample_vectors(count)  # type: ignore[no-any-return]


def parts_format(store: str, kinds: Iterable[str | None], noun: str, names: Iterable[str]) -> str:
    """The format line of a store of parts: ``LanceDB (LangChain LanceDB; table docs, notes)``
    (the parts' kinds, when known, then which parts)."""
    inner = "; ".join([*sorted({k for k in kinds if k}), f"{noun} {', '.join(names)}"])
    return f"{store} ({inner})"


def parts_text_field(
    fields: Iterable[str], kinds: Iterable[str | None], llamaindex_kind: str
) -> str:
    """Where the parts' text comes from (``text / page_content``), saying so when LlamaIndex
    node metadata is embedded with it (a part of kind ``llamaindex_kind``)."""
    text = " / ".join(sorted(set(fields)))
    if llamaindex_kind in set(kinds):
        text += " (+ LlamaIndex node metadata, as LlamaIndex embeds it)"
    return text


class DirectoryStore(Store):
    """A store that is a whole directory, replaced by an exchange of directories.

    Its parts (``_parts``: Chroma collections, LanceDB tables, Milvus Lite collections)
    each have a ``sample`` (or None), ``recorded_space()`` and ``sample_vectors(count)``.
    The store is their concatenation: `_join_parts` joins parts that have a ``name``,
    ``ids``, ``texts`` and ``dim``, ids prefixed with the part's name when there are
    several (Chroma joins its collections itself, by label and its text rule).
    """

    installs_itself = True

    @property
    def _parts(self) -> Sequence[Any]:
        raise NotImplementedError

    def _join_parts(self) -> None:
        """``old_dim``, ``ids`` and ``texts`` of the whole store, from its parts."""
        parts = self._parts
        dims = {p.dim for p in parts}
        self.old_dim = min(dims) if dims else None
        prefix = len(parts) > 1
        self.ids = [f"{p.name}/{i}" if prefix else i for p in parts for i in p.ids]
        self.texts = [text for p in parts for text in p.texts]

    @property
    def collections(self) -> list[str]:
        """The migrated parts (``--collection`` picks one)."""
        return [p.name for p in self._parts]

    def recorded_space(self) -> EmbeddingSpace | None:
        for p in self._parts:
            space = p.recorded_space()
            if space is not None:
                return space  # type: ignore[no-any-return]
        return None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        for p in self._parts:
            if p.sample is not None:
                return p.sample_vectors(count)  # type: ignore[no-any-return]
        return None

    def source_files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    def space_anchor(self, target: Path) -> Path:
        return target

    def backup_path(self) -> Path:
        """``lancedb`` -> ``lancedb.d384.bak`` (first free name)."""
        dim = f"d{self.old_dim}" if self.old_dim is not None else "dunknown"
        candidate = self.path.with_name(f"{self.path.name}.{dim}.bak")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.{dim}.bak{n}")
            n += 1
        return candidate

    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the verified directory ``new`` at ``target``; the original becomes the
        backup (see :func:`swap_directory`)."""
        return swap_directory(new, target, self.backup_path() if in_place else None)
