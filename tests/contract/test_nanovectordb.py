"""The nano-vectordb adapter against a live vLLM CPU server (all-MiniLM-L6-v2 as ``minilm``).

A DVD-style ``database.json`` of captions is built with the real ``NanoVectorDB`` and
queried; the server's dimension and context come from the server; a store built with
another dimension is refused before anything is written, and the command in the error,
run as printed, migrates it so it opens.
"""

from __future__ import annotations

import runpy
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from nano_vectordb import NanoVectorDB

from vllm_embed import AsyncEmbeddingClient, DimensionMismatchError, EmbeddingClient
from vllm_embed.cli import main
from vllm_embed_nanovectordb import VLLMEmbeddingFunction, aopen_db, open_db, stored_dimension
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384
MAX_MODEL_LEN = 256


def _fn(server: LiveServer, **kwargs: object) -> VLLMEmbeddingFunction:
    return VLLMEmbeddingFunction(
        base_url=server.base_url, api_key=server.api_key, model=server.model, **kwargs
    )


async def test_resolve_reads_the_server(vllm_server: LiveServer) -> None:
    fn = await _fn(vllm_server).resolve()
    assert (fn.embedding_dim, fn.max_token_size) == (DIM, MAX_MODEL_LEN)
    await fn.aclose()


async def test_dvd_style_database_built_and_queried(
    vllm_server: LiveServer, tmp_path: Path
) -> None:
    path = tmp_path / "database.json"
    fn = _fn(vllm_server)
    db = await aopen_db(path, fn)
    captions = [text for _, text in DEMO_CORPUS]
    vectors = await fn(captions)
    assert vectors.dtype == np.float32 and vectors.shape == (len(captions), DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    db.upsert(
        [
            {"__id__": f"clip_{i:03d}", "__vector__": v, "caption": c, "topic": t}
            for i, ((t, c), v) in enumerate(zip(DEMO_CORPUS, vectors, strict=True))
        ]
    )
    db.store_additional_data(video_path="videos/demo.mp4", fps=1, clip_secs=10)
    db.save()

    async with AsyncEmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client:
        reopened = await aopen_db(path, client)
    assert len(reopened) == len(captions)
    assert reopened.get_additional_data()["clip_secs"] == 10
    for query in DEMO_QUERIES:
        best = reopened.query(await fn.embed_query(query.text), top_k=1)[0]
        assert best["topic"] == query.topic, (query.text, best["caption"])
    await fn.aclose()


def test_mismatch_error_command_migrates_the_store(
    vllm_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "database.json"
    old = NanoVectorDB(1024, storage_file=str(path))
    rng = np.random.default_rng(1)
    old.upsert(
        [
            {"__id__": f"clip_{i}", "__vector__": rng.standard_normal(1024), "caption": c}
            for i, (_, c) in enumerate(DEMO_CORPUS[:6])
        ]
    )
    old.store_additional_data(video_path="videos/old.mp4")
    old.save()
    before = path.read_bytes()

    client = EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key)
    with pytest.raises(DimensionMismatchError) as info:
        open_db(path, client)
    message = str(info.value)
    assert str(path) in message and "1024" in message and str(DIM) in message
    assert vllm_server.api_key not in message
    assert path.read_bytes() == before

    command = next(line.strip() for line in message.splitlines() if "vllm-embed migrate" in line)
    args = shlex.split(command)
    assert args[:3] == ["vllm-embed", "migrate", str(path)]
    monkeypatch.setenv("VLLM_EMBED_API_KEY", vllm_server.api_key)
    result = CliRunner().invoke(main, [*args[1:], "--yes"])
    assert result.exit_code == 0, result.output

    assert stored_dimension(path) == DIM
    db = open_db(path, client)
    assert len(db) == 6 and db.get_additional_data()["video_path"] == "videos/old.mp4"
    top = db.query(client.embed_query(DEMO_CORPUS[2][1]), top_k=1)[0]
    assert top["__id__"] == "clip_2"
    client.close()


def test_example_runs(vllm_server: LiveServer, tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "nanovectordb_dvd.py"
    main = runpy.run_path(str(example))["main"]
    db = tmp_path / "database.json"
    args = (vllm_server.base_url, vllm_server.api_key, vllm_server.model)
    assert main(*args, str(db)) == 0
    assert stored_dimension(db) == DIM
    assert main(*args, str(db)) == 0  # reopening its own database is fine
    NanoVectorDB(8, storage_file=str(db.with_name("old.json"))).save()
    assert main(*args, str(db.with_name("old.json"))) == 2  # refused: built with 8 dims
