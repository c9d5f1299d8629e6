"""Faults for Chroma and kano: the server gone mid-run leaves the original byte-identical;
the same command resumes without embedding anything twice and gives what an
uninterrupted run gives; a run killed while writing the copy just writes it again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from stores_support import embedded_texts, listing, make_kano_index, make_langchain_chroma, texts

from vllm_embed import MigrationError
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store, work_dir_for
from vllm_embed.migrate._space import SPACE_KEY
from vllm_embed_testing.migration import assert_server_gone_then_resumed


def _plain(route):  # type: ignore[no-untyped-def]
    return route.side_effect.answer


def _chroma_content(path: Path) -> dict[str, object]:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    try:
        out: dict[str, object] = {}
        for c in client.list_collections():
            col = client.get_collection(c.name, embedding_function=None)
            got = col.get(include=["documents", "metadatas", "embeddings"])
            meta = {k: v for k, v in (col.metadata or {}).items() if k != SPACE_KEY}
            out[c.name] = (
                got["ids"],
                got["documents"],
                got["metadatas"],
                np.asarray(got["embeddings"]).round(6).tolist(),
                meta,
                col.configuration_json,
            )
        return out
    finally:
        client.close()


def test_chroma_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    db, reference = assert_server_gone_then_resumed(
        lambda folder: make_langchain_chroma(folder / "chroma_db", n=10),
        tmp_path, fake_vllm, failing_after, client, texts=texts(10),
    )  # fmt: skip
    assert _chroma_content(db) == _chroma_content(reference)


def test_chroma_killed_while_writing_the_copy(tmp_path, fake_vllm, client, monkeypatch):
    db = make_langchain_chroma(tmp_path / "chroma_db", n=6)
    original = listing(db)
    from vllm_embed.migrate import chroma

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # the process killed after the copy, while filling it

    monkeypatch.setattr(chroma.ChromaStore, "_create_again", crash)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db), client)
    assert listing(db) == original
    assert (work_dir_for(db) / "output.tmp").is_dir()  # the half-made copy

    monkeypatch.undo()
    fake_vllm.reset()
    result = migrate_store(open_store(db), client)
    assert result.resumed == 6 and embedded_texts(fake_vllm) == []
    assert _chroma_content(db)["langchain"][0] == [f"id-{i}" for i in range(6)]


def _kano_content(path: Path) -> tuple[object, object]:
    conn = sqlite3.connect(path)
    try:
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM meta") if k != SPACE_KEY}
        rows = conn.execute("SELECT * FROM repo_chunks_chunks ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return meta, rows


@pytest.mark.parametrize("storage_format", ["binary", "json"])
def test_kano_server_gone_mid_run_then_resume(
    tmp_path, fake_vllm, failing_after, client, storage_format
):
    (tmp_path / "app").mkdir()
    db = make_kano_index(tmp_path / "app", storage_format=storage_format, n=12)
    original = listing(db.parent)
    failing_after(fake_vllm, 1 + 4)

    with pytest.raises(MigrationError, match="stopped at record 4 of 12"):
        migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    assert {
        k: v for k, v in listing(db.parent).items() if "vllm-embed-migrate" not in k
    } == original

    fake_vllm.side_effect = _plain(fake_vllm)
    fake_vllm.reset()
    result = migrate_store(open_store(db), client, MigrationOptions(chunk_rows=4))
    assert (result.resumed, result.embedded_now) == (4, 8)
    assert len(embedded_texts(fake_vllm)) == 8
    assert result.backup is not None and result.backup.read_bytes() == original[db.name]

    (tmp_path / "ref").mkdir()
    ref = make_kano_index(tmp_path / "ref", storage_format=storage_format, n=12)
    reference = migrate_store(open_store(ref), client, MigrationOptions(chunk_rows=4))
    assert result.output.name == reference.output.name
    assert _kano_content(result.output) == _kano_content(reference.output)


def test_chroma_killed_while_filling_goes_on_from_the_collection_count(
    tmp_path, fake_vllm, client, monkeypatch
):
    from chromadb.api.models.Collection import Collection

    from vllm_embed.migrate import chroma

    db = make_langchain_chroma(tmp_path / "chroma_db", n=10)
    original = listing(db)
    monkeypatch.setattr(chroma.ChromaStore, "batch_cap", 3)
    added: list[list[str]] = []
    kill = {"after": 2}
    real_add = Collection.add

    def add(self, ids, **kwargs):  # type: ignore[no-untyped-def]
        if len(added) == kill["after"]:
            raise KeyboardInterrupt  # killed after two batches went in
        added.append(list(ids))
        return real_add(self, ids=ids, **kwargs)

    monkeypatch.setattr(Collection, "add", add)
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
    content = _chroma_content(db)["langchain"]
    assert content[0] == [f"id-{i}" for i in range(10)]
    assert content[1] == texts(10)
