"""LanceDB faults: the server gone mid-run leaves the original byte-identical and the same
command resumes without embedding anything twice, giving what an uninterrupted run gives;
a run killed while filling the copy goes on from the table's row count (``doctor --store``:
tests/doctor/test_lancedb_milvus.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lancedb_support import lance_rows, lance_vectors, make_langchain_lancedb
from stores_support import embedded_texts, listing, texts

from vllm_embed.migrate import migrate_store, open_store
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.migration import assert_server_gone_then_resumed
from vllm_embed_testing.respx_vllm import DIM


def _content(db: Path, table: str = "vectorstore") -> tuple[object, object]:
    return lance_rows(db, table), lance_vectors(db, table).round(6).tolist()


def test_server_gone_mid_run_then_resume(tmp_path, fake_vllm, failing_after, client):
    db, reference = assert_server_gone_then_resumed(
        lambda folder: make_langchain_lancedb(folder / "lancedb", n=10),
        tmp_path, fake_vllm, failing_after, client, texts=texts(10),
    )  # fmt: skip
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
