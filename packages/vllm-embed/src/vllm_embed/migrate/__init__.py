"""Re-embed existing vector stores when the embedding model or dimension changes.

``vllm-embed migrate STORE`` is the command line; this package is the library
behind it::

    from vllm_embed import EmbeddingClient
    from vllm_embed.migrate import MigrationOptions, migrate_store, open_store

    store = open_store("database.json")            # format detected, matrix not loaded
    with EmbeddingClient("http://localhost:8000/v1") as client:
        result = migrate_store(store, client, MigrationOptions())
    print(result.old_dim, "->", result.new_dim, "backup:", result.backup)

Formats: nano-vectordb JSON (DVD ``database.json``, LightRAG ``vdb_*.json``),
LlamaIndex persist directories, LangChain ``InMemoryVectorStore.dump`` files, LangChain
FAISS ``save_local`` folders (``open_store(..., allow_dangerous_deserialization=True)``:
the ``.pkl`` is a pickle) and LightRAG's FAISS storage (both need ``faiss-cpu``).
Otherwise none of those libraries is needed; when one is importable it is used to
verify the result. Every store written records its embedding space (in the store, or a
``*.vllm-embed-space.json`` sidecar). Safety: the original is not written until the new
store is complete and verified; an interrupted run resumes from its work directory
(``<store>.vllm-embed-migrate/``) when the same command is run again.
"""

from __future__ import annotations

from ._detect import SUPPORTED_FORMATS, open_store
from ._engine import (
    DryRunReport,
    Embedder,
    MigrationOptions,
    MigrationResult,
    MissingTextError,
    Progress,
    dry_run,
    migrate_store,
)
from ._journal import work_dir_for
from ._space import (
    EmbeddingSpace,
    ProbeVerdict,
    judge_probe,
    read_sidecar,
    sidecar_path,
    space_of_client,
    write_sidecar,
)
from ._store import Store
from ._update_config import ConfigUpdate, plan_config_update
from .faiss import PickleConsentError, UnsupportedIndexError

__all__ = [
    "SUPPORTED_FORMATS",
    "ConfigUpdate",
    "DryRunReport",
    "Embedder",
    "EmbeddingSpace",
    "MigrationOptions",
    "MigrationResult",
    "MissingTextError",
    "PickleConsentError",
    "ProbeVerdict",
    "Progress",
    "Store",
    "UnsupportedIndexError",
    "dry_run",
    "judge_probe",
    "migrate_store",
    "open_store",
    "plan_config_update",
    "read_sidecar",
    "sidecar_path",
    "space_of_client",
    "work_dir_for",
    "write_sidecar",
]
