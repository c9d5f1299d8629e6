"""The Chroma embedding function against a live vLLM CPU server (all-MiniLM-L6-v2).

A ``PersistentClient`` collection created with the function records the served model and
its dimension (never the key); reopened without the function, it answers the demo
queries with the right topic; its vectors are the core client's.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import chromadb
import numpy as np
import pytest

from vllm_embed import EmbeddingClient
from vllm_embed_chroma import VLLMEmbeddingFunction
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM = 384


def test_collection_records_the_function_and_reopens_from_it(
    vllm_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_EMBED_KEY", vllm_server.api_key)
    path = tmp_path / "chroma"
    function = VLLMEmbeddingFunction(vllm_server.base_url, api_key_env_var="APP_EMBED_KEY")
    client = chromadb.PersistentClient(path=str(path))
    made = client.create_collection("demo", embedding_function=function)
    made.add(
        ids=[str(i) for i in range(len(DEMO_CORPUS))],
        documents=[text for _, text in DEMO_CORPUS],
        metadatas=[{"topic": topic} for topic, _ in DEMO_CORPUS],
    )
    config = made.configuration_json["embedding_function"]["config"]
    assert (config["model"], config["dimension"]) == (vllm_server.model, DIM)
    assert vllm_server.api_key.encode() not in (path / "chroma.sqlite3").read_bytes()
    function.close()
    client.close()

    reopened = chromadb.PersistentClient(path=str(path)).get_collection("demo")
    hits = reopened.query(query_texts=[q.text for q in DEMO_QUERIES], n_results=1)
    assert [m[0]["topic"] for m in hits["metadatas"]] == [q.topic for q in DEMO_QUERIES]


def test_vectors_are_the_core_clients(vllm_server: LiveServer) -> None:
    texts = [text for _, text in DEMO_CORPUS[:8]]
    function = VLLMEmbeddingFunction(vllm_server.base_url, api_key=vllm_server.api_key)
    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as core:
        expected_docs = core.embed_documents(texts)
        expected_query = core.embed_query(DEMO_QUERIES[0].text)
    np.testing.assert_allclose(np.stack(function(texts)), expected_docs, atol=1e-5)
    np.testing.assert_allclose(
        function.embed_query([DEMO_QUERIES[0].text])[0], expected_query, atol=1e-5
    )
    function.close()


def test_example_runs(
    vllm_server: LiveServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VLLM_EMBED_API_KEY", raising=False)  # the example sets it: undone after
    example = Path(__file__).parents[2] / "examples" / "chroma_collection.py"
    main = runpy.run_path(str(example))["main"]
    path = tmp_path / "example"
    code = main(vllm_server.base_url, vllm_server.api_key, vllm_server.model, str(path))
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"dimension {DIM}" in out
    assert vllm_server.api_key.encode() not in (path / "chroma.sqlite3").read_bytes()
