"""The engine's background assembly: the new store is written while rows are embedded.

What must hold: a streamed file is byte-identical to one written after the fact (and
to an interrupted-then-resumed run), a failure in the background thread stops the
run with the original untouched and a resumable work dir, the new store is read back
once (by the real library when it is installed), and a store whose ``.pkl`` changed
under a running migration is not installed.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest
from migrate_support import embedded_texts, make_dvd_store, make_langchain_faiss

from vllm_embed import StoreFormatError
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store, work_dir_for
from vllm_embed.migrate._jsonio import load_json_with_span
from vllm_embed.migrate._store import Rows, RowWriter
from vllm_embed.migrate.nanovectordb import NanoVectorDBStore
from vllm_embed_testing.respx_vllm import DIM

faiss.omp_set_num_threads(1)


def _rows(tmp_path: Path, count: int, dim: int, seed: int = 3) -> Rows:
    matrix = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    path = tmp_path / "rows.f32"
    matrix.astype("<f4").tofile(path)
    return Rows(path, count, dim)


def _stream(writer: RowWriter, rows: Rows, sizes: list[int]) -> None:
    """Feed ``rows`` to ``writer`` in blocks of the given sizes (cycled)."""
    matrix = np.fromfile(rows.path, dtype="<f4").reshape(rows.count, rows.dim)
    writer.begin()
    start, n = 0, 0
    while start < rows.count:
        size = sizes[n % len(sizes)]
        writer.add(matrix[start : start + size])
        start += size
        n += 1
    writer.finish()


@pytest.mark.parametrize("sizes", [[1], [3, 5], [7], [1000]])
def test_streamed_nano_file_equals_the_file_written_after(tmp_path, sizes):
    store = open_store(make_dvd_store(tmp_path / "database.json", n=23))
    assert isinstance(store, NanoVectorDBStore)
    keep = list(range(23))
    rows = _rows(tmp_path, 23, DIM)
    store.write(tmp_path / "after.json", keep, rows)
    writer = store.open_writer(tmp_path / "streamed.json", keep, DIM)
    assert writer is not None
    _stream(writer, rows, sizes)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "after.json").read_bytes()
    document = json.loads((tmp_path / "streamed.json").read_bytes())
    assert list(document) == ["embedding_dim", "data", "matrix", "additional_data"]
    assert document["embedding_dim"] == DIM and len(document["data"]) == 23


def test_nano_store_with_per_record_vectors_is_written_after(tmp_path):
    """LightRAG's per-record ``vector`` sits in ``data``, before the matrix: not streamed."""
    from migrate_support import make_lightrag_store

    path = make_lightrag_store(tmp_path)
    store = open_store(path)
    assert store.open_writer(tmp_path / "x.json", list(range(len(store.ids))), DIM) is None


def test_streamed_faiss_index_equals_the_index_written_after(tmp_path):
    store = open_store(
        make_langchain_faiss(tmp_path / "f", n=30), allow_dangerous_deserialization=True
    )
    keep = list(range(30))
    rows = _rows(tmp_path, 30, DIM)
    store.write(tmp_path / "after.faiss", keep, rows)
    writer = store.open_writer(tmp_path / "streamed.faiss", keep, DIM)
    assert writer is not None
    _stream(writer, rows, [4, 9])
    assert (tmp_path / "streamed.faiss").read_bytes() == (tmp_path / "after.faiss").read_bytes()


def test_trained_faiss_index_is_built_after_the_last_row(tmp_path):
    folder = make_langchain_faiss(tmp_path / "f", kind="IVF4,Flat", n=300)
    store = open_store(folder, allow_dangerous_deserialization=True)
    assert store.open_writer(tmp_path / "x.faiss", list(range(300)), DIM) is None


class _Broken(Exception):
    pass


