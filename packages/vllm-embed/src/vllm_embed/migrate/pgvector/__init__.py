"""Re-embed pgvector tables in place: shadow table, resumable batches, one-transaction switch.

``vllm-embed migrate postgresql://USER@HOST:PORT/DB`` is the command line; this package is
the library behind it (driver: psycopg 3, ``pip install 'vllm-embed[postgres]'``).

Layouts found by :func:`discover`:

- LangChain ``langchain-postgres`` PGVector: ``langchain_pg_embedding`` (one target per
  table; ``--collection`` re-embeds only some collections, when the column is untyped);
- LlamaIndex ``PGVectorStore``: ``data_*`` tables (text rebuilt as LlamaIndex embeds it:
  ``get_content(MetadataMode.EMBED)`` from ``metadata_->>'_node_content'``);
- LightRAG PG: ``lightrag_vdb_*`` (also the model/dimension-suffixed names);
- any other table named with ``--table --id-column --text-column --vector-column``.

How a table is migrated (:func:`migrate_table`):

1. Checks before anything is written: the columns and their types, a unique key, rows
   without text, privileges (owner of the table, CREATE on its schema), no lock held by
   another session (``lock_timeout``). Each failure is a named `StoreError`.
2. Fill: rows are read in key order, embedded, and written with binary ``COPY`` into a
   shadow table ``vllm_embed_shadow_<hash>`` (key, md5 of the text, new vector). Each
   batch commits together with its position in ``vllm_embed_migrations``, so a killed
   run resumes after the last committed batch and re-embeds nothing committed.
3. Switch. First, while the application keeps reading and writing: rows added or changed
   since they were embedded are embedded, and the new table ``<table>__vllm_new`` is built
   beside the old one (same columns, defaults, constraints; the vector column keeps its
   name and becomes ``vector(n)`` where it was typed) with every index of the old table
   (same definition: HNSW / IVFFlat opclass and parameters kept). Then ONE transaction:
   ``LOCK ... EXCLUSIVE`` (writers wait, readers go on), the rows written meanwhile are
   embedded and applied, foreign keys, grants, owner and sequences are carried over, and
   under ``ACCESS EXCLUSIVE`` only renames happen: the old table becomes the backup
   ``<table>_vllm_bak_d<old dim>`` and the new one takes its name. Readers wait only for
   the renames (``MigrationReport.readers_blocked_seconds``); until the commit they see
   the old vectors, after it the new ones. A crash anywhere rolls the switch back.
4. The embedding space (model, dimension, instructions) is recorded as a comment on the
   vector column and in ``vllm_embed_spaces``; ``vllm-embed doctor --store URL`` reads it.

The backup stays until ``--drop-backup``. Passwords (URL, ``PGPASSWORD``, ``~/.pgpass``)
never appear in any message: URLs are shown with ``***@``.

Modules, one job each (every public name is importable from here):

- ``_driver``: the psycopg driver, connections (passwords masked in their errors),
  SQL identifiers;
- ``_layouts``: :class:`PgTarget`, :func:`discover`, ``describe_table``, :func:`select_targets`;
- ``_preflight``: the checks before anything is written;
- ``_journal``: vllm-embed's own tables, start or resume, :func:`drop_backups`;
- ``_rows``: reading rows and the text to embed, ``sample_rows`` for ``doctor``;
- ``_fill``: embedding in key order and the binary ``COPY`` into the shadow table;
- ``_switch``: catch-up, the new table, the one-transaction switch;
- ``_properties``: indexes, foreign keys, owner, grants, comment and sequences carried over;
- ``_spaces``: the embedding space recorded and read back (:func:`read_spaces`);
- ``_options``: :class:`PgOptions`, :class:`MigrationReport`; ``_run``: :func:`migrate_table`.

The error classes are defined in :mod:`vllm_embed._errors` and re-exported here.
"""

from __future__ import annotations

from vllm_embed._errors import (
    InsufficientPrivilegeError,
    MigrationError,
    PostgresConnectionError,
    PostgresDriverMissingError,
    RowsWithoutTextError,
    TableLockedError,
    TextColumnTypeError,
    UnsupportedTableError,
    VectorColumnTypeError,
)

from ._driver import connect
from ._journal import drop_backups
from ._layouts import PgTarget, describe_table, discover, select_targets
from ._options import MigrationReport, PgOptions
from ._preflight import preflight
from ._rows import sample_rows
from ._run import migrate_table
from ._spaces import read_spaces

__all__ = [
    "InsufficientPrivilegeError",
    "MigrationError",
    "MigrationReport",
    "PgOptions",
    "PgTarget",
    "PostgresConnectionError",
    "PostgresDriverMissingError",
    "RowsWithoutTextError",
    "TableLockedError",
    "TextColumnTypeError",
    "UnsupportedTableError",
    "VectorColumnTypeError",
    "connect",
    "describe_table",
    "discover",
    "drop_backups",
    "migrate_table",
    "preflight",
    "read_spaces",
    "sample_rows",
    "select_targets",
]
