"""Chroma persistent directories (``chromadb.PersistentClient(path=...)``).

Written by plain chromadb, LangChain's ``Chroma(persist_directory=...)`` (default
collection ``langchain``) and LlamaIndex's ``ChromaVectorStore`` (node JSON in the
metadata key ``_node_content``, the node text in the document). The directory holds
``chroma.sqlite3`` plus one directory of HNSW files per vector segment; the dimension
is fixed per collection, so the files are never patched: everything goes through
chromadb's own API.

- Reading (`read_chroma`): the directory is copied to a scratch directory first and only
  the copy is opened (opening a persistent directory may write to it); ids, documents,
  metadatas, uris, collection metadata and configuration are read a page at a time.
- Text: the document. For LlamaIndex nodes, what LlamaIndex embeds: the node rebuilt
  from ``_node_content`` + the document, ``get_content(MetadataMode.EMBED)``.
- Writing (`ChromaStore.write`): the original directory is copied to the work
  directory; in the copy every migrated collection is deleted and created again with
  the same name, metadata (plus the embedding-space record under ``SPACE_KEY``) and
  configuration (HNSW / SPANN parameters and the embedding-function record, which
  chromadb 1.x refuses to see change; a record of vllm-embed-chroma's function,
  ``"vllm-embed"``, is rewritten to describe the new vectors: model, dimension,
  instructions, and ``dimensions`` when one was asked for), then filled in batches of at most
  ``client.get_max_batch_size()`` with the same ids, documents, metadatas and uris.
- Verifying: the copy is reopened with chromadb: counts, ids in order, documents,
  metadatas, configuration, dimension, and a query per collection that must return
  its own record first.
- Installing (`ChromaStore.install`): the new directory and the original are
  exchanged atomically (``renameat2(RENAME_EXCHANGE)`` where the kernel has it, else
  two renames), and the original ends up as ``NAME.d<old dim>.bak``.

Every tenant and database of the directory is read (``chroma.sqlite3`` lists them;
each is opened with ``PersistentClient(path, tenant=..., database=...)``). A collection
outside the default tenant and database is named ``TENANT/DATABASE/NAME`` in messages
and in ``--collection``; a plain name picks the collection of that name when it is
unique in the directory.

The embedding itself is the engine's: vectors are journaled in the work directory, so
a killed run resumes without embedding anything twice. Filling the copy is resumable
too: the copy and the collections already created in it are journaled beside it
(``output.tmp.progress.json``, `CopyProgress`), and a collection goes on from its
``count()``.

Modules, one job each:

- ``_client``: chromadb imported, one client per (tenant, database) opened and closed;
- ``_layout``: the SQLite file checked, its tenants and databases, ``--collection``'s pick;
- ``_collection``: one collection as read and the text its records are embedded from
  (plain / LangChain: the document; LlamaIndex: the node);
- ``_read``: `read_chroma`, every picked collection read from the scratch copy;
- ``_config``: the collection configuration carried over and retargeted;
- ``_write``: collections created again in the copy and filled;
- ``_verify``: the written copy re-read and queried;
- ``_store``: `ChromaStore`, the engine's `Store` (a `DirectoryStore`, like LanceDB's and
  Milvus Lite's: backup name and atomic exchange of directories; ``doctor``'s view of one
  collection is `_dirstore.PartView`).
"""

from __future__ import annotations

from ._client import CHROMA_FILE, is_chroma_dir
from ._collection import ChromaCollectionView
from ._read import read_chroma
from ._store import ChromaStore

__all__ = ["CHROMA_FILE", "ChromaCollectionView", "ChromaStore", "is_chroma_dir", "read_chroma"]
