"""``vllm-embed doctor --store postgresql://...``: reads the space `migrate` recorded; a table
without a record is probed (stored vectors against fresh ones)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from pgvector_support import NEW_DIM, OLD_DIM, app, corpus, lightrag_tables, sql

from vllm_embed.cli import main
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

CHUNKS = "lightrag_vdb_chunks"


@pytest.fixture
def fake() -> Iterator[FakeEmbeddingServer]:
    """The fake vLLM in its own process, at the dimension the migrated tables get."""
    with FakeEmbeddingServer(dim=NEW_DIM) as server:
        yield server


def doctor(url: str, fake: FakeEmbeddingServer, *extra: str) -> tuple[int, str]:
    args = ["doctor", "--base-url", fake.base_url, "--store", url, *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_recorded_space_passes_then_another_model_fails(db: str, fake: FakeEmbeddingServer) -> None:
    lightrag_tables(db, 20, only=CHUNKS)
    code, out = doctor(db, fake)  # old random vectors, dimension 8 != 16
    assert code == 1 and "dimension 8 stored, server gives 16" in out
    migrated = CliRunner().invoke(main, ["migrate", db, "--base-url", fake.base_url, "-y"])
    assert migrated.exit_code == 0, migrated.output
    code, out = doctor(db, fake)
    assert code == 0, out
    assert f"store public.{CHUNKS}" in out and "recorded model 'fake-model'" in out
    with FakeEmbeddingServer(dim=NEW_DIM, model="other-model") as other:
        code, out = doctor(db, other)
    assert code == 1
    assert "model 'fake-model' != 'other-model'" in out  # same dimension, other model
    assert "vllm-embed migrate 'postgresql://***@127.0.0.1" in out  # shell-quoted (the *)
    assert ":" + db.split(":")[2].split("@")[0] + "@" not in out  # password never printed


def test_unrecorded_table_is_probed(db: str, fake: FakeEmbeddingServer) -> None:
    sql(
        db,
        "CREATE TABLE lightrag_vdb_entity (id text, workspace text, content text, "
        "content_vector vector(16), PRIMARY KEY (workspace, id))",
    )
    for i in range(10):
        text = f"entity {i}"
        sql(
            db,
            "INSERT INTO lightrag_vdb_entity VALUES (%s, 'w', %s, %s)",
            [str(i), text, str(fake_vector(text, NEW_DIM).tolist())],
        )
    code, out = doctor(db, fake)
    assert code == 0, out
    assert "no recorded space; 8 stored texts re-embedded: mean cosine 1.0000" in out


def test_collection_picks_one_langchain_collection(db: str, fake: FakeEmbeddingServer) -> None:
    """``--collection`` with a Postgres store: only that LangChain collection's check."""
    collections = {"a": corpus(12, "alpha"), "b": corpus(12, "beta")}
    app("lc_create", url=db, collections=collections, dim=OLD_DIM, typed=False)
    args = ["migrate", db, "--base-url", fake.base_url, "--collection", "a", "-y"]
    migrated = CliRunner().invoke(main, args)
    assert migrated.exit_code == 0, migrated.output

    code, out = doctor(db, fake)  # a: the recorded space; b: no record, probed
    assert code == 0, out
    lines = [line for line in out.splitlines() if "langchain_pg_embedding" in line]
    assert any("[a]" in line and "recorded model 'fake-model'" in line for line in lines), out
    assert any("[b]" in line and "no recorded space" in line for line in lines), out

    code, out = doctor(db, fake, "--collection", "a")
    assert code == 0, out
    assert "[a]" in out and "[b]" not in out

    # structured: the selection is by the check's collection field, and its fix is quoted
    code, out = doctor(db, fake, "--collection", "b", "--json")
    assert code == 0, out
    store = [c for c in json.loads(out) if c["name"].startswith("store ")]
    assert [c["collection"] for c in store] == ["b"], out
    assert shlex.split(store[0]["fix"])[-4:] == [
        "--table",
        "public.langchain_pg_embedding",
        "--collection",
        "b",
    ]

    code, out = doctor(db, fake, "--collection", "nope")
    assert code == 1 and "no LangChain collection 'nope'" in out
    assert ":" + db.split(":")[2].split("@")[0] + "@" not in out  # password never printed
