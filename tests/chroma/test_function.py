"""VLLMEmbeddingFunction inside real chromadb: the collection's record, reopening from it,
the query/document split through chromadb's ``embed_query``, and the checks on records.

The fake vLLM (respx) gives each text its own deterministic vector, so a wrong text,
instruction or order changes the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
import respx

from vllm_embed import ConfigValueError, DimensionMismatchError, EmbeddingCache
from vllm_embed_chroma import NAME, VLLMEmbeddingFunction
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

TEXTS = ["Jupiter is the largest planet.", "Mars is red.", "Venus is hot.", "Saturn has rings."]


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "chroma"


def make(**kwargs: Any) -> VLLMEmbeddingFunction:
    params: dict[str, Any] = {"api_key": API_KEY, "instructions": None}
    params.update(kwargs)
    return VLLMEmbeddingFunction(BASE_URL, **params)


def fill(path: Path, function: VLLMEmbeddingFunction, name: str = "docs") -> dict[str, Any]:
    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection(name, embedding_function=function)
    collection.add(ids=[f"id{i}" for i in range(len(TEXTS))], documents=TEXTS)
    record: dict[str, Any] = collection.configuration_json["embedding_function"]
    return record


def test_registered_with_chromadb() -> None:
    from chromadb.utils.embedding_functions import known_embedding_functions

    assert known_embedding_functions[NAME] is VLLMEmbeddingFunction


def test_record_holds_url_model_dimension_instructions_never_the_key(
    server: respx.Route, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_VLLM_KEY", API_KEY)
    function = VLLMEmbeddingFunction(
        BASE_URL, api_key_env_var="MY_VLLM_KEY", instructions="e5", batch_size=3, timeout=7.5
    )
    record = fill(path, function)
    assert record == {
        "type": "known",
        "name": "vllm-embed",
        "config": {
            "base_url": BASE_URL,
            "model": MODEL,  # resolved from the server once
            "dimension": DIM,
            "dimensions": None,
            "instructions": {"query": "query: ", "document": "passage: "},
            "api_key_env_var": "MY_VLLM_KEY",
            "batch_size": 3,
            "timeout": 7.5,
        },
    }
    sent = [t for batch in embedding_inputs(server) for t in batch]
    # batches of 3 go concurrently: compare what was sent, not in which order
    assert sorted(f"passage: {t}" for t in TEXTS) == sorted(
        t for t in sent if t.startswith("passage: ")
    )
    for file in path.rglob("*"):
        if file.is_file():
            assert API_KEY.encode() not in file.read_bytes(), file


def test_a_key_given_directly_is_used_and_not_recorded(server: respx.Route, path: Path) -> None:
    record = fill(path, make())
    assert record["config"]["api_key_env_var"] is None
    assert API_KEY not in repr(record) and API_KEY not in repr(make())
    assert API_KEY.encode() not in (path / "chroma.sqlite3").read_bytes()


def test_query_goes_through_embed_query(server: respx.Route, path: Path) -> None:
    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection("docs", embedding_function=make(instructions="e5"))
    collection.add(ids=["a", "b"], documents=TEXTS[:2])
    before = len(embedding_inputs(server))
    collection.query(query_texts=["which planet is red"], n_results=1)
    assert embedding_inputs(server)[before:] == [["query: which planet is red"]]


def test_reopened_without_the_function_rebuilds_it_from_the_record(
    server: respx.Route, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_EMBED_API_KEY", API_KEY)
    fill(path, VLLMEmbeddingFunction(BASE_URL, instructions=None))
    reopened = chromadb.PersistentClient(path=str(path)).get_collection("docs")
    ef = reopened.configuration["embedding_function"]
    assert isinstance(ef, VLLMEmbeddingFunction)
    assert (ef.model, ef.dimension) == (MODEL, DIM)
    for n, text in enumerate(TEXTS):
        hits = reopened.query(query_texts=[text], n_results=2)
        assert hits["ids"][0][0] == f"id{n}"
    # the same record gives the same function object: one client, not one per call
    assert reopened.configuration["embedding_function"] is ef


@pytest.mark.enable_socket  # the fake server is a real HTTP server on 127.0.0.1
def test_reopened_in_another_process(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record is all a fresh process needs (plus the key in the recorded variable)."""
    monkeypatch.setenv("APP_VLLM_KEY", API_KEY)
    with FakeEmbeddingServer(dim=DIM, api_key=API_KEY, model=MODEL) as fake:
        ef = VLLMEmbeddingFunction(fake.base_url, api_key_env_var="APP_VLLM_KEY", instructions=None)
        client = chromadb.PersistentClient(path=str(path))
        made = client.create_collection("docs", embedding_function=ef)
        made.add(ids=[f"id{i}" for i in range(len(TEXTS))], documents=TEXTS)
        ef.close()
        client.close()
        reopen = f"""
import chromadb, vllm_embed_chroma
c = chromadb.PersistentClient(path={str(path)!r}).get_collection("docs")
print(c.query(query_texts=[{TEXTS[2]!r}], n_results=1)["ids"][0][0])
"""
        done = subprocess.run(
            [sys.executable, "-c", reopen],
            env={**os.environ, "VLLM_EMBED_LEAN_HTTP": "1"},
            check=True,
            capture_output=True,
            text=True,
        )
        assert done.stdout.strip() == "id2"


