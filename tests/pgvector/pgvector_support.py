"""Helpers of the pgvector tests (their fixtures are in conftest.py): SQL in its own
connection, LightRAG's PG tables, the corpus, and running one action of ``pg_apps.py`` (the
real application) in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent
SHARED = HERE.parents[1] / "shared"
NEW_DIM = 16
OLD_DIM = 8


def app(action: str, **args: Any) -> Any:
    """Run one action of ``pg_apps.py`` (the real library) in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SHARED), str(HERE)]))
    done = subprocess.run(
        [sys.executable, str(HERE / "pg_apps.py"), action, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{action} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """One statement in its own autocommitted connection; rows (or [] for commands)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def lightrag_tables(
    url: str, rows: int, *, dim: int = OLD_DIM, suffix: str = "", only: str | None = None
) -> list[str]:
    """LightRAG's PG vector tables (DDL of lightrag/kg/postgres_impl.py) with its HNSW index."""
    from pg_apps import old_vector

    tables = {
        "lightrag_vdb_chunks": "full_doc_id VARCHAR(256), chunk_order_index INTEGER, "
        "tokens INTEGER, content TEXT, content_vector VECTOR({dim}), file_path TEXT NULL",
        "lightrag_vdb_entity": "entity_name VARCHAR(512), content TEXT, "
        "content_vector VECTOR({dim}), chunk_ids VARCHAR(255)[] NULL, file_path TEXT NULL",
        "lightrag_vdb_relation": "source_id VARCHAR(512), target_id VARCHAR(512), content TEXT, "
        "content_vector VECTOR({dim}), chunk_ids VARCHAR(255)[] NULL, file_path TEXT NULL",
    }
    names = []
    with psycopg.connect(url) as conn:
        for base, columns in tables.items():
            if only is not None and base != only:
                continue
            name = f"{base}{suffix}"
            conn.execute(
                f"CREATE TABLE {name} (id VARCHAR(255), workspace VARCHAR(255), "
                f"{columns.format(dim=dim)}, "
                "create_time TIMESTAMP(0) DEFAULT CURRENT_TIMESTAMP, "
                "update_time TIMESTAMP(0) DEFAULT CURRENT_TIMESTAMP, "
                f"CONSTRAINT {name}_pk PRIMARY KEY (workspace, id))"
            )
            conn.execute(
                f"CREATE INDEX idx_{name}_hnsw_cosine ON {name} USING hnsw "
                "(content_vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {name} (id, workspace, content, content_vector) "
                    "VALUES (%s, %s, %s, %s)",
                    [
                        (f"{base}-{i}", "default", text, str(old_vector(text, dim)))
                        for i, text in enumerate(corpus(rows, base))
                    ],
                )
            names.append(name)
    return names


def corpus(n: int, tag: str = "doc") -> list[str]:
    topics = ["cats purr", "dogs bark", "fish swim", "birds sing", "rain falls", "code compiles"]
    return [f"{tag} {i}: {topics[i % len(topics)]} number {i}" for i in range(n)]
