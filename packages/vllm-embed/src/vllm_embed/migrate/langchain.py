"""LangChain ``InMemoryVectorStore.dump(path)`` files.

Layout (``json.dump(dumpd(store), f, indent=2)``)::

    {doc_id: {"id": doc_id, "vector": [floats], "text": "...", "metadata": {...}}, ...}

LangChain embeds ``Document.page_content``, stored as ``text``. The migrated file
keeps ids, text, metadata and key order, with the new vectors, written with the same
``indent=2`` so ``InMemoryVectorStore.load`` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import StoreFormatError

from ._jsonio import load_json
from ._store import F32Matrix, Rows, Store, check_rows, sample_from

__all__ = ["LangChainStore", "looks_like_langchain_dump", "read_langchain"]

_FIELDS = {"id", "vector", "text"}


def looks_like_langchain_dump(document: Any) -> bool:
    """A non-empty object whose values all carry ``id``, ``vector`` and ``text``."""
    return (
        isinstance(document, dict)
        and bool(document)
        and all(isinstance(v, dict) and v.keys() >= _FIELDS for v in document.values())
    )


class LangChainStore(Store):
    """A LangChain in-memory vector store dump read for migration."""

    def __init__(self, path: Path, document: dict[str, dict[str, Any]]) -> None:
        self.path = self.target = path
        self.format = "langchain InMemoryVectorStore dump"
        self.text_field = "text"
        self._document = document
        self.ids = list(document)
        self.texts = [v["text"] if isinstance(v["text"], str) else None for v in document.values()]
        dims = {len(v["vector"]) for v in document.values() if isinstance(v["vector"], list)}
        if len(dims) > 1 or any(not isinstance(v["vector"], list) for v in document.values()):
            raise StoreFormatError(
                f"{path}: vectors of several dimensions {sorted(dims)} (or non-list vectors) in "
                "one store; restore the file from a backup or rebuild it."
            )
        self.old_dim = dims.pop() if dims else None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        values = list(self._document.values())
        return sample_from(self.texts, lambda i: values[i]["vector"], count)

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        records = list(self._document.items())
        migrated = {}
        for i, row in zip(keep, rows.rows(), strict=True):
            key, value = records[i]
            migrated[key] = {k: (row.tolist() if k == "vector" else v) for k, v in value.items()}
        with open(out, "w", encoding="utf-8") as f:
            json.dump(migrated, f, indent=2)

    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        document = load_json(path)
        if not isinstance(document, dict) or list(document) != list(ids):
            raise StoreFormatError(f"written file {path}: document ids differ from the source")
        vectors = [v.get("vector") for v in document.values()]
        if any(not isinstance(v, list) or len(v) != dim for v in vectors):
            raise StoreFormatError(f"written file {path}: a vector does not have dimension {dim}")
        if vectors:
            check_rows(np.asarray(vectors, dtype=np.float64), f"written file {path}", 0)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        try:
            from langchain_core.embeddings import DeterministicFakeEmbedding
            from langchain_core.vectorstores import InMemoryVectorStore
        except ImportError:
            return None
        store = InMemoryVectorStore.load(str(path), DeterministicFakeEmbedding(size=dim))
        if list(store.store) != list(ids) or any(
            len(v["vector"]) != dim for v in store.store.values()
        ):
            raise StoreFormatError(f"langchain-core loaded an inconsistent store from {path}")
        return "langchain-core"


def read_langchain(path: Path, document: Any | None = None) -> LangChainStore:
    """Read an ``InMemoryVectorStore.dump`` file (``document`` if already parsed)."""
    if document is None:
        document = load_json(path)
    if not looks_like_langchain_dump(document):
        raise StoreFormatError(
            f"{path} is not a LangChain InMemoryVectorStore dump "
            "(expected {id: {id, vector, text, metadata}})."
        )
    return LangChainStore(path, document)
