"""Reading a table's rows: keys and the text to embed (for LlamaIndex the text LlamaIndex
embeds, rebuilt from ``metadata_->>'_node_content'``), and a sample for ``doctor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text
from ._driver import quote
from ._layouts import PgTarget

if TYPE_CHECKING:
    import psycopg


def select_columns(target: PgTarget, alias: str) -> str:
    keys = ", ".join(f"{alias}.{quote(k)}::text" for k in target.key_columns)
    extra = f", {alias}.metadata_->>'_node_content'" if target.layout == "llamaindex" else ", NULL"
    return f"{keys}, {alias}.{quote(target.text_column)}{extra}"


@dataclass
class Batch:
    keys: list[tuple[str, ...]]
    raw: list[str]
    texts: list[str]


def to_batch(target: PgTarget, rows: list[tuple[Any, ...]]) -> Batch:
    n = len(target.key_columns)
    keys = [tuple(str(v) for v in row[:n]) for row in rows]
    raw = [str(row[n]) if row[n] is not None else "" for row in rows]
    if target.layout == "llamaindex":
        texts = [
            node_embed_text({LLAMAINDEX_NODE_KEY: row[n + 1]}, r) or r
            for r, row in zip(raw, rows, strict=True)
        ]
    else:
        texts = list(raw)
    return Batch(keys, raw, texts)


def sample_rows(
    conn: psycopg.Connection[Any], target: PgTarget, n: int = 8
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """A few rows' embedding texts and stored vectors (for doctor's probe)."""
    rows = conn.execute(
        f"SELECT {select_columns(target, 't')}, t.{quote(target.vector_column)}::real[] "
        f"FROM {target.qualified} t WHERE t.{quote(target.text_column)} IS NOT NULL "
        f"AND t.{quote(target.vector_column)} IS NOT NULL LIMIT {int(n)}"
    ).fetchall()
    conn.rollback()
    batch = to_batch(target, [r[:-1] for r in rows])
    vectors = np.asarray([r[-1] for r in rows], dtype=np.float32)
    return batch.texts, vectors
