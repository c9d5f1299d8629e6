"""``vllm-embed doctor --store`` on Qdrant directories and sqlite-vec files (fake server):
the space ``migrate`` recorded (collection metadata / sidecar), else a probe of stored
vectors."""

from __future__ import annotations

import numpy as np
from doctor_support import assert_passes_then_another_model_fails, doctor_store, store_line
from qdrant_sqlitevec_support import (
    make_langchain_qdrant,
    make_langchain_sqlitevec,
    make_plain_qdrant,
)
from stores_support import OLD_DIM, texts

from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM


def test_migrated_qdrant_passes_and_another_model_fails(tmp_path, client):
    assert_passes_then_another_model_fails(
        make_langchain_qdrant(tmp_path / "qdrant_db", n=6), client
    )


def test_migrated_sqlitevec_passes_and_another_model_fails(tmp_path, client):
    assert_passes_then_another_model_fails(
        make_langchain_sqlitevec(tmp_path / "vec.db", n=6), client
    )


def test_plain_qdrant_remembers_its_vector_and_text_field(tmp_path, fake_vllm, client):
    """--vector-name / --text-field are recorded with the collection: doctor (and a later
    migrate) need neither."""
    db = make_plain_qdrant(tmp_path / "plain", n=4)
    before = doctor_store(db)
    assert store_line(before).lstrip().startswith("FAIL") and "--vector-name" in store_line(before)
    migrate_store(open_store(db, text_field="body", vector_name="dense"), client)
    passed = doctor_store(db)
    assert passed.exit_code == 0, passed.output
    assert store_line(passed).lstrip().startswith("PASS")
    again = open_store(db)
    assert (again.text_field, again.old_dim) == ("payload 'body'", DIM)
    assert "vector 'dense'" in again.format


def test_unmigrated_stores_fail_on_their_dimension(tmp_path, fake_vllm):
    for store in (
        make_langchain_qdrant(tmp_path / "qdrant_db", n=4),
        make_langchain_sqlitevec(tmp_path / "vec.db", n=4),
    ):
        result = doctor_store(store)
        assert result.exit_code == 1, result.output
        assert store_line(result).lstrip().startswith("FAIL")
        assert f"holds {OLD_DIM}-dim vectors" in store_line(result)


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
    result = doctor_store(db)
    assert result.exit_code == 0, result.output
    assert store_line(result).lstrip().startswith("PASS") and "mean cosine 1.0000" in store_line(
        result
    )
