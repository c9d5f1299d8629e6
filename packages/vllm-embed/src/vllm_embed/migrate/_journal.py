"""The work directory that makes a migration resumable.

``<output>.vllm-embed-migrate/`` sits next to the file being produced (same file
system, so the final ``os.replace`` is atomic) and holds:

- ``manifest.json``: the fingerprint of the source and settings, the new dimension,
  the number of records and the chunk size. A run whose fingerprint differs refuses
  to touch the directory.
- ``vectors.f32``: the new vectors, raw little-endian float32, row ``i`` at byte
  ``i * dim * 4``, written chunk by chunk and fsynced.
- ``journal.log``: one line per finished chunk, ``index start end truncated crc32``,
  appended and fsynced only *after* the chunk's rows are durable. A torn last line
  or a chunk whose rows fail their CRC is simply embedded again.
- ``output.tmp``: the assembled new store before it is verified and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import MigrationError

from ._jsonio import fsync_dir

__all__ = ["OUTPUT", "ChunkDone", "WorkDir", "work_dir_for"]

SUFFIX = ".vllm-embed-migrate"
#: The new store inside a work dir, before it is verified and installed.
OUTPUT = "output.tmp"


def work_dir_for(output: Path) -> Path:
    """``/data/database.json`` -> ``/data/database.json.vllm-embed-migrate``."""
    return output.with_name(output.name + SUFFIX)


@dataclass(frozen=True)
class ChunkDone:
    """A finished chunk as recorded in the journal."""

    index: int
    start: int
    end: int
    truncated: int


class WorkDir:
    """Manifest + raw vector file + journal of one migration."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.dim: int = int(manifest["new_dim"])
        self.count: int = int(manifest["records"])
        self.chunk_rows: int = int(manifest["chunk_rows"])
        self.vectors = path / "vectors.f32"
        self.journal = path / "journal.log"
        self.output = path / OUTPUT

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def find(cls, path: Path, fingerprint: str) -> WorkDir | None:
        """The existing work dir for this fingerprint, None if there is none.

        Raises `MigrationError` when the directory belongs to another source or settings.
        """
        manifest_path = path / "manifest.json"
        if not path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or "fingerprint" not in manifest:
            raise MigrationError(
                f"{path} exists but has no readable manifest: it is not a vllm-embed migration "
                "work directory, or it was damaged. Remove it and run the command again."
            )
        if manifest["fingerprint"] != fingerprint:
            raise MigrationError(
                f"{path} holds an unfinished migration of a different source or with different "
                f"settings (it was started for {manifest.get('source')!r} with model "
                f"{manifest.get('model')!r}, dimensions {manifest.get('dimensions')!r}). Run that "
                "same command again to finish it, or remove the directory to start over."
            )
        return cls(path, manifest)

    @classmethod
    def create(cls, path: Path, manifest: dict[str, Any]) -> WorkDir:
        """Create a fresh work dir with its manifest and a pre-sized vector file."""
        path.mkdir(parents=True)
        work = cls(path, manifest)
        tmp = path / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path / "manifest.json")
        with open(work.vectors, "wb") as f:
            f.truncate(work.count * work.dim * 4)
            os.fsync(f.fileno())
        work.journal.touch()
        fsync_dir(path)
        fsync_dir(path.parent)
        return work

    # -- journal -------------------------------------------------------------------------
    def completed(self) -> dict[int, ChunkDone]:
        """Chunks recorded in the journal whose rows still match their CRC."""
        done: dict[int, ChunkDone] = {}
        try:
            lines = self.journal.read_text(encoding="utf-8").splitlines()
        except OSError:
            return done
        with open(self.vectors, "rb") as f:
            for line in lines:
                parts = line.split()
                if len(parts) != 5 or not all(p.isdigit() for p in parts):
                    continue  # a torn last line
                index, start, end, truncated, crc = (int(p) for p in parts)
                if not 0 <= start < end <= self.count:
                    continue
                f.seek(start * self.dim * 4)
                if zlib.crc32(f.read((end - start) * self.dim * 4)) == crc:
                    done[index] = ChunkDone(index, start, end, truncated)
        return done

    def record_chunk(
        self, index: int, start: int, vectors: npt.NDArray[np.float32], truncated: int
    ) -> None:
        """Write rows ``start..`` durably, then journal the chunk as finished."""
        data = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        fd = os.open(self.vectors, os.O_WRONLY)
        try:
            os.pwrite(fd, data, start * self.dim * 4)
            os.fsync(fd)
        finally:
            os.close(fd)
        end = start + len(vectors)
        line = f"{index} {start} {end} {truncated} {zlib.crc32(data)}\n"
        with open(self.journal, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """Delete the work dir (after the new store is in place)."""
        shutil.rmtree(self.path, ignore_errors=True)
        fsync_dir(self.path.parent)
