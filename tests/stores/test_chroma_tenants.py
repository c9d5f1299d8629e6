"""Chroma directories with more than the default tenant and database (made by chromadb's
own AdminClient): every collection of every tenant/database is migrated, the names
stay, ``--collection`` picks one (and says when a plain name is ambiguous)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from stores_support import OLD_DIM, TENANT_LAYOUT, listing, make_tenant_chroma, texts

from vllm_embed import StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM


def _read(path: Path, tenant: str, database: str, name: str):  # type: ignore[no-untyped-def]
    import chromadb

    client = chromadb.PersistentClient(path=str(path), tenant=tenant, database=database)
    collection = client.get_collection(name, embedding_function=None)
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    meta = dict(collection.metadata or {})
    client.close()
    return got, meta


def _nearest(path: Path, tenant: str, database: str, name: str, text: str) -> str:
    """The first hit of a chromadb query for the fake server's vector of ``text``."""
    import chromadb

    client = chromadb.PersistentClient(path=str(path), tenant=tenant, database=database)
    try:
        collection = client.get_collection(name, embedding_function=None)
        hits = collection.query(query_embeddings=[fake_vector(text, DIM)], n_results=2)
        return str(hits["ids"][0][0])
    finally:
        client.close()


def test_every_tenant_and_database_is_migrated(tmp_path, fake_vllm, client):
    db = make_tenant_chroma(tmp_path / "chroma_db")
    original = listing(db)
    store = open_store(db)
    assert store.collections == [
        "default_tenant/default_database/papers",
        "acme/research/notes",
        "acme/research/papers",
        "globex/default_database/wiki",
    ]
    assert len(store.ids) == sum(count for *_, count in TENANT_LAYOUT)
    assert store.old_dim == OLD_DIM

    result = migrate_store(store, client)
    assert result.records == 14 and result.new_dim == DIM
    assert listing(result.backup) == original
    for n, (tenant, database, name, count) in enumerate(TENANT_LAYOUT):
        got, meta = _read(db, tenant, database, name)
        assert got["ids"] == [f"{name}-{i}" for i in range(count)]
        documents = [f"{tenant}/{database}: {t}" for t in texts(count)]
        assert got["documents"] == documents
        assert got["metadatas"] == [{"row": i} for i in range(count)]
        np.testing.assert_allclose(
            np.asarray(got["embeddings"]),
            np.stack([fake_vector(t, DIM) for t in documents]),
            rtol=1e-5,
        )
        assert meta.pop(SPACE_KEY)  # the space is recorded in every collection
        assert meta == {"hnsw:space": "cosine", "n": n}
        # queried back through chromadb: the record of the queried text comes first
        assert _nearest(db, tenant, database, name, documents[1]) == f"{name}-1"


def test_collection_picks_one_and_a_shared_name_is_ambiguous(tmp_path, fake_vllm, client):
    db = make_tenant_chroma(tmp_path / "chroma_db")
    with pytest.raises(StoreFormatError, match="2 collections are named 'papers'") as info:
        open_store(db, collection="papers")
    assert "default_tenant/default_database/papers, acme/research/papers" in str(info.value)
    assert "--collection TENANT/DATABASE/NAME" in str(info.value)

    store = open_store(db, collection="acme/research/papers")
    assert store.collections == ["acme/research/papers"] and len(store.ids) == 4
    migrate_store(store, client)
    got, _ = _read(db, "acme", "research", "papers")
    assert np.asarray(got["embeddings"]).shape == (4, DIM)
    untouched, _ = _read(db, "default_tenant", "default_database", "papers")
    assert np.asarray(untouched["embeddings"]).shape == (3, OLD_DIM)

    wiki = open_store(db, collection="wiki")  # unique plain name
    assert wiki.collections == ["globex/default_database/wiki"]
    default = open_store(db, collection="default_tenant/default_database/papers")
    assert default.collections == ["default_tenant/default_database/papers"]
    assert len(default.ids) == 3


def test_cli_migrates_one_tenant_collection(tmp_path, fake_vllm):
    db = make_tenant_chroma(tmp_path / "chroma_db")
    args = ["migrate", str(db), "--base-url", BASE_URL, "--yes"]
    result = CliRunner().invoke(
        main, [*args, "--collection", "acme/research/notes"], env={"VLLM_EMBED_API_KEY": API_KEY}
    )
    assert result.exit_code == 0, result.output
    assert "acme/research/notes" in result.output
    got, _ = _read(db, "acme", "research", "notes")
    assert np.asarray(got["embeddings"]).shape == (2, DIM)
