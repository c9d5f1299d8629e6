"""`ChromaStore`: a Chroma directory as the migration engine sees it (ids, texts, old
dimension), written in a copy, verified, and exchanged with the original."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._copy_progress import CopyProgress
from .._dirstore import DirectoryStore, PartView
from .._jsonio import fsync_file
from .._space import EmbeddingSpace
from .._store import Rows
from ._client import still_open
from ._collection import Collection, describe
from ._verify import check_queries, check_written
from ._write import create_again, fill

#: The package's logger (``vllm_embed.migrate.chroma``).
logger = logging.getLogger(__package__)


class ChromaStore(DirectoryStore):
    """A Chroma persistent directory read for migration (every collection, or one)."""

    #: Most records per ``collection.add`` (chromadb's own limit can only lower it).
    batch_cap = 4096

    def __init__(
        self,
        path: Path,
        collections: list[Collection],
        untouched: dict[tuple[str, str, str], int],
    ) -> None:
        self.path = self.target = path
        self._collections = collections
        self._untouched = untouched  # other collections: (tenant, database, name) -> count
        self._space: EmbeddingSpace | None = None
        self.format, self.text_field = describe(collections)
        dims = {c.dimension for c in collections if c.dimension is not None}
        self.old_dim = min(dims) if dims else None
        prefix = len(collections) > 1
        self.ids = [f"{c.label}/{i}" if prefix else i for c in collections for i in c.ids]
        self.texts = [text for c in collections for text in c.texts()]

    @property
    def _parts(self) -> list[Collection]:
        return self._collections

    def collection_views(self) -> list[PartView]:
        """Each collection read, with its own recorded space and probe sample (for
        ``doctor --store``, which judges the collections one by one from one read)."""
        return [PartView(s, c) for s, c in zip(self.collections, self._collections, strict=True)]

    @property
    def collections(self) -> list[str]:
        """The migrated collections, as ``--collection`` picks each of them: the label, or
        ``TENANT/DATABASE/NAME`` when the plain name is also used in another tenant or
        database of the directory."""
        names = [c.name for c in self._collections] + [k[2] for k in self._untouched]
        return [
            c.label
            if "/" in c.label or names.count(c.name) == 1
            else "/".join((c.tenant, c.database, c.name))
            for c in self._collections
        ]

    # -- the embedding space -------------------------------------------------------------
    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`: the record goes into each migrated collection's metadata."""
        self._space = space

    # -- writing -------------------------------------------------------------------------
    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """Fill a copy of the directory; resumable per batch (see `CopyProgress`)."""
        progress = CopyProgress(out)
        if not progress.copied():  # no copy yet, or one a killed run left half made
            shutil.rmtree(out, ignore_errors=True)
            progress.reset()
            shutil.copytree(self.path, out, symlinks=True)
            progress.mark_copied()
        matrix = (
            np.memmap(rows.path, dtype="<f4", mode="r", shape=(rows.count, rows.dim))
            if rows.count
            else np.empty((0, rows.dim), dtype=np.float32)
        )
        fill(
            out,
            self._collections,
            set(keep),
            matrix,
            batch_cap=self.batch_cap,
            progress=progress,
            make=self._create_again,
        )
        del matrix
        for file in out.rglob("*"):
            if file.is_file():
                fsync_file(file)

    def _create_again(self, client: Any, c: Collection) -> Any:
        """Delete ``c`` in the copy and create it again with the same settings."""
        return create_again(client, c, self._space)

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        check_written(path, self._collections, self._untouched, self._space, ids, dim)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """A nearest-neighbour query per collection must return the queried record first."""
        check_queries(path, self._collections)
        return "chromadb"

    # -- installing ------------------------------------------------------------------------
    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the verified directory ``new`` at ``target``; the original becomes the
        backup (``NAME.d<old dim>.bak``)."""
        backup = super().install(new, target, in_place=in_place)
        if backup is not None and still_open(target):
            logger.warning(
                "a chromadb client in this process is still open on %s: it keeps reading the "
                "old files (now %s). Close it and open a new one to see the migrated store.",
                target,
                backup,
            )
        return backup
