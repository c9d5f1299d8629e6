"""The low-level pieces: big-string-aware JSON reading, streamed base64, the journal."""

from __future__ import annotations

import base64
import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from migrate_support import OLD_DIM, make_generic_store

from vllm_embed.migrate import open_store
from vllm_embed.migrate._journal import WorkDir
from vllm_embed.migrate._jsonio import (
    Base64Writer,
    iter_f32_rows_b64,
    load_json_with_span,
)


class _Sink:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


@given(st.lists(st.binary(max_size=50), max_size=20))
def test_base64_writer_equals_one_shot_encoding(chunks: list[bytes]) -> None:
    sink = _Sink()
    writer = Base64Writer(sink)  # type: ignore[arg-type]
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    assert b"".join(sink.parts) == base64.b64encode(b"".join(chunks))


def test_matrix_span_is_found_without_loading_it(tmp_path):
    path = make_generic_store(tmp_path / "s.json", n=7)
    document, span = load_json_with_span(path, "matrix")
    assert span is not None
    assert document["matrix"] is None
    assert span.decoded_size == 7 * OLD_DIM * 4
    expected = np.frombuffer(
        base64.b64decode(json.loads(path.read_bytes())["matrix"]), dtype="<f4"
    ).reshape(7, OLD_DIM)
    blocks = list(iter_f32_rows_b64(span, OLD_DIM, rows_per_step=2))
    assert len(blocks) > 1
    np.testing.assert_array_equal(np.concatenate(blocks), expected)


def test_a_record_field_named_matrix_is_not_mistaken_for_the_matrix(tmp_path):
    """A nested "matrix" string longer than the real one: the record must survive intact."""
    long_value = "QUJD" * 5000
    path = make_generic_store(tmp_path / "s.json", n=3, matrix=long_value)
    document, _ = load_json_with_span(path, "matrix")
    assert all(r["matrix"] == long_value for r in document["data"])
    assert isinstance(document["matrix"], str) and document["matrix"]
    store = open_store(path, text_field="body")
    assert store.ids == ["g0", "g1", "g2"]
    assert store.old_dim == OLD_DIM


def test_journal_round_trip(tmp_path):
    manifest = {"fingerprint": "f", "new_dim": 3, "records": 5, "chunk_rows": 2}
    work = WorkDir.create(tmp_path / "w", manifest)
    assert (tmp_path / "w" / "vectors.f32").stat().st_size == 5 * 3 * 4
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    work.record_chunk(1, 2, rows, truncated=1)
    again = WorkDir.find(tmp_path / "w", "f")
    assert again is not None
    done = again.completed()
    assert list(done) == [1]
    assert (done[1].start, done[1].end, done[1].truncated) == (2, 4, 1)
    stored = np.fromfile(tmp_path / "w" / "vectors.f32", dtype="<f4").reshape(5, 3)
    np.testing.assert_array_equal(stored[2:4], rows)
