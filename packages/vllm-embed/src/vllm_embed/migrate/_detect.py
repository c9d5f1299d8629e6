"""Format detection: which kind of store a path holds."""

from __future__ import annotations

import os
from pathlib import Path

from vllm_embed._errors import StoreFormatError

from ._jsonio import load_json_with_span
from ._milvus_server import is_milvus_server_uri, read_milvus_server
from ._store import Store
from .chroma import CHROMA_FILE, is_chroma_dir, read_chroma
from .faiss import find_faiss_store
from .kano import find_kano_index, looks_like_kano, read_kano
from .lancedb import is_lancedb_dir, read_lancedb
from .langchain import looks_like_langchain_dump, read_langchain
from .llamaindex import VECTOR_STORE_FILE, is_persist_dir, read_llamaindex
from .milvus import is_milvus_lite_dir, read_milvus
from .nanovectordb import looks_like_nanovectordb, matrix_b64_length, read_nanovectordb
from .qdrant import is_qdrant_dir, read_qdrant
from .sqlitevec import looks_like_sqlitevec, read_sqlitevec

__all__ = ["SUPPORTED_FORMATS", "open_store"]

SUPPORTED_FORMATS = (
    "nano-vectordb JSON (incl. DVD database.json, LightRAG vdb_*.json)",
    "LlamaIndex persist directory (default__vector_store.json + docstore.json)",
    "LangChain InMemoryVectorStore.dump() file",
    "Chroma persistent directory (chromadb.PersistentClient, LangChain Chroma, LlamaIndex "
    "ChromaVectorStore)",
    "kano-backlog SQLite index ({collection}.{hash}.sqlite3, its .meta.json, or .cache/vectors/)",
    "LangChain FAISS save_local folder (index.faiss + index.pkl, any index_name)",
    "LightRAG FAISS storage (faiss_index_{namespace}.index + .meta.json)",
    "Qdrant local-mode directory (QdrantClient(path=...): meta.json + collection/; LangChain "
    "and LlamaIndex QdrantVectorStore, plain qdrant-client with --text-field)",
    "SQLite file with sqlite-vec vec0 tables (LangChain SQLiteVec, plain tables)",
    "LanceDB database directory (<table>.lance datasets: LangChain LanceDB, LlamaIndex "
    "LanceDBVectorStore, AnythingLLM, plain tables with --text-field)",
    "Milvus Lite database (MilvusClient('./milvus.db'): LangChain Milvus, LlamaIndex "
    "MilvusVectorStore, plain pymilvus with --text-field)",
    "Milvus server URI (http(s)://[user:password@]host:19530[/db], token also from "
    "MILVUS_TOKEN: the same collections; switched with aliases)",
)


def _unknown(path: Path, why: str) -> StoreFormatError:
    formats = "; ".join(SUPPORTED_FORMATS)
    return StoreFormatError(f"{path}: unknown store format ({why}). Supported: {formats}.")


def open_store(
    path: str | os.PathLike[str],
    *,
    text_field: str | None = None,
    collection: str | None = None,
    allow_dangerous_deserialization: bool = False,
    vector_name: str | None = None,
) -> Store:
    """Detect the format of ``path`` and read it (never loads a nano-vectordb matrix).

    ``collection`` picks one collection of a store that holds several (Chroma, a kano
    ``.cache/vectors/`` directory, Qdrant, the vec0 table of a sqlite-vec file); without
    it every collection is migrated (Qdrant and sqlite-vec: the only one).
    ``allow_dangerous_deserialization`` is the consent LangChain's ``FAISS.load_local``
    asks for: a LangChain FAISS folder's ``.pkl`` is only unpickled with it (else
    `PickleConsentError`). ``vector_name`` picks the named vector of a Qdrant collection
    to re-embed (the others are kept). Raises
    `StoreFormatError` for a missing path, an unknown format, or a corrupt or
    inconsistent store; the message says what was found and what to do.
    """
    if is_milvus_server_uri(str(path)):
        if vector_name is not None:
            raise StoreFormatError("--vector-name applies to Qdrant directories, not Milvus.")
        return read_milvus_server(str(path), collection=collection, text_field=text_field)
    path = Path(path)
    if not path.exists():
        raise StoreFormatError(f"{path} does not exist: give the path of the vector store.")
    # first: a LightRAG ``faiss_index_*.index.meta.json`` is not a kano meta.json
    faiss_store = find_faiss_store(
        path, allow_dangerous_deserialization=allow_dangerous_deserialization
    )
    if faiss_store is not None:
        if collection is not None:
            raise StoreFormatError(
                f"--collection applies to stores that hold collections (Chroma, kano); "
                f"{path} is a {faiss_store.format} index."
            )
        return _no_text_field(faiss_store, text_field)
    if vector_name is not None and not is_qdrant_dir(path):
        raise StoreFormatError(f"--vector-name applies to Qdrant directories; {path} is not one.")
    if is_qdrant_dir(path):
        return read_qdrant(
            path, collection=collection, text_field=text_field, vector_name=vector_name
        )
    if looks_like_sqlitevec(path):
        return read_sqlitevec(path, table=collection, text_field=text_field)
    if is_chroma_dir(path) or path.name == CHROMA_FILE:
        return _no_text_field(read_chroma(path, collection=collection), text_field)
    if is_lancedb_dir(path):
        return read_lancedb(path, table=collection, text_field=text_field)
    if is_milvus_lite_dir(path):
        return read_milvus(path, collection=collection, text_field=text_field)
    if looks_like_kano(path) or (path.is_dir() and find_kano_index(path, collection)):
        return _no_text_field(read_kano(path, collection=collection), text_field)
    if collection is not None:
        raise StoreFormatError(
            f"--collection applies to stores that hold collections (Chroma, kano); {path} is "
            "not one."
        )
    if path.is_dir():
        if not is_persist_dir(path):
            raise _unknown(path, f"a directory without {VECTOR_STORE_FILE}")
        return _no_text_field(read_llamaindex(path), text_field)
    if path.name == VECTOR_STORE_FILE:
        return _no_text_field(read_llamaindex(path), text_field)
    document, span = load_json_with_span(path, "matrix", expected_length=matrix_b64_length)
    if looks_like_nanovectordb(document):
        return read_nanovectordb(path, text_field=text_field, document=document, span=span)
    if looks_like_langchain_dump(document):
        return _no_text_field(read_langchain(path, document), text_field)
    if isinstance(document, dict) and "embedding_dict" in document:
        return _no_text_field(read_llamaindex(path), text_field)
    kind = type(document).__name__
    keys = ", ".join(list(document)[:8]) if isinstance(document, dict) else ""
    raise _unknown(path, f"a JSON {kind}" + (f" with keys {keys}" if keys else ""))


def _no_text_field(store: Store, text_field: str | None) -> Store:
    if text_field is not None and text_field != store.text_field:
        raise StoreFormatError(
            f"--text-field applies to nano-vectordb, LanceDB and Milvus Lite stores only; "
            f"{store.path} is a "
            f"{store.format}, whose text comes from {store.text_field}."
        )
    return store
