"""``vllm-embed doctor --store postgresql://...``: reads the space `migrate` recorded; a table
without a record is probed (stored vectors against fresh ones)."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import NEW_DIM, lightrag_tables, sql

from vllm_embed.cli import main
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

CHUNKS = "lightrag_vdb_chunks"


def doctor(url: str, fake: FakeEmbeddingServer) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", "--base-url", fake.base_url, "--store", url])
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
    assert "vllm-embed migrate postgresql://***@127.0.0.1" in out
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
