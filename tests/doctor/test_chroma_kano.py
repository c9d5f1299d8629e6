"""``vllm-embed doctor --store`` on Chroma directories and kano indexes (fake server):
the space recorded by ``migrate`` in the collection metadata / the ``meta`` table, else
the probe of stored vectors; every collection of every tenant and database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from doctor_support import (
    assert_passes_then_another_model_fails,
    doctor_store,
    store_line,
    store_lines,
)
from stores_support import (
    OLD_DIM,
    make_kano_index,
    make_langchain_chroma,
    make_tenant_chroma,
    texts,
)

from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM


def test_migrated_chroma_passes_and_another_model_fails(tmp_path, client):
    assert_passes_then_another_model_fails(
        make_langchain_chroma(tmp_path / "chroma_db", n=6), client
    )


def test_migrated_kano_index_passes(tmp_path, fake_vllm, client):
    db = make_kano_index(tmp_path / "vectors")
    result = migrate_store(open_store(db), client)
    doctor = doctor_store(result.output)
    assert doctor.exit_code == 0, doctor.output
    assert store_line(doctor).lstrip().startswith("PASS")


def _chroma_with(path: Path, vectors: np.ndarray) -> Path:
    """A Chroma collection (no record) holding ``texts`` with the given vectors."""
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection("docs", embedding_function=None)
    collection.add(
        ids=[f"d{i}" for i in range(len(vectors))],
        embeddings=vectors,
        documents=texts(len(vectors)),
    )
    client.close()
    return path


def test_chroma_without_a_record_is_probed(tmp_path, fake_vllm):
    same = _chroma_with(tmp_path / "same", np.stack([fake_vector(t, DIM) for t in texts(6)]))
    result = doctor_store(same)
    assert result.exit_code == 0, result.output
    assert store_line(result).lstrip().startswith("PASS") and "mean cosine 1.0000" in store_line(
        result
    )

    other = np.random.default_rng(7).standard_normal((6, DIM)).astype(np.float32)
    result = doctor_store(_chroma_with(tmp_path / "other", other))
    assert result.exit_code == 1, result.output
    assert store_line(result).lstrip().startswith("FAIL") and "another model" in store_line(result)


def _two_collections(path: Path) -> Path:
    """``docs`` holds the fake server's vectors of its texts, ``notes`` other vectors."""
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    same = np.stack([fake_vector(t, DIM) for t in texts(6)])
    other = np.random.default_rng(11).standard_normal((6, DIM)).astype(np.float32)
    for name, vectors in (("docs", same), ("notes", other)):
        client.create_collection(name, embedding_function=None).add(
            ids=[f"{name}{i}" for i in range(6)], embeddings=vectors, documents=texts(6)
        )
    client.close()
    return path


def test_every_collection_of_a_chroma_directory_is_judged(tmp_path, fake_vllm):
    db = _two_collections(tmp_path / "db")
    result = doctor_store(db)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "store space" in line]
    assert len(lines) == 2, result.output
    docs = next(line for line in lines if "(collection docs)" in line)
    notes = next(line for line in lines if "(collection notes)" in line)
    assert docs.lstrip().startswith("PASS") and notes.lstrip().startswith("FAIL")
    assert f"vllm-embed migrate {db} --base-url {BASE_URL} --collection notes" in result.output

    one = doctor_store(db, "--collection", "docs")
    assert one.exit_code == 0, one.output
    assert store_line(one).lstrip().startswith("PASS") and "(collection docs)" in store_line(one)


def test_unknown_collection_is_a_failed_check(tmp_path, fake_vllm):
    db = _two_collections(tmp_path / "db")
    result = doctor_store(db, "--collection", "nope")
    assert result.exit_code == 1, result.output
    assert store_line(result).lstrip().startswith("FAIL") and "nope" in store_line(result)


def _mixed_chroma(path: Path) -> Path:
    """Three collections, no record: ``same`` (the fake server's vectors of its texts),
    ``mid`` (cosine 0.95 to them) and ``other`` (another model's)."""
    import chromadb

    fresh = np.stack([fake_vector(t, DIM) for t in texts(6)]).astype(np.float64)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    noise = np.random.default_rng(11).standard_normal(fresh.shape)
    noise -= (noise * fresh).sum(axis=1, keepdims=True) * fresh  # orthogonal to fresh
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mid = 0.95 * fresh + np.sqrt(1 - 0.95**2) * noise
    other = np.random.default_rng(7).standard_normal(fresh.shape)
    client = chromadb.PersistentClient(path=str(path))
    for name, vectors in (("same", fresh), ("mid", mid), ("other", other)):
        client.create_collection(name, embedding_function=None).add(
            ids=[f"{name}{i}" for i in range(6)],
            embeddings=vectors.astype(np.float32),
            documents=texts(6),
        )
    client.close()
    return path


