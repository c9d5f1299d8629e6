"""How far a directory store's copy got (Chroma, Qdrant, LanceDB, Milvus Lite): journaled
beside the copy in the work directory, so a killed run goes on instead of starting again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CopyProgress"]


class CopyProgress:
    """How far the filling of the copy ``out`` got, in ``out.progress.json`` beside it.

    ``copied``: the copy of the original is complete. ``created``: collections (tables)
    already created again in the copy; their records were added in order, one atomic
    add per batch, so the collection's count says where to go on. A run killed while
    filling a large collection resumes there instead of from scratch.
    """

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".progress.json")
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._state: dict[str, Any] = loaded if isinstance(loaded, dict) else {}

    def copied(self) -> bool:
        return bool(self._state.get("copied"))

    def created(self, name: str) -> bool:
        return name in self._state.get("created", [])

    def reset(self) -> None:
        self._state = {}
        self.path.unlink(missing_ok=True)

    def mark_copied(self) -> None:
        self._state = {"copied": True, "created": []}
        self._save()

    def mark_created(self, name: str) -> None:
        self._state.setdefault("created", []).append(name)
        self._save()

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
