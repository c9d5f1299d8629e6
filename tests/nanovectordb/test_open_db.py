"""open_db / aopen_db: a store built with another dimension is refused before anything is written.

The stores are made by the real ``nano_vectordb.NanoVectorDB`` (``save()``), not by hand.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import respx
from nano_vectordb import NanoVectorDB

from vllm_embed import (
    AsyncEmbeddingClient,
    DimensionMismatchError,
    EmbeddingClient,
    StoreFormatError,
)
from vllm_embed_nanovectordb import (
    VLLMEmbeddingFunction,
    aopen_db,
    migrate_command,
    open_db,
    stored_dimension,
)
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

KW = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY, "instructions": None}


def _store(path: Path, dim: int, n: int = 3) -> bytes:
    """A real nano-vectordb file with ``n`` records of dimension ``dim``; returns its bytes."""
    db = NanoVectorDB(dim, storage_file=str(path))
    rng = np.random.default_rng(0)
    db.upsert(
        [
            {"__id__": f"r{i}", "__vector__": rng.standard_normal(dim), "caption": f"c{i}"}
            for i in range(n)
        ]
    )
    db.save()
    return path.read_bytes()


def test_creates_a_new_store_with_the_server_dimension(server: respx.Route, tmp_path: Path) -> None:
    path = tmp_path / "database.json"
    db = open_db(path, EmbeddingClient(**KW))
    assert db.embedding_dim == DIM and len(db) == 0
    assert not path.exists()  # opening writes nothing
    db.upsert([{"__id__": "a", "__vector__": fake_vector("a", DIM), "caption": "a"}])
    db.save()
    assert stored_dimension(path) == DIM
    again = open_db(path, VLLMEmbeddingFunction(**KW))  # reopening the same store is fine
    assert again.get(["a"])[0]["caption"] == "a"


def test_mismatch_names_file_dims_and_migrate_command(server: respx.Route, tmp_path: Path) -> None:
    path = tmp_path / "my videos" / "database.json"
    path.parent.mkdir()
    before = _store(path, 1024)
    with pytest.raises(DimensionMismatchError) as info:
        open_db(path, EmbeddingClient(**KW))
    message = str(info.value)
    assert str(path) in message and "1024" in message and str(DIM) in message
    command = migrate_command(path, base_url=BASE_URL, model=MODEL)
    assert command in message
    assert shlex.split(command) == [
        "vllm-embed",
        "migrate",
        str(path),
        "--base-url",
        BASE_URL,
        "--model",
        MODEL,
    ]
    assert API_KEY not in message and API_KEY not in repr(info.value)
    assert (info.value.expected, info.value.actual, info.value.path) == (1024, DIM, str(path))
    assert path.read_bytes() == before  # untouched


async def test_async_open_checks_too(server: respx.Route, tmp_path: Path) -> None:
    path = tmp_path / "vdb_chunks.json"
    _store(path, 8)
    with pytest.raises(DimensionMismatchError, match="8-dim"):
        await aopen_db(path, AsyncEmbeddingClient(**KW))
    with pytest.raises(DimensionMismatchError):
        await aopen_db(path, VLLMEmbeddingFunction(**KW))
    good = tmp_path / "good.json"
    _store(good, DIM)
    db = await aopen_db(good, AsyncEmbeddingClient(**KW))
    assert len(db) == 3


def test_migrate_command_carries_matryoshka_dimensions(tmp_path: Path) -> None:
    command = migrate_command(tmp_path / "a b.json", base_url=BASE_URL, model=MODEL, dimensions=64)
    assert shlex.split(command)[2] == str(tmp_path / "a b.json")
    assert shlex.split(command)[-2:] == ["--dimensions", "64"]


def test_open_db_with_an_async_client_points_to_aopen_db(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="aopen_db"):
        open_db(tmp_path / "x.json", AsyncEmbeddingClient(**KW))


def test_stored_dimension_reads_any_key_order(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    _store(path, 4)
    data = json.loads(path.read_text())
    reordered = {"data": data["data"], "matrix": data["matrix"], "embedding_dim": 4}
    path.write_text(json.dumps(reordered))
    assert stored_dimension(path) == 4
    assert stored_dimension(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "readable"),
        ('{"data": []}', "embedding_dim"),
        ('{"embedding_dim": 0, "data": []}', "positive"),
    ],
)
def test_corrupt_store_is_a_store_format_error(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(StoreFormatError, match=why):
        stored_dimension(path)
