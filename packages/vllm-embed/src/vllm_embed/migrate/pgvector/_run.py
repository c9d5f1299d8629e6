"""One table's migration from start to end: checks, fill, switch, report."""

from __future__ import annotations

import time

from vllm_embed._errors import MigrationError

from .._engine import Embedder, NoProgress, Progress
from .._space import EmbeddingSpace
from ._driver import connection, quote
from ._fill import count_scope, fill
from ._journal import ensure_own_tables, start_or_resume
from ._layouts import PgTarget
from ._options import MigrationReport, PgOptions
from ._preflight import preflight
from ._switch import switch


def migrate_table(
    url: str,
    target: PgTarget,
    embedder: Embedder,
    space: EmbeddingSpace,
    options: PgOptions | None = None,
    progress: Progress | None = None,
) -> MigrationReport:
    """Re-embed ``target`` and switch it in one transaction (see the package docstring)."""
    options = options or PgOptions()
    progress = progress or NoProgress()
    began = time.perf_counter()
    with connection(url) as conn:
        preflight(conn, target, options.lock_timeout)
        new_dim = space.dimension
        if target.scoped and target.typed and target.old_dim != new_dim:
            raise MigrationError(
                f"{target.name}.{target.vector_column} is vector({target.old_dim}), shared by "
                f"every collection: it cannot hold {new_dim}-dimensional vectors for "
                f"{', '.join(map(repr, target.collections))} only. Migrate all collections "
                "(leave out --collection). Nothing was written."
            )
        ensure_own_tables(conn, target.schema)
        state = start_or_resume(conn, target, space)
        total = count_scope(conn, target)
        progress.start(total, min(state.rows_done, total))
        embed_began = time.perf_counter()
        try:
            embedded, truncated = fill(conn, target, embedder, state, new_dim, options, progress)
        finally:
            progress.close()
        embed_seconds = time.perf_counter() - embed_began
        switched = switch(conn, url, target, embedder, space, state, options)
    _drop_shadow(url, target, state.shadow)
    return MigrationReport(
        target=target.name,
        layout=target.layout,
        rows=total,
        old_dim=target.old_dim,
        new_dim=new_dim,
        embedded_now=embedded + switched.caught_up,
        resumed=state.rows_done - embedded if state.rows_done > embedded else 0,
        caught_up=switched.caught_up,
        backup=f"{target.schema}.{switched.backup}",
        seconds=time.perf_counter() - began,
        embed_seconds=embed_seconds,
        switch_seconds=switched.seconds,
        index_seconds=switched.index_seconds,
        readers_blocked_seconds=switched.readers_blocked,
        writers_blocked_seconds=switched.writers_blocked,
        truncated=truncated,
        verified_with=["row count", "dimension", "index definitions"],
    )


def _drop_shadow(url: str, target: PgTarget, shadow: str) -> None:
    with connection(url) as conn, conn.transaction():
        conn.execute(f"DROP TABLE IF EXISTS {quote(target.schema)}.{quote(shadow)}")
