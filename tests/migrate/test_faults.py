"""Faults: server gone mid-run, resume, broken stores, records without text.

The promise under test: the original is byte-identical until the new store is
complete and verified; a re-run resumes without re-embedding finished records and
produces the same bytes as an uninterrupted run; broken input is refused with a named
error before anything is written or sent.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from migrate_support import captions, embedded_texts, make_dvd_store, make_langchain_store

from vllm_embed import MigrationError, StoreFormatError
from vllm_embed.migrate import (
    MigrationOptions,
    MissingTextError,
    migrate_store,
    open_store,
    work_dir_for,
)
from vllm_embed.migrate._journal import WorkDir
from vllm_embed_testing.respx_vllm import DIM


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _uninterrupted(tmp_path: Path, client, n: int) -> bytes:  # type: ignore[no-untyped-def]
    (tmp_path / "reference").mkdir()
    reference = make_dvd_store(tmp_path / "reference" / "database.json", n=n)
    migrate_store(open_store(reference), client, MigrationOptions(chunk_rows=4))
    return reference.read_bytes()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    return directory


def test_server_gone_mid_run_then_resume(store_dir, tmp_path, fake_vllm, failing_after, client):
    path = make_dvd_store(store_dir / "database.json", n=20)
    original = path.read_bytes()
    failing_after(fake_vllm, 1 + 8)  # the dimension probe, then two chunks of 4

    with pytest.raises(MigrationError, match="run the same command again to resume") as info:
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))
    assert "stopped at record 8 of 20" in str(info.value)
    assert "8 finished records are kept" in str(info.value)
    assert path.read_bytes() == original  # untouched
    assert sorted(p.name for p in store_dir.iterdir()) == [
        "database.json",
        "database.json.vllm-embed-migrate",
    ]
    first_run = embedded_texts(fake_vllm)
    # the probe, then two answered chunks; the third chunk's request was refused
    assert first_run[0] == "dimension probe" and len(first_run) == 1 + 8
    finished = first_run[1:]

    # the server is back: the same command resumes
    fake_vllm.side_effect = _plain(fake_vllm)
    fake_vllm.reset()
    result = migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))

    resumed_run = embedded_texts(fake_vllm)
    assert result.resumed == 8 and result.embedded_now == 12
    assert len(resumed_run) == 12  # no probe, no finished record sent again
    assert not set(resumed_run) & set(finished)
    assert sorted(finished + resumed_run) == sorted(captions(20))
    assert result.backup is not None and result.backup.read_bytes() == original
    assert not work_dir_for(path).exists()
    # byte-identical to a run that was never interrupted
    assert path.read_bytes() == _uninterrupted(tmp_path, client, 20)


def _plain(route):  # type: ignore[no-untyped-def]
    """The un-failing answer function hidden inside failing_after's wrapper."""
    wrapper = route.side_effect
    return wrapper.__closure__[0].cell_contents  # `answer`


def test_refuses_a_work_dir_of_another_source(store_dir, fake_vllm, failing_after, client):
    path = make_dvd_store(store_dir / "database.json", n=12)
    failing_after(fake_vllm, 1 + 4)
    with pytest.raises(MigrationError):
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))
    # the app changed the store in between
    document = json.loads(path.read_bytes())
    document["data"][0]["caption"] = "edited"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    edited = path.read_bytes()
    fake_vllm.side_effect = _plain(fake_vllm)
    fake_vllm.reset()

    with pytest.raises(MigrationError, match="different source or with different settings"):
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))
    assert embedded_texts(fake_vllm) == []
    assert path.read_bytes() == edited


def test_refuses_a_work_dir_made_with_other_settings(store_dir, fake_vllm, failing_after, client):
    path = make_dvd_store(store_dir / "database.json", n=12)
    failing_after(fake_vllm, 1 + 4)
    with pytest.raises(MigrationError):
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))
    fake_vllm.side_effect = _plain(fake_vllm)
    with pytest.raises(MigrationError, match="remove the directory to start over"):
        migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4, dimensions=8))


def test_torn_journal_line_and_bad_crc_chunks_are_embedded_again(store_dir, fake_vllm, client):
    path = make_dvd_store(store_dir / "database.json", n=12)
    failing = fake_vllm.side_effect
    # finish the run once to learn the bytes, then simulate a half-done work dir
    reference = _copy_and_migrate(path, store_dir / "ref", client)
    fake_vllm.reset()
    fake_vllm.side_effect = failing
    store = open_store(path)
    with pytest.raises(MigrationError):
        _interrupt_after_chunks(store, client, chunks=2)
    work = work_dir_for(path)
    journal = (work / "journal.log").read_text()
    lines = journal.splitlines()
    assert len(lines) == 2
    # chunk 0's line is corrupted by a wrong CRC, and a torn line is appended
    index, start, end, truncated, crc = lines[0].split()
    lines[0] = f"{index} {start} {end} {truncated} {int(crc) ^ 1}"
    (work / "journal.log").write_text("\n".join(lines) + "\n1 4 8 0 12")
    fake_vllm.reset()
    result = migrate_store(open_store(path), client, MigrationOptions(chunk_rows=4))
    assert result.resumed == 4  # only chunk 1 was trusted
    assert len(embedded_texts(fake_vllm)) == 8
    assert path.read_bytes() == reference


