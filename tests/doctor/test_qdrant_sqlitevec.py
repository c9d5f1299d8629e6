"""``vllm-embed doctor --store`` on Qdrant directories, Qdrant server URLs (through a
local-mode client; an unreachable server for real) and sqlite-vec files (fake server): the
space ``migrate`` recorded (collection metadata / sidecar), else a probe of stored
vectors."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import respx
from doctor_support import assert_passes_then_another_model_fails, doctor_store, store_line
from qdrant_sqlitevec_support import (
    COLLECTION,
    make_langchain_qdrant,
    make_langchain_sqlitevec,
    make_plain_qdrant,
)
from stores_support import OLD_DIM, texts

from vllm_embed.migrate import migrate_store, open_store, space_of_client
from vllm_embed.migrate._qdrant_switch import migrate_qdrant_collection
from vllm_embed.migrate.kano import connect_vec
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, DIM, MODEL, mount


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


@pytest.fixture
def qdrant_url(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A Qdrant server URL whose connection is a local-mode client on a LangChain
    collection (the HTTP transport is the one part not run; its failure is tested below),
    and the API key doctor must never print."""
    import warnings

    from qdrant_client import QdrantClient

    from vllm_embed.migrate import _qdrant_collections

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        qc = QdrantClient(path=str(make_langchain_qdrant(tmp_path / "db", n=6)))
    real_close = qc.close
    qc.close = lambda: None  # doctor closes its client; the test goes on with it
    monkeypatch.setattr(_qdrant_collections, "connect_qdrant", lambda url, timeout: qc)
    monkeypatch.setenv("QDRANT_API_KEY", QDRANT_KEY)
    yield "https://reader:pw-qd-93@qdrant.example:6333", qc
    real_close()


QDRANT_KEY = "qdrant-doctor-key-2b7e"


def test_qdrant_server_url_dimension_then_recorded_space(qdrant_url, client):
    url, qc = qdrant_url
    shown = "https://***@qdrant.example:6333"
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        unnamed = doctor_store(url)
        missing = doctor_store(url, "--collection", "nope")
        old = doctor_store(url, "--collection", COLLECTION)
        migrate_qdrant_collection(qc, COLLECTION, client, space_of_client(client))
        passed = doctor_store(url, "--collection", COLLECTION)
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        other = doctor_store(url, "--collection", COLLECTION)
    assert "--collection; found: docs" in store_line(unnamed)
    assert f"cannot read {shown}: Qdrant has no collection or alias 'nope'" in store_line(missing)
    assert store_line(old).lstrip().startswith("FAIL")
    assert f"holds {OLD_DIM}-dim vectors; the server produces {DIM}" in store_line(old)
    assert f"vllm-embed migrate '{shown}' --base-url " in old.output
    assert f" --collection {COLLECTION}`" in old.output
    assert passed.exit_code == 0, passed.output
    assert store_line(passed).lstrip().startswith("PASS")
    assert f"{shown} was built in model {MODEL!r}, dim {DIM}" in store_line(passed)
    assert other.exit_code == 1 and store_line(other).lstrip().startswith("FAIL")
    assert "intfloat/other-model" in store_line(other) and MODEL in store_line(other)
    outputs = unnamed.output + missing.output + old.output + passed.output + other.output
    assert QDRANT_KEY not in outputs and "pw-qd-93" not in outputs and API_KEY not in outputs


def test_unreachable_qdrant_server_fails_fast_by_name_without_the_key(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", QDRANT_KEY)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 6333)) != 0, "something listens on 6333"
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        router.route(host="127.0.0.1").pass_through()  # the real (refused) connection
        began = time.perf_counter()
        result = doctor_store("http://127.0.0.1:6333", "--collection", COLLECTION)
        took = time.perf_counter() - began
    assert result.exit_code == 1, result.output
    assert "cannot reach a Qdrant server at http://127.0.0.1:6333" in store_line(result)
    assert QDRANT_KEY not in result.output
    assert took < 10, took
