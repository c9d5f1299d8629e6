"""LlamaIndex persist directories (``StorageContext.persist(persist_dir)``).

The vectors live in ``default__vector_store.json``::

    {"embedding_dict": {node_id: [floats]}, "text_id_to_ref_doc_id": {...},
     "metadata_dict": {...}}

and hold no text. The text is in ``docstore.json`` under
``docstore/data -> <node_id> -> __data__``. LlamaIndex does not embed the bare text
but ``node.get_content(MetadataMode.EMBED)``: the metadata not excluded from
embedding, formatted with the node's ``metadata_template`` / ``metadata_separator``
and ``text_template``, then the text. When ``llama-index-core`` is importable the
node is rebuilt from the docstore JSON with LlamaIndex's own ``json_to_doc`` and asked
for that content, so the result is exactly what LlamaIndex would embed. Without it,
`embed_text_fallback` reproduces ``TextNode.get_content(MetadataMode.EMBED)`` from
the stored fields (templates and excluded keys are stored per node); node types that
override ``get_content`` (image nodes, custom subclasses) are only exact with
llama-index-core installed.

Only ``default__vector_store.json`` is rewritten; ``docstore.json`` and the index
store do not depend on the dimension. With ``--drop-missing-text`` dropped nodes are
removed from the three maps of the vector store (they stay in the docstore).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import StoreFormatError

from ._jsonio import load_json
from ._store import F32Matrix, Rows, Store, check_rows, sample_from

__all__ = [
    "LLAMAINDEX_NODE_KEY",
    "LlamaIndexStore",
    "embed_text_fallback",
    "node_embed_text",
    "read_llamaindex",
]

#: Where LlamaIndex's vector stores (Chroma, Qdrant, LanceDB, Milvus, Postgres) keep a
#: node's JSON in its metadata.
LLAMAINDEX_NODE_KEY = "_node_content"
VECTOR_STORE_FILE = "default__vector_store.json"
DOCSTORE_FILE = "docstore.json"
_PER_NODE_MAPS = ("text_id_to_ref_doc_id", "metadata_dict")


def is_persist_dir(path: Path) -> bool:
    """A directory holding LlamaIndex's default vector store file."""
    return path.is_dir() and (path / VECTOR_STORE_FILE).is_file()


def embed_text_fallback(data: dict[str, Any]) -> str | None:
    """``TextNode.get_content(MetadataMode.EMBED)`` from a node's stored ``__data__``."""
    text = data.get("text")
    if not isinstance(text, str):
        resource = data.get("text_resource")
        text = resource.get("text") if isinstance(resource, dict) else None
    if not isinstance(text, str):
        return None
    metadata = data.get("metadata") or {}
    excluded = set(data.get("excluded_embed_metadata_keys") or [])
    template = data.get("metadata_template", "{key}: {value}")
    separator = data.get("metadata_separator", "\n")
    metadata_str = separator.join(
        template.format(key=key, value=str(value))
        for key, value in metadata.items()
        if key not in excluded
    ).strip()
    if not metadata_str:
        return text
    text_template = data.get("text_template", "{metadata_str}\n\n{content}")
    return str(text_template.format(content=text, metadata_str=metadata_str)).strip()


def node_embed_text(metadata: Mapping[str, Any] | None, text: str | None = None) -> str | None:
    """The text LlamaIndex embeds (``get_content(MetadataMode.EMBED)``) for a node a vector
    store keeps in its metadata: the node's JSON under ``_node_content``, its text in a
    column of its own (``text``: Chroma, LanceDB, Milvus, Postgres) or inside that JSON
    (``text=None``: Qdrant). Built by llama-index-core when it is importable, else by
    :func:`embed_text_fallback`. Without node JSON (or with JSON that cannot be read as a
    node) the answer is ``text``; a node without text gives None."""
    metadata = dict(metadata or {})
    raw = metadata.get(LLAMAINDEX_NODE_KEY)
    if not isinstance(raw, str) or not raw:
        return text
    try:
        from llama_index.core.schema import MetadataMode
        from llama_index.core.vector_stores.utils import metadata_dict_to_node
    except ImportError:
        pass
    else:
        try:
            node = metadata_dict_to_node(metadata, text=text)
            if text is None and not node.get_content(metadata_mode=MetadataMode.NONE):
                return None
            return str(node.get_content(metadata_mode=MetadataMode.EMBED))
        except Exception:  # JSON LlamaIndex cannot load as a node: as without one
            return text
    try:
        data = json.loads(raw)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if text is not None:
        data["text"] = text
        data.pop("text_resource", None)
    return embed_text_fallback(data)


def _llamaindex_embed_text() -> Callable[[dict[str, Any]], str | None] | None:
    """LlamaIndex's own node rebuild + get_content(EMBED), or None when not importable."""
    try:
        from llama_index.core.schema import MetadataMode
        from llama_index.core.storage.docstore.utils import json_to_doc
    except ImportError:
        return None

    def embed_text(entry: dict[str, Any]) -> str | None:
        node = json_to_doc(entry)
        content = node.get_content(metadata_mode=MetadataMode.EMBED)
        return content if isinstance(content, str) else None

    return embed_text