def _copy_and_migrate(path: Path, directory: Path, client) -> bytes:  # type: ignore[no-untyped-def]
    directory.mkdir()
    copy = directory / path.name
    shutil.copy2(path, copy)
    migrate_store(open_store(copy), client, MigrationOptions(chunk_rows=4))
    return copy.read_bytes()


class _StopAfter:
    """Wraps a client; raises the server-gone error after ``chunks`` embed calls."""

    def __init__(self, client, chunks: int) -> None:  # type: ignore[no-untyped-def]
        self._client, self._left = client, chunks

    def model_name(self) -> str:
        return self._client.model_name()  # type: ignore[no-any-return]

    def dimension(self) -> int:
        return self._client.dimension()  # type: ignore[no-any-return]

    def embed_with_info(self, texts, *, kind="raw"):  # type: ignore[no-untyped-def]
        from vllm_embed import APIConnectionError

        if self._left == 0:
            raise APIConnectionError("server gone")
        self._left -= 1
        return self._client.embed_with_info(texts, kind=kind)


def _interrupt_after_chunks(store, client, chunks: int) -> None:  # type: ignore[no-untyped-def]
    migrate_store(store, _StopAfter(client, chunks), MigrationOptions(chunk_rows=4))


def test_keyboard_interrupt_keeps_the_journal(store_dir, fake_vllm, client):
    path = make_dvd_store(store_dir / "database.json", n=12)
    original = path.read_bytes()

    class Interrupting(_StopAfter):
        def embed_with_info(self, texts, *, kind="raw"):  # type: ignore[no-untyped-def]
            if self._left == 0:
                raise KeyboardInterrupt
            return super().embed_with_info(texts, kind=kind)

    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(path), Interrupting(client, 1), MigrationOptions(chunk_rows=4))
    assert path.read_bytes() == original
    work = WorkDir.find(
        work_dir_for(path),
        json.loads((work_dir_for(path) / "manifest.json").read_text())["fingerprint"],
    )
    assert work is not None and sorted(work.completed()) == [0]


# -- broken stores: clear errors, nothing written, nothing sent ---------------------------
def _assert_nothing_written(directory: Path, before: dict[str, bytes], route) -> None:  # type: ignore[no-untyped-def]
    assert _listing(directory) == before
    assert not any(p.is_dir() for p in directory.iterdir())
    assert route.call_count == 0


def test_corrupt_json(store_dir, fake_vllm):
    path = make_dvd_store(store_dir / "database.json", n=6)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a crash in the middle of a save
    before = _listing(store_dir)
    with pytest.raises(StoreFormatError, match=r"not valid JSON at line 1, column \d+"):
        open_store(path)
    _assert_nothing_written(store_dir, before, fake_vllm)


def test_corrupt_json_in_a_small_file(store_dir, fake_vllm):
    path = make_langchain_store(store_dir / "lc.json")
    path.write_text(path.read_text()[:-40], encoding="utf-8")
    before = _listing(store_dir)
    with pytest.raises(StoreFormatError, match="not valid JSON"):
        open_store(path)
    _assert_nothing_written(store_dir, before, fake_vllm)


def _edit_nano(path: Path, **changes: object) -> None:
    document = json.loads(path.read_bytes())
    document.update(changes)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def test_truncated_matrix(store_dir, fake_vllm):
    path = make_dvd_store(store_dir / "database.json", n=6)
    document = json.loads(path.read_bytes())
    raw = base64.b64decode(document["matrix"])
    _edit_nano(path, matrix=base64.b64encode(raw[: 5 * 24 * 4]).decode())  # one row lost
    before = _listing(store_dir)
    with pytest.raises(
        StoreFormatError,
        match="matrix has 5 rows of dimension 24 but `data` has 6",
    ):
        open_store(path)
    _assert_nothing_written(store_dir, before, fake_vllm)


def test_matrix_cut_inside_the_base64(store_dir, fake_vllm):
    path = make_dvd_store(store_dir / "database.json", n=6)
    document = json.loads(path.read_bytes())
    _edit_nano(path, matrix=document["matrix"][:-3])
    with pytest.raises(StoreFormatError, match="not valid base64"):
        open_store(path)
    assert fake_vllm.call_count == 0


