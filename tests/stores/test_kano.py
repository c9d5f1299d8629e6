"""kano-backlog SQLite indexes (binary, JSON, with a sqlite-vec vec0 table): migrated
with the fake server, written under the new space id's file name, read back."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest
from stores_support import KANO_SPACE, OLD_DIM, embedded_texts, listing, make_kano_index, texts

from vllm_embed import MigrationError, StoreFormatError
from vllm_embed.migrate import MigrationOptions, MissingTextError, migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed.migrate.kano import KanoStore, connect_vec, new_space_id, space_components
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM, MODEL

NEW_SPACE = (
    f"corpus:repo|emb:openai:{MODEL}:d{DIM}|tok:tiktoken:cl100k_base:max8192|chunk:v1|metric:cosine"
)


def _name(space: str) -> str:
    return f"repo_chunks.{hashlib.sha256(space.encode()).hexdigest()[:12]}"


def test_new_space_id_replaces_only_the_emb_component():
    assert new_space_id(KANO_SPACE, MODEL, DIM) == NEW_SPACE
    backlog = "emb:sentence-transformers:all-MiniLM-L6-v2:d384|tok:hf:x:max256|chunk:v2|metric:l2"
    assert new_space_id(backlog, "m/e5:latest", 8) == (
        "emb:openai:m/e5:latest:d8|tok:hf:x:max256|chunk:v2|metric:l2"
    )
    assert space_components(NEW_SPACE)["emb"] == f"openai:{MODEL}:d{DIM}"


@pytest.mark.parametrize("storage_format", ["binary", "json"])
def test_kano_index_is_rewritten_under_the_new_name(tmp_path, fake_vllm, client, storage_format):
    vectors = tmp_path / ".cache" / "vectors"
    db = make_kano_index(vectors, storage_format=storage_format)
    original = db.read_bytes()
    old_meta = (vectors / f"{_name(KANO_SPACE)}.meta.json").read_bytes()

    store = open_store(vectors)  # the .cache/vectors/ directory is enough
    assert isinstance(store, KanoStore) and store.path == db
    assert store.format == f"kano-backlog SQLite index ({storage_format}; repo_chunks)"
    result = migrate_store(store, client, MigrationOptions(chunk_rows=5))

    new_db = vectors / f"{_name(NEW_SPACE)}.sqlite3"
    assert result.output == new_db
    assert result.backup == vectors / f"{_name(KANO_SPACE)}.d{OLD_DIM}.bak.sqlite3"
    assert result.backup.read_bytes() == original
    assert (vectors / f"{_name(KANO_SPACE)}.d{OLD_DIM}.bak.meta.json").read_bytes() == old_meta
    assert sorted(p.name for p in vectors.iterdir()) == sorted(
        [
            new_db.name,
            f"{_name(NEW_SPACE)}.meta.json",
            result.backup.name,
            f"{_name(KANO_SPACE)}.d{OLD_DIM}.bak.meta.json",
        ]
    )
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(12))

    conn = sqlite3.connect(new_db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["dims"] == str(DIM) and meta["embedding_space_id"] == NEW_SPACE
    assert meta["storage_format"] == storage_format and meta["metric"] == "cosine"
    assert EmbeddingSpace.from_json(meta[SPACE_KEY]).model == MODEL
    rows = conn.execute(
        "SELECT chunk_id, text, metadata_json, vector_json FROM repo_chunks_chunks ORDER BY rowid"
    ).fetchall()
    conn.close()
    assert [r[0] for r in rows] == [f"chunk-{i:03d}" for i in range(12)]
    for (_, text, metadata, raw), expected in zip(rows, texts(12), strict=True):
        assert text == expected
        data = json.loads(metadata)
        assert data["embedding_model"] == MODEL and data["embedding_dimension"] == DIM
        assert data["source_path"].startswith("src/")
        if storage_format == "binary":
            assert isinstance(raw, bytes)
            vector = np.frombuffer(raw, dtype=np.float32)
        else:
            vector = np.asarray(json.loads(raw), dtype=np.float32)
        np.testing.assert_allclose(vector, fake_vector(expected, DIM), atol=1e-6)

    side = json.loads((vectors / f"{_name(NEW_SPACE)}.meta.json").read_text())
    assert side["database"] == new_db.name and side["embedding_space_id"] == NEW_SPACE
    assert side["hash"] == _name(NEW_SPACE).split(".")[1]
    assert side["config"] == {
        "dimensions": DIM,
        "metric": "cosine",
        "storage_format": storage_format,
    }
    assert side["components"]["emb"] == f"openai:{MODEL}:d{DIM}"
    assert side["components"]["tok"] == "tiktoken:cl100k_base:max8192"

    again = open_store(new_db)
    assert again.recorded_space() is not None and again.recorded_space().dimension == DIM
    sample = again.sample_vectors(4)
    assert sample is not None and sample[0] == texts(4)
    np.testing.assert_allclose(sample[1][3], fake_vector(texts(4)[3], DIM), atol=1e-6)


def test_vec0_table_is_rebuilt_at_the_new_dimension(tmp_path, fake_vllm, client):
    db = make_kano_index(tmp_path, vec0=True)
    store = open_store(db)
    assert store.format == "kano-backlog SQLite index (binary + vec0; repo_chunks)"
    result = migrate_store(store, client)
    assert result.verified_with == ["vllm-embed", "sqlite-vec"]

    conn = connect_vec(result.output)
    query = fake_vector(texts(12)[9], DIM).tobytes()
    hits = conn.execute(
        "SELECT chunk_id, distance FROM repo_chunks_vec WHERE embedding MATCH ? AND k = 2",
        (query,),
    ).fetchall()
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'repo_chunks_vec'").fetchone()[0]
    conn.close()
    assert hits[0][0] == "chunk-009" and hits[0][1] == pytest.approx(0.0, abs=1e-5)
    assert f"FLOAT[{DIM}]" in sql and "distance_metric=cosine" in sql


def test_meta_json_path_and_file_path_are_detected(tmp_path):
    db = make_kano_index(tmp_path)
    assert open_store(db).path == db
    assert open_store(db.with_name(db.name.replace(".sqlite3", ".meta.json"))).path == db


def test_blank_text_stops_before_any_request(tmp_path, fake_vllm, client):
    db = make_kano_index(tmp_path, missing=2)
    before = listing(tmp_path)
    with pytest.raises(MissingTextError) as info:
        migrate_store(open_store(db), client)
    assert info.value.ids == ["chunk-000", "chunk-001"]
    assert embedded_texts(fake_vllm) == [] and listing(tmp_path) == before
    result = migrate_store(open_store(db), client, MigrationOptions(drop_missing_text=True))
    conn = sqlite3.connect(result.output)
    assert conn.execute("SELECT count(*) FROM repo_chunks_chunks").fetchone()[0] == 10
    conn.close()


def test_inconsistent_dims_are_refused(tmp_path):
    db = make_kano_index(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '32' WHERE key = 'dims'")
    conn.commit()
    conn.close()
    before = listing(tmp_path)
    with pytest.raises(StoreFormatError, match="meta dims is 32 but rows"):
        open_store(db)
    assert listing(tmp_path) == before


def test_truncated_and_garbage_files_are_named_errors(tmp_path):
    db = make_kano_index(tmp_path)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreFormatError, match="damaged or truncated"):
        open_store(db)
    db.write_bytes(b"not sqlite at all" * 10)
    with pytest.raises(StoreFormatError, match="not an SQLite database"):
        open_store(db)


def test_two_indexes_in_a_directory_need_a_choice(tmp_path):
    make_kano_index(tmp_path)
    make_kano_index(tmp_path, collection="backlog", space_id=KANO_SPACE.split("|", 1)[1])
    with pytest.raises(StoreFormatError, match="several kano indexes"):
        open_store(tmp_path)
    assert open_store(tmp_path, collection="backlog").collection == "backlog"


def test_vec0_without_sqlite_vec_is_refused_before_any_request(tmp_path, monkeypatch):
    import sys

    db = make_kano_index(tmp_path, vec0=True)
    monkeypatch.setitem(sys.modules, "sqlite_vec", None)
    with pytest.raises(MigrationError, match="pip install sqlite-vec"):
        open_store(db)


def test_out_writes_the_new_pair_into_a_new_directory(tmp_path, fake_vllm, client):
    db = make_kano_index(tmp_path / "vectors")
    before = listing(tmp_path / "vectors")
    out = tmp_path / "migrated"
    result = migrate_store(open_store(db), client, MigrationOptions(out=out))
    assert result.backup is None and result.output == out / f"{_name(NEW_SPACE)}.sqlite3"
    assert sorted(p.name for p in out.iterdir()) == [
        f"{_name(NEW_SPACE)}.meta.json",
        f"{_name(NEW_SPACE)}.sqlite3",
    ]
    assert listing(tmp_path / "vectors") == before
    assert open_store(out).recorded_space().dimension == DIM