def test_pass_warn_and_fail_collections_each_reported(tmp_path, fake_vllm, monkeypatch):
    import vllm_embed.migrate._detect as detect

    reads: list[object] = []
    real = detect.read_chroma
    monkeypatch.setattr(detect, "read_chroma", lambda *a, **k: reads.append(a) or real(*a, **k))
    db = _mixed_chroma(tmp_path / "db")
    result = doctor_store(db)
    assert result.exit_code == 1, result.output
    assert len(reads) == 1  # the directory is read (copied) once, not once per collection
    lines = {
        line.split("(collection ", 1)[1].split(")", 1)[0]: line for line in store_lines(result)
    }
    assert sorted(lines) == ["mid", "other", "same"], result.output
    assert lines["same"].startswith("PASS") and "mean cosine 1.0000" in lines["same"]
    assert lines["mid"].startswith("WARN") and "mean cosine 0.9500" in lines["mid"]
    assert lines["other"].startswith("FAIL") and "another model" in lines["other"]
    assert f"vllm-embed migrate {db} --base-url {BASE_URL} --collection other" in result.output
    assert "1 check(s) failed." in result.output


def test_collection_flag_judges_only_that_collection(tmp_path, fake_vllm):
    db = _mixed_chroma(tmp_path / "db")
    for name, mark, code in (("same", "PASS", 0), ("mid", "WARN", 0), ("other", "FAIL", 1)):
        result = doctor_store(db, "--collection", name)
        assert result.exit_code == code, result.output
        lines = store_lines(result)
        assert len(lines) == 1 and lines[0].startswith(mark), result.output
        assert f"store space (collection {name})" in lines[0]


def test_collections_of_several_tenants_with_a_shared_name(tmp_path, fake_vllm, client):
    """Only the default tenant's ``notes`` migrated: the ``notes`` of database ``extra``
    and the other tenant's ``papers`` still hold 24-dim vectors, each named so that its
    fix command picks exactly it."""
    import chromadb

    db = tmp_path / "db"
    chroma = chromadb.PersistentClient(path=str(db))
    admin = chromadb.AdminClient(chroma.get_settings())
    admin.create_database("extra")
    admin.create_tenant("acme")
    admin.create_database("research", tenant="acme")
    for tenant, database, name in (
        ("default_tenant", "default_database", "notes"),
        ("default_tenant", "extra", "notes"),
        ("acme", "research", "papers"),
    ):
        chroma.set_tenant(tenant, database)
        chroma.create_collection(name, embedding_function=None).add(
            ids=["a", "b"], embeddings=np.ones((2, OLD_DIM), np.float32), documents=texts(2)
        )
    chroma.close()
    admin.clear_system_cache()  # as an app exiting would: no client left on the path
    migrate_store(open_store(db, collection="default_tenant/default_database/notes"), client)
    result = doctor_store(db)
    assert result.exit_code == 1, result.output
    lines = store_lines(result)
    assert [line[:4] for line in lines] == ["PASS", "FAIL", "FAIL"], result.output
    assert "(collection default_tenant/default_database/notes)" in lines[0]
    assert "(collection acme/research/papers)" in lines[1] and f"{OLD_DIM}-dim" in lines[1]
    assert "(collection default_tenant/extra/notes)" in lines[2]
    assert "--collection default_tenant/extra/notes" in result.output

    ambiguous = doctor_store(db, "--collection", "notes")
    assert ambiguous.exit_code == 1
    assert "named 'notes'" in ambiguous.output and "TENANT/DATABASE/NAME" in ambiguous.output
    one = doctor_store(db, "--collection", "default_tenant/default_database/notes")
    assert one.exit_code == 0 and [x[:4] for x in store_lines(one)] == ["PASS"], one.output


def test_collection_without_store_is_a_usage_error(fake_vllm):
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--collection", "x"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--collection needs --store" in result.output


def test_doctor_judges_every_collection_of_every_tenant(tmp_path, fake_vllm, client):
    db = make_tenant_chroma(tmp_path / "chroma_db")
    migrate_store(open_store(db), client)
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--store", str(db)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "store space" in line]
    assert len(lines) == 4, result.output
    assert all(line.lstrip().startswith("PASS") for line in lines), result.output
    assert any("(collection default_tenant/default_database/papers)" in x for x in lines)