def test_a_failing_background_writer_stops_the_run_and_the_rerun_resumes(
    tmp_path, fake_vllm, client, monkeypatch
):
    path = make_dvd_store(tmp_path / "database.json", n=40)
    original = path.read_bytes()
    real = NanoVectorDBStore.open_writer

    def broken(self, out, keep, dim):  # type: ignore[no-untyped-def]
        writer = real(self, out, keep, dim)

        def add(block):  # type: ignore[no-untyped-def]
            raise _Broken("disk full")

        writer.add = add
        return writer

    monkeypatch.setattr(NanoVectorDBStore, "open_writer", broken)
    with pytest.raises(_Broken, match="disk full"):
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=8))
    assert path.read_bytes() == original
    work = work_dir_for(path)
    assert (work / "journal.log").read_text().count("\n") == 5  # every chunk was kept
    sent = len(embedded_texts(fake_vllm))

    monkeypatch.setattr(NanoVectorDBStore, "open_writer", real)
    result = migrate_store(open_store(path), client, MigrationOptions(chunk_rows=8))
    assert result.resumed == 40 and result.embedded_now == 0
    assert len(embedded_texts(fake_vllm)) == sent  # nothing embedded twice
    assert not work.exists()

    (tmp_path / "ref").mkdir()
    reference = make_dvd_store(tmp_path / "ref" / "database.json", n=40)
    migrate_store(open_store(reference), client, MigrationOptions(chunk_rows=40))
    assert path.read_bytes() == reference.read_bytes()


def test_the_new_store_is_read_once_by_the_library(tmp_path, fake_vllm, client, monkeypatch):
    """nano-vectordb installed: its reader checks the file and ours does not run again."""
    path = make_dvd_store(tmp_path / "database.json", n=12)
    calls = []
    monkeypatch.setattr(NanoVectorDBStore, "check_written", lambda *a, **k: calls.append(a))
    result = migrate_store(open_store(path), client)
    assert result.verified_with == ["nano-vectordb"]
    assert calls == []
    assert list(result.phases) == ["prepare", "embed", "finish", "verify", "install"]
    assert all(v >= 0 for v in result.phases.values())


def test_library_check_refuses_a_file_with_a_bad_row(tmp_path):
    """What nano-vectordb read is checked: a zero row (its cosine query divides by the
    norm) is refused, although the writer keeps it zero."""
    store = open_store(make_dvd_store(tmp_path / "database.json", n=6))
    rows = _rows(tmp_path, 6, DIM)
    matrix = np.fromfile(rows.path, dtype="<f4").reshape(6, DIM)
    matrix[4] = 0.0
    matrix.tofile(rows.path)
    out = tmp_path / "new.json"
    store.write(out, list(range(6)), rows)
    written = np.frombuffer(base64.b64decode(json.loads(out.read_bytes())["matrix"]), "<f4")
    assert not written.reshape(6, DIM)[4].any()  # the zero row stays zero (no NaN)
    with pytest.raises(StoreFormatError, match="row 4 is zero, NaN or inf"):
        store.check_with_library(out, store.ids, DIM)
    with pytest.raises(StoreFormatError, match="record ids differ"):
        store.check_with_library(out, list(reversed(store.ids)), DIM)


def test_changed_pickle_is_not_installed(tmp_path, fake_vllm, client):
    folder = make_langchain_faiss(tmp_path / "f", n=20)
    original = (folder / "index.faiss").read_bytes()
    store = open_store(folder, allow_dangerous_deserialization=True)
    pkl = folder / "index.pkl"
    stat = pkl.stat()
    os.utime(pkl, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(StoreFormatError, match="changed while it was migrated"):
        migrate_store(store, client)
    assert (folder / "index.faiss").read_bytes() == original


def test_old_matrix_is_not_decoded_to_migrate_but_strictly_when_read(tmp_path, fake_vllm, client):
    """A character outside base64 in the OLD matrix: the migration (which never decodes
    the old vectors) replaces it, the backup keeps it; reading the old vectors refuses."""
    path = make_dvd_store(tmp_path / "database.json", n=6)
    raw = path.read_bytes()
    at = raw.index(b'"matrix": "') + len(b'"matrix": "') + 10
    damaged = raw[:at] + b"*" + raw[at + 1 :]
    path.write_bytes(damaged)
    document, span = load_json_with_span(path, "matrix")
    assert span is not None and document["matrix"] is None
    store = open_store(path)
    with pytest.raises(StoreFormatError, match="not valid base64"):
        store.sample_vectors(2)
    result = migrate_store(store, client)
    assert result.backup is not None and result.backup.read_bytes() == damaged
    assert json.loads(path.read_bytes())["embedding_dim"] == DIM


@pytest.mark.parametrize(
    ("matrix", "ok"),
    [
        ("QUJD", True),
        ("QUI=", True),
        ("QQ==", True),
        ("Q===", False),
        ("QUJ", False),
        ("Q=I=", False),
    ],
)
def test_matrix_shape_check(tmp_path, matrix, ok):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"embedding_dim": 1, "data": [], "matrix": matrix}))
    if ok:
        _, span = load_json_with_span(path, "matrix")
        assert span is not None and (span.end - span.start) == len(matrix)
    else:
        with pytest.raises(StoreFormatError, match="not valid base64"):
            load_json_with_span(path, "matrix")


