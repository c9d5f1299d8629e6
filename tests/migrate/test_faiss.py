"""FAISS stores: LangChain ``save_local`` folders and LightRAG's FAISS storage.

Every store is written by the real library (langchain-community's ``FAISS.save_local``,
lightrag-hku's ``FaissVectorDBStorage``) and read back with it after the migration.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import faiss
import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from migrate_support import (
    OLD_DIM,
    embedded_texts,
    faiss_texts,
    lightrag_faiss_query,
    make_langchain_faiss,
    make_lightrag_faiss,
)

from vllm_embed import MigrationError, StoreFormatError
from vllm_embed.migrate import (
    MigrationOptions,
    MissingTextError,
    PickleConsentError,
    UnsupportedIndexError,
    migrate_store,
    open_store,
    work_dir_for,
)
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import DIM, MODEL

faiss.omp_set_num_threads(1)  # a shared 2-core machine: OpenMP threads only contend here


class QueryEmbedding(Embeddings):
    """The fake server's vector for a text: a query finds the document of the same text."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [fake_vector(t, self.dim).tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _load(folder: Path, index_name: str = "index"):
    from langchain_community.vectorstores import FAISS

    return FAISS.load_local(
        str(folder), QueryEmbedding(DIM), index_name, allow_dangerous_deserialization=True
    )


def test_consent_is_required_before_the_pickle_is_read(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "faiss_index")
    before = _snapshot(folder)
    with pytest.raises(PickleConsentError, match="--allow-dangerous-deserialization") as info:
        open_store(folder)
    assert "runs code" in str(info.value)
    assert info.value.index_path == folder / "index.faiss"
    assert fake_vllm.call_count == 0
    assert _snapshot(folder) == before


def test_langchain_default_flat_l2(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "faiss_index")
    pkl = (folder / "index.pkl").read_bytes()
    original = (folder / "index.faiss").read_bytes()

    store = open_store(folder, allow_dangerous_deserialization=True)
    assert store.format == "LangChain FAISS (save_local)"
    assert store.old_dim == OLD_DIM and store.ids[:2] == ["doc-0", "doc-1"]
    assert store.texts == faiss_texts(40)  # page_content, in index order
    assert not store.stores_unit_vectors()  # LangChain's default keeps raw vectors
    result = migrate_store(store, client, MigrationOptions(chunk_rows=16))

    assert (result.old_dim, result.new_dim, result.records) == (OLD_DIM, DIM, 40)
    assert result.verified_with == ["langchain-community FAISS"]
    assert (folder / "index.pkl").read_bytes() == pkl  # only index.faiss is replaced
    assert result.backup == folder / f"index.d{OLD_DIM}.bak.faiss"
    assert result.backup.read_bytes() == original
    assert sorted(embedded_texts(fake_vllm)[1:]) == faiss_texts(40)
    index = faiss.read_index(str(folder / "index.faiss"))
    assert (type(index).__name__, index.d, index.ntotal) == ("IndexFlatL2", DIM, 40)
    np.testing.assert_allclose(index.reconstruct(7), fake_vector(faiss_texts(40)[7], DIM))

    db = _load(folder)
    hit = db.similarity_search(faiss_texts(40)[13], k=1)[0]
    assert (hit.id, hit.metadata) == ("doc-13", {"n": 13, "source": "file1.md"})
    space = json.loads((folder / "index.faiss.vllm-embed-space.json").read_text())
    assert (space["model"], space["dimension"]) == (MODEL, DIM)
    reopened = open_store(folder, allow_dangerous_deserialization=True)
    assert reopened.recorded_space() is not None
    assert reopened.recorded_space().model == MODEL
    assert not work_dir_for(folder / "index.faiss").exists()


def test_cosine_store_stays_inner_product_on_unit_rows(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "db", kind="cosine")
    store = open_store(folder, allow_dangerous_deserialization=True)
    assert store.stores_unit_vectors()
    migrate_store(store, client)
    index = faiss.read_index(str(folder / "index.faiss"))
    assert type(index).__name__ == "IndexFlatIP"
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT
    norms = np.linalg.norm(index.reconstruct_n(0, index.ntotal), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    db = FAISS.load_local(
        str(folder),
        QueryEmbedding(DIM),
        allow_dangerous_deserialization=True,
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=True,
    )
    hit, score = db.similarity_search_with_score(faiss_texts(40)[21], k=1)[0]
    assert hit.id == "doc-21" and score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("factory", "cls"),
    [
        ("IVF4,Flat", "IndexIVFFlat"),
        ("HNSW8", "IndexHNSWFlat"),
        ("IVF2,PQ4x4", "IndexIVFPQ"),
        ("SQ8", "IndexScalarQuantizer"),
    ],
)
def test_trained_and_graph_indexes_keep_their_class_and_parameters(
    tmp_path, fake_vllm, client, factory, cls
):
    folder = make_langchain_faiss(tmp_path / "db", kind=factory)
    old = faiss.read_index(str(folder / "index.faiss"))
    if hasattr(old, "hnsw"):
        old.hnsw.efSearch = 77
        faiss.write_index(old, str(folder / "index.faiss"))
    if isinstance(old, faiss.IndexIVF):
        old.nprobe = 3
        faiss.write_index(old, str(folder / "index.faiss"))
    migrate_store(open_store(folder, allow_dangerous_deserialization=True), client)
    new = faiss.read_index(str(folder / "index.faiss"))
    assert (type(new).__name__, new.d, new.ntotal, new.is_trained) == (cls, DIM, 40, True)
    if isinstance(new, faiss.IndexIVF):
        assert (new.nlist, new.nprobe) == (old.nlist, 3)
    if hasattr(new, "hnsw"):
        assert new.hnsw.efSearch == 77
        assert new.hnsw.nb_neighbors(1) == old.hnsw.nb_neighbors(1)  # same M
    if factory.startswith("IVF2,PQ"):
        assert (new.pq.M, new.pq.nbits) == (4, 4)
    db = _load(folder)
    hits = [d.id for d in db.similarity_search(faiss_texts(40)[5], k=5)]
    assert "doc-5" in hits


