"""``vllm-embed doctor --store``: the store's embedding space against the live (fake) server.

Stores are written by the real libraries; a recorded space comes from a real
``vllm-embed migrate`` run, a store without one is judged by the probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import respx
from doctor_support import doctor_store, store_line
from migrate_support import OLD_DIM, make_langchain_faiss, make_langchain_store

from vllm_embed.migrate import EmbeddingSpace, migrate_store, open_store, write_sidecar
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM, MODEL, mount

TEXTS = [f"note {i}: the store keeps this sentence" for i in range(10)]


def _nano(path: Path, vectors: np.ndarray) -> Path:
    """A nano-vectordb store (NanoVectorDB.save) of TEXTS with the given vectors."""
    from nano_vectordb import NanoVectorDB

    db = NanoVectorDB(vectors.shape[1], storage_file=str(path))
    db.upsert(
        [
            {"__id__": f"n{i}", "__vector__": v, "content": t}
            for i, (t, v) in enumerate(zip(TEXTS, vectors, strict=True))
        ]
    )
    db.save()
    return path


def test_store_migrated_for_this_server_passes(tmp_path, fake_vllm, client):
    path = make_langchain_store(tmp_path / "lc.json")
    migrate_store(open_store(path), client)
    result = doctor_store(path)
    assert result.exit_code == 0, result.output
    assert store_line(result).lstrip().startswith("PASS")
    assert f"model {MODEL!r}, dim {DIM}" in store_line(result)


def test_same_dimension_another_model_fails_naming_both_and_the_fix(tmp_path, client):
    path = make_langchain_store(tmp_path / "lc.json")
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        migrate_store(open_store(path), client)  # built with fake-model, 16 dims
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        result = doctor_store(path)
    assert result.exit_code == 1, result.output
    line = store_line(result)
    assert line.lstrip().startswith("FAIL")
    assert MODEL in line and "intfloat/other-model" in line
    assert f"vllm-embed migrate {path}" in result.output


def test_another_document_instruction_fails(tmp_path, fake_vllm):
    path = make_langchain_store(tmp_path / "lc.json")
    write_sidecar(path, EmbeddingSpace(MODEL, DIM, document_instruction="passage: "))
    result = doctor_store(path)
    assert result.exit_code == 1
    assert "document instruction 'passage: '" in store_line(result)


def test_probe_of_a_store_without_record_made_by_the_same_model(tmp_path, fake_vllm):
    path = _nano(tmp_path / "kb.json", np.stack([fake_vector(t, DIM) for t in TEXTS]))
    result = doctor_store(path)
    assert result.exit_code == 0, result.output
    line = store_line(result)
    assert line.lstrip().startswith("PASS")
    assert "8 stored texts re-embedded: mean cosine 1.0000" in line


def test_probe_of_a_store_made_by_another_model(tmp_path, fake_vllm):
    rng = np.random.default_rng(7)
    path = _nano(tmp_path / "kb.json", rng.standard_normal((10, DIM)).astype(np.float32))
    result = doctor_store(path)
    assert result.exit_code == 1
    assert store_line(result).lstrip().startswith("FAIL")
    assert "another model" in store_line(result)
    assert f"vllm-embed migrate {tmp_path / 'kb.json'}" in result.output


def test_probe_in_between_warns_with_the_figures(tmp_path, fake_vllm):
    rng = np.random.default_rng(3)
    fresh = np.stack([fake_vector(t, DIM) for t in TEXTS])
    noise = rng.standard_normal(fresh.shape).astype(np.float32)
    noise -= (noise * fresh).sum(axis=1, keepdims=True) * fresh  # orthogonal to fresh
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mixed = 0.94 * fresh + np.sqrt(1 - 0.94**2) * noise  # cosine 0.94 with the fresh one
    path = _nano(tmp_path / "kb.json", mixed.astype(np.float32))
    result = doctor_store(path)
    assert result.exit_code == 0, result.output
    line = store_line(result)
    assert line.lstrip().startswith("WARN")
    assert "mean cosine 0.9400" in line


def test_probe_of_another_dimension_fails(tmp_path, fake_vllm):
    rng = np.random.default_rng(1)
    path = _nano(tmp_path / "kb.json", rng.standard_normal((10, OLD_DIM)).astype(np.float32))
    result = doctor_store(path)
    assert result.exit_code == 1
    assert f"holds {OLD_DIM}-dim vectors; the server produces {DIM}" in store_line(result)


@pytest.mark.parametrize("consent", [False, True])
def test_faiss_record_is_read_without_the_pickle(tmp_path, fake_vllm, client, consent):
    folder = make_langchain_faiss(tmp_path / "db", n=6)
    extra = ["--allow-dangerous-deserialization"] if consent else []
    before = doctor_store(folder, *extra)
    if consent:  # probed: the old vectors come from another (fake) embedding
        assert store_line(before).lstrip().startswith("FAIL"), before.output
    else:
        assert store_line(before).lstrip().startswith("WARN")
        assert "--allow-dangerous-deserialization" in before.output
    migrate_store(open_store(folder, allow_dangerous_deserialization=True), client)
    after = doctor_store(folder, *extra)
    assert after.exit_code == 0, after.output
    assert store_line(after).lstrip().startswith("PASS")