class LlamaIndexStore(Store):
    """A LlamaIndex persist directory read for migration."""

    def __init__(
        self,
        directory: Path,
        vectors: dict[str, Any],
        texts: dict[str, str | None],
        text_source: str,
    ) -> None:
        self.path = directory
        self.target = directory / VECTOR_STORE_FILE
        self.format = "llamaindex persist dir"
        self.text_field = text_source
        self._document = vectors
        embedding_dict: dict[str, list[float]] = vectors["embedding_dict"]
        self.ids = list(embedding_dict)
        self.texts = [texts.get(node_id) for node_id in self.ids]
        dims = {len(v) for v in embedding_dict.values()}
        if len(dims) > 1:
            raise StoreFormatError(
                f"{self.target}: vectors of several dimensions {sorted(dims)} in one store; "
                "LlamaIndex cannot query it either. Rebuild the index or restore a backup."
            )
        self.old_dim = dims.pop() if dims else None

    def source_files(self) -> list[Path]:
        return [self.target, self.path / DOCSTORE_FILE]

    def output_target(self, out: Path | None) -> Path:
        return self.target if out is None else out / VECTOR_STORE_FILE

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        vectors = self._document["embedding_dict"]
        return sample_from(self.texts, lambda i: vectors[self.ids[i]], count)

    def space_anchor(self, target: Path) -> Path:
        """The persist directory: its record is ``<dir>/vllm-embed-space.json``."""
        return target.parent

    def prepare_output(self, out: Path) -> None:
        """Copy the rest of the persist dir next to a new vector store (``--out DIR``)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.parent == self.path:
            return
        for item in self.path.iterdir():
            if item.is_file() and item.name != VECTOR_STORE_FILE:
                shutil.copy2(item, out.parent / item.name)

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        kept_ids = [self.ids[i] for i in keep]
        kept = set(kept_ids)
        with open(out, "w", encoding="utf-8") as f:
            f.write("{")
            for n, (key, value) in enumerate(self._document.items()):
                if n:
                    f.write(", ")
                f.write(json.dumps(key) + ": ")
                if key == "embedding_dict":
                    _write_embedding_dict(f, kept_ids, rows)
                elif key in _PER_NODE_MAPS and isinstance(value, dict):
                    f.write(json.dumps({k: v for k, v in value.items() if k in kept}))
                else:
                    f.write(json.dumps(value))
            f.write("}")

    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        document = load_json(path)
        embedding_dict = document.get("embedding_dict") if isinstance(document, dict) else None
        if not isinstance(embedding_dict, dict) or list(embedding_dict) != list(ids):
            raise StoreFormatError(f"written file {path}: node ids differ from the source")
        for i, vector in enumerate(embedding_dict.values()):
            if len(vector) != dim:
                raise StoreFormatError(f"written file {path}: node {i} has dimension {len(vector)}")
        if embedding_dict:
            matrix = np.asarray(list(embedding_dict.values()), dtype=np.float64)
            check_rows(matrix, f"written file {path}", 0)

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        try:
            from llama_index.core.vector_stores.simple import SimpleVectorStore
        except ImportError:
            return None
        store = SimpleVectorStore.from_persist_path(str(path))
        loaded = store.data.embedding_dict
        if len(loaded) != len(ids) or any(len(v) != dim for v in loaded.values()):
            raise StoreFormatError(f"LlamaIndex loaded an inconsistent vector store from {path}")
        return "llama-index-core"


def read_llamaindex(path: Path) -> LlamaIndexStore:
    """Read a persist directory (or its ``default__vector_store.json``)."""
    directory = path.parent if path.is_file() else path
    vectors = load_json(directory / VECTOR_STORE_FILE)
    if not isinstance(vectors, dict) or not isinstance(vectors.get("embedding_dict"), dict):
        raise StoreFormatError(
            f"{directory / VECTOR_STORE_FILE} has no `embedding_dict`: not a LlamaIndex "
            "SimpleVectorStore file."
        )
    docstore_path = directory / DOCSTORE_FILE
    if not docstore_path.is_file():
        raise StoreFormatError(
            f"{directory} has no {DOCSTORE_FILE}: the text LlamaIndex embedded is not there, "
            "so the vectors cannot be rebuilt. Point migrate at the full persist directory."
        )
    docstore = load_json(docstore_path)
    data = docstore.get("docstore/data", {}) if isinstance(docstore, dict) else {}
    rebuild = _llamaindex_embed_text()
    texts: dict[str, str | None] = {}
    for node_id in vectors["embedding_dict"]:
        entry = data.get(node_id)
        if not isinstance(entry, dict) or not isinstance(entry.get("__data__"), dict):
            texts[node_id] = None
        elif rebuild is not None:
            texts[node_id] = rebuild(entry)
        else:
            texts[node_id] = embed_text_fallback(entry["__data__"])
    source = (
        "docstore get_content(EMBED) via llama-index-core"
        if rebuild is not None
        else "docstore get_content(EMBED) (built-in reimplementation)"
    )
    return LlamaIndexStore(directory, vectors, texts, source)


def _write_embedding_dict(f: Any, ids: Sequence[str], rows: Rows) -> None:
    f.write("{")
    for n, (node_id, row) in enumerate(zip(ids, rows.rows(), strict=True)):
        if n:
            f.write(", ")
        f.write(json.dumps(node_id) + ": " + json.dumps(row.tolist()))
    f.write("}")
