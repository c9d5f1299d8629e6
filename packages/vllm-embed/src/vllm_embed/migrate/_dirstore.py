"""What the database-directory formats share (LanceDB, Milvus Lite): the new database is
built in a copy of the directory by the store's own library, verified, then exchanged
with the original, which is kept as ``NAME.d<old dim>.bak`` (as for Chroma)."""

from __future__ import annotations

import os
from pathlib import Path

from ._jsonio import fsync_dir
from ._store import Store
from .chroma import _exchange

__all__ = ["DirectoryStore"]


class DirectoryStore(Store):
    """A store that is a whole directory, replaced by an exchange of directories."""

    installs_itself = True

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
        backup (exchanged atomically with ``renameat2`` where the kernel can)."""
        if not in_place:
            os.rename(new, target)
            fsync_dir(target.parent)
            return None
        backup = self.backup_path()
        if _exchange(new, target):
            os.rename(new, backup)  # `new` now holds the original
        else:
            os.rename(target, backup)
            os.rename(new, target)
        fsync_dir(target.parent)
        fsync_dir(new.parent)
        return backup
