"""``vllm-embed doctor --store`` on LanceDB databases, Milvus Lite files and collections on a
real Milvus server (the session's, vllm_embed_testing.milvus_server) written by their
libraries (fake vLLM): the space ``migrate`` recorded, else a probe of the stored vectors;
each table judged; a damaged database named."""

from __future__ import annotations

import respx
from click.testing import CliRunner, Result
from doctor_support import doctor_store, store_lines
from lancedb_support import make_langchain_lancedb
from milvus_server_support import milvus_default, server_langchain  # noqa: F401 (fixture)
from milvus_support import make_langchain_milvus
from stores_support import texts

from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.milvus_server import TEST_PASSWORD as PASSWORD
from vllm_embed_testing.milvus_server import milvus_server  # noqa: F401 (fixture)
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount


def test_doctor_passes_a_migrated_database_and_fails_another_model(tmp_path, client):
    db = make_langchain_lancedb(tmp_path / "lancedb", n=6)
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        before = doctor_store(db)  # 24-dim vectors of another model
        migrate_store(open_store(db), client)
        passed = doctor_store(db)
    assert before.exit_code == 1 and store_lines(before)[0].startswith("FAIL"), before.output
    assert "holds 24-dim vectors" in store_lines(before)[0]
    assert passed.exit_code == 0, passed.output
    assert (
        store_lines(passed)[0].startswith("PASS")
        and f"model {MODEL!r}, dim {DIM}" in (store_lines(passed)[0])
    )
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        failed = doctor_store(db)
    assert failed.exit_code == 1, failed.output
    assert store_lines(failed)[0].startswith("FAIL") and "intfloat/other-model" in failed.output
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
    result = doctor_store(db)
    assert result.exit_code == 1, result.output
    lines = store_lines(result)
    assert len(lines) == 2, result.output
    same = next(line for line in lines if "(collection same)" in line)
    other = next(line for line in lines if "(collection other)" in line)
    assert same.startswith("PASS") and "mean cosine 1.0000" in same
    assert other.startswith("FAIL")
    assert f"vllm-embed migrate {db} --base-url {BASE_URL} --collection other" in result.output

    one = doctor_store(db, "--collection", "same")
    assert one.exit_code == 0, one.output


def test_doctor_fails_a_damaged_database_by_name(tmp_path, fake_vllm):
    db = make_langchain_lancedb(tmp_path / "db", n=4)
    data = next((db / "vectorstore.lance" / "data").iterdir())
    data.write_bytes(b"")
    result = doctor_store(db)
    assert result.exit_code == 1, result.output
    assert store_lines(result)[0].startswith("FAIL") and "lancedb cannot read this database" in (
        result.output
    )


def test_doctor_fails_before_and_passes_after_migration(tmp_path, client):
    db = make_langchain_milvus(tmp_path / "milvus.db", n=5)
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        before = doctor_store(db)
        migrate_store(open_store(db), client)
        after = doctor_store(db)
    assert before.exit_code == 1 and store_lines(before)[0].startswith("FAIL"), before.output
    assert after.exit_code == 0, after.output
    assert (
        store_lines(after)[0].startswith("PASS") and f"model {MODEL!r}, dim {DIM}" in after.output
    )


def _doctor(store: str, collection: str) -> Result:
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--store", store]
    args += ["--collection", collection]
    return CliRunner().invoke(main, args)


def test_doctor_on_a_milvus_server_fails_before_and_passes_after(milvus_default, client):  # noqa: F811
    db = milvus_default
    lc = db.prefix
    server_langchain(db, n=5, collection=lc)
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        before = _doctor(db.uri_with_credentials, lc)
        migrate_store(open_store(db.uri_with_credentials, collection=lc), client)
        after = _doctor(db.uri_with_credentials, lc)
    lines = [line.strip() for line in before.output.splitlines() if "store space" in line]
    assert before.exit_code == 1 and lines[0].startswith("FAIL"), before.output
    lines = [line.strip() for line in after.output.splitlines() if "store space" in line]
    assert after.exit_code == 0 and lines[0].startswith("PASS"), after.output
    assert f"model {MODEL!r}, dim {DIM}" in after.output
    assert PASSWORD not in before.output + after.output
