"""The fill: rows read in key order, embedded (the next batch while this one is written) and
written with binary ``COPY`` into the shadow table, each batch committed together with its
position in ``vllm_embed_migrations`` so a killed run resumes after it."""

from __future__ import annotations

import hashlib
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import MigrationError, VLLMEmbedError

from .._engine import Embedder, Progress, checked_vectors
from ._driver import MIGRATIONS_TABLE, first_line, quote
from ._journal import State
from ._layouts import PgTarget
from ._options import PgOptions
from ._rows import Batch, select_columns, to_batch

if TYPE_CHECKING:
    import psycopg


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def _copy_payload(batch: Batch, vectors: npt.NDArray[np.float32]) -> bytes:
    """Rows (key texts, md5 of the text, vector) in COPY BINARY format."""
    n, dim = vectors.shape
    big = np.ascontiguousarray(vectors, dtype=">f4")
    vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    fields = struct.pack(">h", len(batch.keys[0]) + 2) if n else b""
    parts = [_COPY_HEADER]
    for i in range(n):
        parts.append(fields)
        for k in batch.keys[i]:
            kb = k.encode()
            parts.append(struct.pack(">i", len(kb)))
            parts.append(kb)
        md5 = hashlib.md5(batch.raw[i].encode(), usedforsecurity=False).hexdigest().encode()
        parts.append(struct.pack(">i", 32))
        parts.append(md5)
        parts.append(vec_head)
        parts.append(big[i].tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def copy_into_shadow(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    shadow: str,
    batch: Batch,
    vectors: npt.NDArray[np.float32],
) -> None:
    """``shadow`` is the qualified name of the shadow table."""
    cols = ", ".join(f"k{i}" for i in range(len(target.key_columns)))
    with conn.cursor().copy(
        f"COPY {shadow} ({cols}, text_md5, embedding) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(_copy_payload(batch, vectors))


def count_scope(conn: psycopg.Connection[Any], target: PgTarget) -> int:
    scope, params = target.scope_sql("t")
    row = conn.execute(
        f"SELECT count(*) FROM {target.qualified} t WHERE {scope}", params
    ).fetchone()
    conn.rollback()
    return int(row[0]) if row else 0


def _key_types(conn: psycopg.Connection[Any], target: PgTarget) -> list[str]:
    types = []
    for col in target.key_columns:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s",
            [target.qualified, col],
        ).fetchone()
        types.append(str(row[0]) if row else "text")
    conn.rollback()
    return types


def embed_batch(
    embedder: Embedder, batch: Batch, kind: str, dim: int, start: int
) -> tuple[npt.NDArray[np.float32], int]:
    result = embedder.embed_with_info(batch.texts, kind=kind)  # type: ignore[arg-type]
    return checked_vectors(result.vectors, len(batch.texts), dim, start), int(result.truncated)


def fill(
    conn: psycopg.Connection[Any],
    target: PgTarget,
    embedder: Embedder,
    state: State,
    dim: int,
    options: PgOptions,
    progress: Progress,
) -> tuple[int, int]:
    """Embed the rows after ``state.last_key`` in key order; one commit per batch."""
    types = _key_types(conn, target)
    scope, params = target.scope_sql("t")
    keys = ", ".join(f"t.{quote(k)}" for k in target.key_columns)
    after = ", ".join(f"CAST(%s AS {typ})" for typ in types)
    mig = f"{quote(target.schema)}.{MIGRATIONS_TABLE}"
    shadow = f"{quote(target.schema)}.{quote(state.shadow)}"

    def read(last: list[str] | None) -> Batch | None:
        where = scope
        args: list[Any] = list(params)
        if last is not None:
            where += f" AND ({keys}) > ({after})"
            args += last
        rows = conn.execute(
            f"SELECT {select_columns(target, 't')} FROM {target.qualified} t WHERE {where} "
            f"ORDER BY {keys} LIMIT {int(options.batch_rows)}",
            args,
        ).fetchall()
        conn.rollback()
        return to_batch(target, rows) if rows else None

    embedded = truncated = 0
    done = state.rows_done
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-embed-pg")
    try:
        batch = read(state.last_key)
        pending: Future[tuple[npt.NDArray[np.float32], int]] | None = None
        if batch is not None:
            pending = pool.submit(embed_batch, embedder, batch, options.kind, dim, done)
        while batch is not None and pending is not None:
            following = read(list(batch.keys[-1]))
            vectors, cut = _result(pending, target, done)
            pending = None
            if following is not None:
                start = done + len(batch.keys)
                pending = pool.submit(embed_batch, embedder, following, options.kind, dim, start)
            with conn.transaction():
                copy_into_shadow(conn, target, shadow, batch, vectors)
                conn.execute(
                    f"UPDATE {mig} SET last_key = %s, rows_done = rows_done + %s WHERE target = %s",
                    [list(batch.keys[-1]), len(batch.keys), target.name],
                )
            done += len(batch.keys)
            embedded += len(batch.keys)
            truncated += cut
            progress.advance(len(batch.keys))
            if options.on_phase is not None:
                options.on_phase("batch")
            batch = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    state.rows_done = done
    return embedded, truncated


def _result(
    pending: Future[tuple[npt.NDArray[np.float32], int]], target: PgTarget, done: int
) -> tuple[npt.NDArray[np.float32], int]:
    try:
        return pending.result()
    except VLLMEmbedError as exc:
        if isinstance(exc, MigrationError):
            raise
        raise MigrationError(
            f"the migration of {target.name} stopped at row {done}: "
            f"{first_line(exc)}. The table is unchanged; {done} embedded rows are kept in "
            "the database; run the same command again to resume."
        ) from exc