def test_recorded_key_variable_unset_is_named(server: respx.Route) -> None:
    function = VLLMEmbeddingFunction.build_from_config(
        {"base_url": BASE_URL, "model": MODEL, "api_key_env_var": "APP_VLLM_KEY"}
    )
    with pytest.raises(ConfigValueError, match=r"'APP_VLLM_KEY'.* is not set"):
        function.embed_query(["x"])
    assert server.calls.call_count == 0


def test_vectors_are_the_servers_in_input_order(server: respx.Route) -> None:
    function = make()
    got = function(TEXTS)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in got)
    np.testing.assert_allclose(np.stack(got), np.stack([fake_vector(t, DIM) for t in TEXTS]))


def test_model_and_dimension_given_need_no_server_to_create(
    server: respx.Route, path: Path
) -> None:
    client = chromadb.PersistentClient(path=str(path))
    made = client.create_collection(
        "docs", embedding_function=make(model=MODEL, dimension=DIM, instructions="e5")
    )
    assert server.calls.call_count == 0
    assert made.configuration_json["embedding_function"]["config"]["dimension"] == DIM


def test_a_changed_server_dimension_is_refused_by_name(server: respx.Route) -> None:
    function = VLLMEmbeddingFunction.build_from_config(
        {"base_url": BASE_URL, "model": MODEL, "dimension": DIM + 8, "instructions": None}
    )
    function._api_key = API_KEY
    with pytest.raises(DimensionMismatchError, match="vllm-embed migrate") as caught:
        function.embed_query(["x"])
    assert (caught.value.expected, caught.value.actual) == (DIM + 8, DIM)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"model": MODEL, "api_key": "sk-x"}, "unknown key 'api_key'"),
        ({"dimension": "384"}, "'dimension' .* must be int"),
        ({"normalize": 1}, "'normalize' .* must be bool"),
        ({"dimension": True}, "'dimension' .* must be int"),
    ],
)
def test_bad_records_are_named(config: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigValueError, match=match):
        VLLMEmbeddingFunction.validate_config(config)


def test_record_updates_may_not_change_the_vectors_space() -> None:
    function = make(model=MODEL, dimension=DIM)
    old = function.get_config()
    function.validate_config_update(old, {"batch_size": 8})
    with pytest.raises(ConfigValueError, match=r"model, dimension.*vllm-embed migrate"):
        function.validate_config_update(old, {"model": "other", "dimension": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "http://u:hunter2@vllm.test/v1"}, "base_url carries a password"),
        ({"cache": "redis://:hunter2@127.0.0.1:6379/0"}, "cache carries a password"),
        ({"batch_sise": 3}, "unknown settings \\['batch_sise'\\]"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], match: str) -> None:
    base_url = kwargs.pop("base_url", BASE_URL)
    with pytest.raises(ConfigValueError, match=match) as caught:
        VLLMEmbeddingFunction(base_url, **kwargs)
    assert "hunter2" not in str(caught.value)


def test_cache_object_is_refused_its_path_recorded(
    server: respx.Route, tmp_path: Path, path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    try:
        with pytest.raises(ConfigValueError, match="path or URL string"):
            make(cache=cache)
    finally:
        cache.close()
    record = fill(path, make(cache=str(tmp_path / "c.sqlite")))
    assert record["config"]["cache"] == str(tmp_path / "c.sqlite")