def test_dimension_does_not_match_the_matrix(store_dir, fake_vllm):
    path = make_dvd_store(store_dir / "database.json", n=6)
    _edit_nano(path, embedding_dim=25)
    before = _listing(store_dir)
    with pytest.raises(
        StoreFormatError, match=r"embedding_dim is 25 .* not a whole number of rows"
    ):
        open_store(path)
    _assert_nothing_written(store_dir, before, fake_vllm)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.json", '{"title": "not a store"}', "JSON dict with keys title"),
        ("list.json", "[1, 2, 3]", "a JSON list"),
        ("empty.json", "", "is empty"),
    ],
)
def test_unknown_format(store_dir, fake_vllm, name, content, message):
    path = store_dir / name
    path.write_text(content, encoding="utf-8")
    before = _listing(store_dir)
    with pytest.raises(StoreFormatError, match=message):
        open_store(path)
    _assert_nothing_written(store_dir, before, fake_vllm)


def test_unknown_directory_and_missing_path(tmp_path):
    with pytest.raises(StoreFormatError, match=r"unknown store format.*Supported: nano-vectordb"):
        open_store(tmp_path)
    with pytest.raises(StoreFormatError, match="does not exist"):
        open_store(tmp_path / "nope.json")


# -- records without text -------------------------------------------------------------------
def _with_missing_captions(path: Path) -> None:
    document = json.loads(path.read_bytes())
    document["data"][2]["caption"] = None
    del document["data"][5]["caption"]
    document["data"][7]["caption"] = "   "
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def test_records_without_text_stop_before_any_request(store_dir, fake_vllm, client):
    path = make_dvd_store(store_dir / "database.json", n=10)
    _with_missing_captions(path)
    before = _listing(store_dir)
    with pytest.raises(MissingTextError, match="3 of 10 records") as info:
        migrate_store(open_store(path), client)
    assert info.value.ids == ["clip-2", "clip-5", "clip-7"]
    assert "'clip-2', 'clip-5', 'clip-7'" in str(info.value)
    assert "--drop-missing-text" in str(info.value)
    _assert_nothing_written(store_dir, before, fake_vllm)


def test_drop_missing_text(store_dir, fake_vllm, client):
    from nano_vectordb import NanoVectorDB

    path = make_dvd_store(store_dir / "database.json", n=10)
    _with_missing_captions(path)
    result = migrate_store(open_store(path), client, MigrationOptions(drop_missing_text=True))
    assert result.dropped == ["clip-2", "clip-5", "clip-7"]
    assert result.records == 7
    db = NanoVectorDB(DIM, storage_file=str(path))
    assert len(db) == 7
    kept = json.loads(path.read_bytes())["data"]
    assert [r["__id__"] for r in kept] == [f"clip-{i}" for i in (0, 1, 3, 4, 6, 8, 9)]


def test_out_must_be_new(store_dir, fake_vllm, client):
    path = make_dvd_store(store_dir / "database.json", n=3)
    out = store_dir / "taken.json"
    out.write_text("{}")
    with pytest.raises(MigrationError, match="already exists"):
        migrate_store(open_store(path), client, MigrationOptions(out=out))
    assert out.read_text() == "{}"


def test_server_down_from_the_start(store_dir, fake_vllm, failing_after, client):
    path = make_dvd_store(store_dir / "database.json", n=4)
    before = _listing(store_dir)
    fake_vllm.side_effect = _refuse_everything
    with pytest.raises(MigrationError, match="Nothing was written") as info:
        migrate_store(open_store(path), client)
    assert isinstance(info.value.__cause__, Exception)
    assert _listing(store_dir) == before
    assert not work_dir_for(path).exists()


def _refuse_everything(request):  # type: ignore[no-untyped-def]
    import httpx

    raise httpx.ConnectError("connection refused", request=request)


class _SlowServer:
    """The client, as if the server embedded 100 records/s (a fake clock, no sleeping)."""

    def __init__(self, client, clock: list[float]) -> None:  # type: ignore[no-untyped-def]
        self._client = client
        self._clock = clock
        self.sizes: list[int] = []

    def embed_with_info(self, texts, *, kind="raw"):  # type: ignore[no-untyped-def]
        self.sizes.append(len(texts))
        self._clock[0] += len(texts) / 100.0
        return self._client.embed_with_info(texts, kind=kind)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._client, name)


def test_chunks_hold_about_five_seconds_of_a_slow_server(
    store_dir, tmp_path, fake_vllm, client, monkeypatch
):
    from vllm_embed.migrate import _engine

    clock = [0.0]
    monkeypatch.setattr(_engine.time, "perf_counter", lambda: clock[0])
    path = make_dvd_store(store_dir / "database.json", n=1800)
    slow = _SlowServer(client, clock)
    migrate_store(open_store(path), slow)
    # the first chunk before the rate is known, then 5 s at 100 records/s each
    assert slow.sizes == [512, 500, 500, 288]
    assert max(slow.sizes[1:]) / 100.0 <= _engine.CHUNK_SECONDS
    # chunking does not change the result
    assert path.read_bytes() == _uninterrupted(tmp_path, client, 1800)