def test_pq_that_cannot_be_trained_on_the_new_rows_is_refused(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "db", kind="PQ4x8")  # 256 centroids, 40 rows
    before = _snapshot(folder)
    store = open_store(folder, allow_dangerous_deserialization=True)
    with pytest.raises(UnsupportedIndexError, match=r"IndexPQ.*could not be trained"):
        migrate_store(store, client)
    assert _snapshot(folder) == before  # no flat index in its place, no record


def test_unsupported_index_class_is_refused_before_any_request(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "db")
    index = faiss.IndexIDMap(faiss.IndexFlatL2(OLD_DIM))
    vectors = np.random.default_rng(0).standard_normal((40, OLD_DIM)).astype(np.float32)
    index.add_with_ids(vectors, np.arange(100, 140))
    faiss.write_index(index, str(folder / "index.faiss"))
    with pytest.raises(UnsupportedIndexError, match="IDMap"):
        open_store(folder, allow_dangerous_deserialization=True)
    assert fake_vllm.call_count == 0


def test_index_name_and_several_indexes_in_one_folder(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "db", index_name="kb", n=8)
    store = open_store(folder, allow_dangerous_deserialization=True)
    assert store.target == folder / "kb.faiss"
    make_langchain_faiss(folder, index_name="other", n=4)
    with pytest.raises(StoreFormatError, match=r"several FAISS indexes.*kb\.faiss.*other\.faiss"):
        open_store(folder, allow_dangerous_deserialization=True)
    for name in ("kb.faiss", "kb.pkl"):
        picked = open_store(folder / name, allow_dangerous_deserialization=True)
        assert picked.target == folder / "kb.faiss"
    untouched = (folder / "other.faiss").read_bytes()
    migrate_store(open_store(folder / "kb.faiss", allow_dangerous_deserialization=True), client)
    assert _load(folder, "kb").index.d == DIM
    assert (folder / "other.faiss").read_bytes() == untouched


def test_out_directory_gets_the_index_and_an_identical_pickle(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "db", n=6)
    before = _snapshot(folder)
    out = tmp_path / "db-new"
    store = open_store(folder, allow_dangerous_deserialization=True)
    result = migrate_store(store, client, MigrationOptions(out=out))
    assert result.backup is None and _snapshot(folder) == before
    assert (out / "index.pkl").read_bytes() == before["index.pkl"]
    assert sorted(p.name for p in out.iterdir()) == [
        "index.faiss",
        "index.faiss.vllm-embed-space.json",
        "index.pkl",
    ]
    assert _load(out).similarity_search(faiss_texts(6)[2], k=1)[0].id == "doc-2"


def test_blank_page_content_stops_even_with_drop(tmp_path, fake_vllm, client):
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = FAISS.from_texts(["fine", "  ", "also fine"], DeterministicFakeEmbedding(size=OLD_DIM))
    db.save_local(str(tmp_path / "db"))
    store = open_store(tmp_path / "db", allow_dangerous_deserialization=True)
    for drop in (False, True):
        with pytest.raises(MissingTextError, match=r"cannot leave records out|no text"):
            migrate_store(store, client, MigrationOptions(drop_missing_text=drop))
    assert fake_vllm.call_count == 0


def test_second_migration_moves_the_old_record_beside_the_backup(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "db", n=5)
    migrate_store(open_store(folder, allow_dangerous_deserialization=True), client)
    first = (folder / "index.faiss.vllm-embed-space.json").read_text()
    result = migrate_store(open_store(folder, allow_dangerous_deserialization=True), client)
    assert result.backup == folder / f"index.d{DIM}.bak.faiss"
    assert (folder / f"index.d{DIM}.bak.faiss.vllm-embed-space.json").read_text() == first
    assert json.loads((folder / "index.faiss.vllm-embed-space.json").read_text())["model"] == MODEL