def test_matrix_found_at_its_expected_end_equals_the_scan(tmp_path):
    """The end computed from ``embedding_dim`` x records gives what scanning gives."""
    from vllm_embed.migrate.nanovectordb import matrix_b64_length

    path = make_dvd_store(tmp_path / "database.json", n=9)
    fast = load_json_with_span(path, "matrix", expected_length=matrix_b64_length)
    scanned = load_json_with_span(path, "matrix")
    assert fast == scanned and fast[1] is not None


@pytest.mark.parametrize(
    "edit",
    [
        # a record field named "matrix" comes first: the head does not parse, scan instead
        lambda d: {**d, "data": [{**d["data"][0], "matrix": "AAAA"}, *d["data"][1:]]},
        # one row short: the quote is not where 9 rows put it, the scan reports the count
        lambda d: {**d, "matrix": d["matrix"][: -(4 * DIM * 4 // 3) - 4]},
    ],
)
def test_matrix_not_at_its_expected_end_falls_back_to_the_scan(tmp_path, edit):
    from vllm_embed.migrate.nanovectordb import matrix_b64_length

    path = make_dvd_store(tmp_path / "database.json", n=9)
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    try:
        fast = load_json_with_span(path, "matrix", expected_length=matrix_b64_length)
    except StoreFormatError as exc:
        with pytest.raises(StoreFormatError) as scanned:
            load_json_with_span(path, "matrix")
        assert str(scanned.value) == str(exc)
    else:
        assert fast == load_json_with_span(path, "matrix")


@pytest.mark.parametrize("dim", [3, 256, 384, 1024])
@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_flat_header_is_faiss_own(dim, metric):
    """Header + raw rows is byte for byte what faiss.serialize_index writes (dimensions
    whose low byte is zero included), and faiss reads it back."""
    from vllm_embed.migrate.faiss import _flat_header

    rows = np.random.default_rng(dim).standard_normal((5, dim), dtype=np.float32)
    header = _flat_header(faiss.IndexFlat(dim, metric), 5, dim)
    assert header is not None
    built = faiss.IndexFlat(dim, metric)
    built.add(rows)
    data = header + rows.tobytes()
    assert data == bytes(faiss.serialize_index(built))
    read = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    np.testing.assert_array_equal(read.reconstruct_n(0, 5), rows)


def test_no_flat_header_for_other_indexes():
    from vllm_embed.migrate.faiss import _flat_header

    assert _flat_header(faiss.index_factory(8, "HNSW4"), 10, 8) is None


def test_hnsw_index_resumed_equals_uninterrupted(
    tmp_path, fake_vllm, failing_after, client, monkeypatch
):
    """An HNSW graph depends on how rows are split into ``add`` calls: the background
    writer adds fixed blocks, so an interrupted-then-resumed run (rows arriving in other
    blocks, at other times) writes the same bytes as an uninterrupted one."""
    from vllm_embed.migrate import faiss as faiss_format

    monkeypatch.setattr(faiss_format, "_ADD_BLOCK", 16)
    a = make_langchain_faiss(tmp_path / "a", kind="HNSW8", n=100)
    b = make_langchain_faiss(tmp_path / "b", kind="HNSW8", n=100)
    options = MigrationOptions(chunk_rows=7)

    migrate_store(open_store(b, allow_dangerous_deserialization=True), client, options)
    wrapper = fake_vllm.side_effect
    failing_after(fake_vllm, 1 + 35)
    with pytest.raises(Exception, match="run the same command again to resume"):
        migrate_store(open_store(a, allow_dangerous_deserialization=True), client, options)
    fake_vllm.side_effect = wrapper
    result = migrate_store(open_store(a, allow_dangerous_deserialization=True), client, options)
    assert result.resumed == 35 and result.embedded_now == 65
    index = faiss.read_index(str(a / "index.faiss"))
    assert type(index).__name__ == "IndexHNSWFlat" and index.ntotal == 100
    assert (a / "index.faiss").read_bytes() == (b / "index.faiss").read_bytes()
