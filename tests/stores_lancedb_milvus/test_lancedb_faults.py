"""LanceDB faults: the server gone mid-run leaves the original byte-identical and the same
command resumes without embedding anything twice, giving what an uninterrupted run gives;
a run killed while filling the copy goes on from the table's row count; ``doctor --store``
PASS / FAIL for LanceDB tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import respx
from click.testing import CliRunner, Result
from lancedb_support import lance_rows, lance_vectors, make_langchain_lancedb
from stores_support import embedded_texts, listing, texts

from vllm_embed import MigrationError
from vllm_embed.cli import main
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store, work_dir_for
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount


def _content(db: Path, table: str = "vectorstore") -> tuple[object, object]:
    return lance_rows(db, table), lance_vectors(db, table).round(6).tolist()


def test_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    (tmp_path / "app").mkdir()
    db = make_langchain_lancedb(tmp_path / "app" / "lancedb", n=10)
    original = listing(db)
    failing_after(fake_vllm, 1 + 8)  # the dimension probe, then two chunks of 4

    with pytest.raises(MigrationError, match="run the same command again to resume"):
        migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    assert listing(db) == original
    assert sorted(p.name for p in db.parent.iterdir()) == ["lancedb", "lancedb.vllm-embed-migrate"]
    finished = embedded_texts(fake_vllm)[1:]
    assert len(finished) == 8

    fake_vllm.side_effect = fake_vllm.side_effect.answer
    fake_vllm.reset()
    result = migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    resumed = embedded_texts(fake_vllm)
    assert (result.resumed, result.embedded_now) == (8, 2)
    assert len(resumed) == 2 and not set(resumed) & set(finished)
    assert result.backup is not None and listing(result.backup) == original
    assert not work_dir_for(db).exists()

    (tmp_path / "ref").mkdir()
    reference = make_langchain_lancedb(tmp_path / "ref" / "lancedb", n=10)
    migrate_store(open_store(reference), client, MigrationOptions(chunk_rows=4))
    assert _content(db) == _content(reference)


def test_killed_while_filling_goes_on_from_the_row_count(tmp_path, fake_vllm, client, monkeypatch):
    from lancedb.table import LanceTable

    from vllm_embed.migrate import lancedb as lance_format

    db = make_langchain_lancedb(tmp_path / "lancedb", n=10)
    original = listing(db)
    monkeypatch.setattr(lance_format.LanceDBStore, "batch_rows", 3)
    added: list[list[str]] = []
    kill = {"after": 2}
    real_add = LanceTable.add

    def add(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(added) == kill["after"]:
            raise KeyboardInterrupt  # killed after two batches went in
        added.append(data.column("id").to_pylist())
        return real_add(self, data, *args, **kwargs)

    monkeypatch.setattr(LanceTable, "add", add)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    assert listing(db) == original
    assert added == [["id-0", "id-1", "id-2"], ["id-3", "id-4", "id-5"]]

    fake_vllm.reset()
    added.clear()
    kill["after"] = -1
    result = migrate_store(open_store(db), client)
    assert embedded_texts(fake_vllm) == [] and result.resumed == 10
    assert added == [["id-6", "id-7", "id-8"], ["id-9"]]  # only what was missing
    rows, vectors = _content(db)
    assert [r["id"] for r in rows] == [f"id-{i}" for i in range(10)]  # type: ignore[union-attr]
    np.testing.assert_allclose(vectors, [fake_vector(t, DIM) for t in texts(10)], atol=1e-6)


def _doctor(store: Path, *extra: str) -> Result:
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--store", str(store)]
    return CliRunner().invoke(main, [*args, *extra])


def _lines(result: Result) -> list[str]:
    return [line.strip() for line in result.output.splitlines() if "store space" in line]


def test_doctor_passes_a_migrated_database_and_fails_another_model(tmp_path, client):
    db = make_langchain_lancedb(tmp_path / "lancedb", n=6)
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        before = _doctor(db)  # 24-dim vectors of another model
        migrate_store(open_store(db), client)
        passed = _doctor(db)
    assert before.exit_code == 1 and _lines(before)[0].startswith("FAIL"), before.output
    assert "holds 24-dim vectors" in _lines(before)[0]
    assert passed.exit_code == 0, passed.output
    assert (
        _lines(passed)[0].startswith("PASS")
        and f"model {MODEL!r}, dim {DIM}" in (_lines(passed)[0])
    )
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        failed = _doctor(db)
    assert failed.exit_code == 1, failed.output
    assert _lines(failed)[0].startswith("FAIL") and "intfloat/other-model" in failed.output
    assert f"vllm-embed migrate {db}" in failed.output
    assert API_KEY not in failed.output + passed.output


def test_doctor_judges_each_table(tmp_path, fake_vllm, client):
    """``same`` holds the fake server's own vectors (no record: probed), ``other`` 24-dim."""
    import lancedb
    import pyarrow as pa

    db = make_langchain_lancedb(tmp_path / "db", n=4, table="other")
    rows = [
        {"id": f"s{i}", "text": t, "vector": fake_vector(t, DIM).tolist()}
        for i, t in enumerate(texts(6))
    ]
    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("vector", pa.list_(pa.float32(), DIM))]
    )
    lancedb.connect(str(db)).create_table("same", rows, schema=schema)
    result = _doctor(db)
    assert result.exit_code == 1, result.output
    lines = _lines(result)
    assert len(lines) == 2, result.output
    same = next(line for line in lines if "(collection same)" in line)
    other = next(line for line in lines if "(collection other)" in line)
    assert same.startswith("PASS") and "mean cosine 1.0000" in same
    assert other.startswith("FAIL")
    assert f"vllm-embed migrate {db} --base-url {BASE_URL} --collection other" in result.output

    one = _doctor(db, "--collection", "same")
    assert one.exit_code == 0, one.output


def test_doctor_fails_a_damaged_database_by_name(tmp_path, fake_vllm):
    db = make_langchain_lancedb(tmp_path / "db", n=4)
    data = next((db / "vectorstore.lance" / "data").iterdir())
    data.write_bytes(b"")
    result = _doctor(db)
    assert result.exit_code == 1, result.output
    assert _lines(result)[0].startswith("FAIL") and "lancedb cannot read this database" in (
        result.output
    )