# -- faults ------------------------------------------------------------------------------------
def test_server_gone_mid_run_then_resume_equals_an_uninterrupted_run(
    tmp_path, fake_vllm, failing_after, client
):
    folder = make_langchain_faiss(tmp_path / "db", n=40)
    before = _snapshot(folder)
    failing_after(fake_vllm, 1 + 16)  # the dimension probe, then two chunks of 8
    store = open_store(folder, allow_dangerous_deserialization=True)
    with pytest.raises(MigrationError, match="run the same command again to resume"):
        migrate_store(store, client, MigrationOptions(chunk_rows=8))
    assert _snapshot(folder) == before  # byte-identical, no record written
    assert work_dir_for(folder / "index.faiss").is_dir()

    wrapper = fake_vllm.side_effect
    fake_vllm.side_effect = wrapper.__closure__[0].cell_contents  # the server is back
    fake_vllm.reset()
    result = migrate_store(
        open_store(folder, allow_dangerous_deserialization=True),
        client,
        MigrationOptions(chunk_rows=8),
    )
    assert result.resumed == 16 and result.embedded_now == 24
    assert len(embedded_texts(fake_vllm)) == 24  # nothing embedded twice
    assert (folder / "index.pkl").read_bytes() == before["index.pkl"]

    reference = make_langchain_faiss(tmp_path / "ref", n=40)
    store = open_store(reference, allow_dangerous_deserialization=True)
    migrate_store(store, client, MigrationOptions(chunk_rows=8))
    assert (folder / "index.faiss").read_bytes() == (reference / "index.faiss").read_bytes()


def test_truncated_index_file(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "db")
    data = (folder / "index.faiss").read_bytes()
    (folder / "index.faiss").write_bytes(data[: len(data) // 2])
    before = _snapshot(folder)
    with pytest.raises(StoreFormatError, match="not a readable FAISS index"):
        open_store(folder, allow_dangerous_deserialization=True)
    assert _snapshot(folder) == before and fake_vllm.call_count == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "not a readable LangChain FAISS pickle"),
        (lambda b: pickle.dumps({"not": "a store"}), r"does not hold \(docstore"),
    ],
)
def test_damaged_pickle(tmp_path, fake_vllm, damage, message):
    folder = make_langchain_faiss(tmp_path / "db")
    pkl = folder / "index.pkl"
    pkl.write_bytes(damage(pkl.read_bytes()))
    before = _snapshot(folder)
    with pytest.raises(StoreFormatError, match=message):
        open_store(folder, allow_dangerous_deserialization=True)
    assert _snapshot(folder) == before and fake_vllm.call_count == 0


def test_index_and_pickle_from_different_saves(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "db", n=10)
    other = make_langchain_faiss(tmp_path / "other", n=7)
    (folder / "index.pkl").write_bytes((other / "index.pkl").read_bytes())
    with pytest.raises(StoreFormatError, match=r"holds 10 vectors but index\.pkl"):
        open_store(folder, allow_dangerous_deserialization=True)


def test_missing_pickle(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "db")
    (folder / "index.pkl").unlink()
    with pytest.raises(StoreFormatError, match=r"unknown store format|no index\.pkl"):
        open_store(folder / "index.faiss", allow_dangerous_deserialization=True)


# -- LightRAG --------------------------------------------------------------------------------
def test_lightrag_faiss_storage(tmp_path, fake_vllm, client):
    index_path = make_lightrag_faiss(tmp_path, n=12)
    meta = index_path.with_name(index_path.name + ".meta.json")
    meta_bytes = meta.read_bytes()
    for given in (tmp_path, index_path, meta):
        store = open_store(given)
        assert store.format == "LightRAG FAISS" and store.target == index_path
    assert store.stores_unit_vectors()  # LightRAG normalises (cosine on IndexFlatIP)
    assert store.texts == faiss_texts(12)
    result = migrate_store(store, client)
    assert result.verified_with == ["vllm-embed", "faiss"]
    assert meta.read_bytes() == meta_bytes
    index = faiss.read_index(str(index_path))
    assert (type(index).__name__, index.d, index.ntotal) == ("IndexFlatIP", DIM, 12)
    # LightRAG itself, configured for the new dimension, finds the expected chunk
    assert lightrag_faiss_query(index_path, DIM, faiss_texts(12)[9])[0] == "chunk-009"
    recorded = open_store(index_path).recorded_space()
    assert recorded is not None and recorded.normalized and recorded.dimension == DIM


def test_lightrag_meta_that_does_not_match_the_index(tmp_path, fake_vllm):
    index_path = make_lightrag_faiss(tmp_path, n=6)
    meta = index_path.with_name(index_path.name + ".meta.json")
    records = json.loads(meta.read_text())
    del records["5"]
    meta.write_text(json.dumps(records))
    with pytest.raises(StoreFormatError, match=r"holds 6 vectors but .* describes 5 rows"):
        open_store(index_path)
