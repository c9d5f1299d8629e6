"""``vllm-embed doctor --store`` on Qdrant directories and sqlite-vec files (fake server):
the space ``migrate`` recorded (collection metadata / sidecar), else a probe of stored
vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import respx
from click.testing import CliRunner, Result
from qdrant_sqlitevec_support import (
    make_langchain_qdrant,
    make_langchain_sqlitevec,
    make_plain_qdrant,
)
from stores_support import OLD_DIM, texts

from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount


def _doctor(store: Path, *extra: str) -> Result:
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--store", str(store)]
    return CliRunner().invoke(main, [*args, *extra])


def _line(result: Result) -> str:
    return next(line for line in result.output.splitlines() if "store space" in line)


def _pass_then_fail(store: Path, client) -> None:  # type: ignore[no-untyped-def]
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        migrate_store(open_store(store), client)
        passed = _doctor(store)
    assert passed.exit_code == 0, passed.output
    assert _line(passed).lstrip().startswith("PASS")
    assert f"model {MODEL!r}, dim {DIM}" in _line(passed)
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        failed = _doctor(store)
    assert failed.exit_code == 1, failed.output
    assert _line(failed).lstrip().startswith("FAIL")
    assert MODEL in _line(failed) and "intfloat/other-model" in _line(failed)
    assert f"vllm-embed migrate {store}" in failed.output
    assert API_KEY not in passed.output + failed.output


def test_migrated_qdrant_passes_and_another_model_fails(tmp_path, client):
    _pass_then_fail(make_langchain_qdrant(tmp_path / "qdrant_db", n=6), client)


def test_migrated_sqlitevec_passes_and_another_model_fails(tmp_path, client):
    _pass_then_fail(make_langchain_sqlitevec(tmp_path / "vec.db", n=6), client)


def test_plain_qdrant_remembers_its_vector_and_text_field(tmp_path, fake_vllm, client):
    """--vector-name / --text-field are recorded with the collection: doctor (and a later
    migrate) need neither."""
    db = make_plain_qdrant(tmp_path / "plain", n=4)
    before = _doctor(db)
    assert _line(before).lstrip().startswith("FAIL") and "--vector-name" in _line(before)
    migrate_store(open_store(db, text_field="body", vector_name="dense"), client)
    passed = _doctor(db)
    assert passed.exit_code == 0, passed.output
    assert _line(passed).lstrip().startswith("PASS")
    again = open_store(db)
    assert (again.text_field, again.old_dim) == ("payload 'body'", DIM)
    assert "vector 'dense'" in again.format


def test_unmigrated_stores_fail_on_their_dimension(tmp_path, fake_vllm):
    for store in (
        make_langchain_qdrant(tmp_path / "qdrant_db", n=4),
        make_langchain_sqlitevec(tmp_path / "vec.db", n=4),
    ):
        result = _doctor(store)
        assert result.exit_code == 1, result.output
        assert _line(result).lstrip().startswith("FAIL")
        assert f"holds {OLD_DIM}-dim vectors" in _line(result)


def test_sqlitevec_without_a_record_is_probed(tmp_path, fake_vllm):
    """Stored vectors that are the server's own (no record): the probe passes."""
    db = tmp_path / "same.db"
    conn = connect_vec(db)
    conn.execute(f"CREATE VIRTUAL TABLE docs USING vec0(embedding float[{DIM}], +text TEXT)")
    conn.executemany(
        "INSERT INTO docs (embedding, text) VALUES (?, ?)",
        [(fake_vector(t, DIM).astype(np.float32).tobytes(), t) for t in texts(6)],
    )
    conn.commit()
    conn.close()
    result = _doctor(db)
    assert result.exit_code == 0, result.output
    assert _line(result).lstrip().startswith("PASS") and "mean cosine 1.0000" in _line(result)
