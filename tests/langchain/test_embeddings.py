"""VLLMEmbeddings translates LangChain calls to the core client, and nothing more.

Every test talks HTTP to the project's fake vLLM through respx (no sockets): the values
checked are the fake server's deterministic vectors, so a wrong text, order, instruction
or conversion fails.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle

import numpy as np
import pytest
import respx

from vllm_embed import AuthenticationError, InvalidInputError, ServerError
from vllm_embed_langchain import VLLMEmbeddings
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs


def make(**kwargs: object) -> VLLMEmbeddings:
    params: dict[str, object] = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY}
    params.update(kwargs)
    return VLLMEmbeddings(**params)  # type: ignore[arg-type]


def expected(texts: list[str]) -> np.ndarray:
    return np.stack([fake_vector(t, DIM) for t in texts])


def test_constructor_makes_no_request_and_no_client(server: respx.Route) -> None:
    emb = make()
    assert server.call_count == 0
    assert emb._clients.built == 0


def test_embed_documents_returns_python_floats_in_input_order(server: respx.Route) -> None:
    texts = ["alpha", "beta gamma", "", "delta"]
    vectors = make(instructions=None).embed_documents(texts)
    assert isinstance(vectors, list) and len(vectors) == 4
    assert all(type(x) is float for row in vectors for x in row)
    np.testing.assert_allclose(np.array(vectors), expected(texts), rtol=1e-6)


def test_embed_query_returns_one_vector(server: respx.Route) -> None:
    vector = make(instructions=None).embed_query("where is alpha?")
    assert isinstance(vector, list) and all(type(x) is float for x in vector)
    np.testing.assert_allclose(vector, fake_vector("where is alpha?", DIM), rtol=1e-6)


def test_query_and_document_instructions_come_from_the_core(server: respx.Route) -> None:
    emb = make(instructions="e5")
    emb.embed_documents(["a doc"])
    emb.embed_query("a question")
    assert embedding_inputs(server)[-2:] == [["passage: a doc"], ["query: a question"]]


async def test_async_methods_match_sync(server: respx.Route) -> None:
    emb = make(instructions="e5")
    docs = await emb.aembed_documents(["one", "two"])
    query = await emb.aembed_query("three")
    assert docs == emb.embed_documents(["one", "two"])
    assert query == emb.embed_query("three")
    assert all(type(x) is float for x in query)


def test_batching_comes_from_the_core(server: respx.Route) -> None:
    texts = [f"text number {i}" for i in range(150)]
    vectors = make(batch_size=64, instructions=None).embed_documents(texts)
    sizes = sorted(len(batch) for batch in embedding_inputs(server))
    assert sizes == [22, 64, 64]
    np.testing.assert_allclose(np.array(vectors), expected(texts), rtol=1e-6)


def test_dimensions_is_sent_to_the_server(server: respx.Route) -> None:
    vector = make(dimensions=8, instructions=None).embed_query("short")
    assert len(vector) == 8
    bodies = [json.loads(c.request.content) for c in server.calls if c.request.method == "POST"]
    assert bodies and all(b["dimensions"] == 8 for b in bodies)
    np.testing.assert_allclose(vector, fake_vector("short", DIM, 8), rtol=1e-6)


def test_empty_list_returns_empty_without_a_request(server: respx.Route) -> None:
    assert make().embed_documents([]) == []
    assert asyncio.run(make().aembed_documents([])) == []
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [None, "not a list", {"a": "b"}])
def test_non_list_input_is_a_named_error_without_a_request(
    server: respx.Route, bad: object
) -> None:
    with pytest.raises(InvalidInputError, match="list of strings"):
        make().embed_documents(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        asyncio.run(make().aembed_documents(bad))  # type: ignore[arg-type]
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [["ok", None], ["ok", 3], [b"bytes"]])
def test_bad_items_get_the_core_error_naming_the_index(server: respx.Route, bad: list) -> None:
    with pytest.raises(InvalidInputError, match=r"\b(1|0)\b"):
        make().embed_documents(bad)
    assert not embedding_inputs(server)


@pytest.mark.parametrize("bad", [None, 42])
def test_bad_query_gets_the_core_error(server: respx.Route, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        make().embed_query(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        asyncio.run(make().aembed_query(bad))  # type: ignore[arg-type]
    assert not embedding_inputs(server)


def test_key_is_sent_but_never_shown(server: respx.Route) -> None:
    emb = make()
    emb.embed_query("x")
    assert server.calls[-1].request.headers["authorization"] == f"Bearer {API_KEY}"
    for text in (repr(emb), str(emb), emb.model_dump_json(), repr(emb.model_dump())):
        assert API_KEY not in text


def test_wrong_key_is_an_authentication_error_without_the_key(server: respx.Route) -> None:
    wrong = "sk-wrong-key-987654"
    with pytest.raises(AuthenticationError) as info:
        make(api_key=wrong, max_retries=0).embed_query("x")
    assert wrong not in str(info.value) and wrong not in repr(info.value)


def test_key_from_environment_in_core_order(
    server: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-fallback")
    monkeypatch.setenv("VLLM_EMBED_API_KEY", API_KEY)
    emb = VLLMEmbeddings(base_url=BASE_URL, model=MODEL)
    assert emb.api_key is not None and emb.api_key.get_secret_value() == API_KEY
    assert len(emb.embed_query("x")) == DIM


def test_base_url_from_environment(server: respx.Route, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_EMBED_BASE_URL", BASE_URL)
    assert len(VLLMEmbeddings(api_key=API_KEY).embed_query("x")) == DIM


def test_model_discovered_when_not_given(server: respx.Route) -> None:
    assert len(VLLMEmbeddings(base_url=BASE_URL, api_key=API_KEY).embed_query("x")) == DIM
    bodies = [json.loads(c.request.content) for c in server.calls if c.request.method == "POST"]
    assert bodies[-1]["model"] == MODEL


def test_max_retries_zero_means_one_attempt() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE_URL}/models").respond(json={"data": [{"id": MODEL}]})
        route = router.post(f"{BASE_URL}/embeddings").respond(503, json={"error": "down"})
        with pytest.raises(ServerError):
            make(max_retries=0, encoding="float").embed_query("x")
    assert route.call_count == 1


def test_one_async_client_per_event_loop(server: respx.Route) -> None:
    emb = make(instructions=None)
    first = asyncio.run(emb.aembed_query("x"))
    second = asyncio.run(emb.aembed_query("x"))  # a new loop: must not reuse a dead client
    assert first == second
    np.testing.assert_allclose(first, fake_vector("x", DIM), rtol=1e-6)


def test_close_keeps_the_object_usable(server: respx.Route) -> None:
    emb = make()
    emb.embed_query("x")
    emb.close()
    assert emb._clients.built == 0
    assert len(emb.embed_query("x")) == DIM


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValueError, match="batchsize"):
        VLLMEmbeddings(base_url=BASE_URL, batchsize=3)  # type: ignore[call-arg]


def test_from_config_reads_the_file_and_keeps_the_key_out_of_it(
    server: respx.Route, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_EMBED_KEY", API_KEY)
    path = tmp_path / "vllm-embed.toml"  # type: ignore[operator]
    path.write_text(
        f'base_url = "{BASE_URL}"\nmodel = "{MODEL}"\napi_key = "${{MY_EMBED_KEY}}"\n'
        "batch_size = 5\ndimension = 16\n"
    )
    emb = VLLMEmbeddings.from_config(path, instructions=None)
    assert (emb.base_url, emb.model, emb.batch_size) == (BASE_URL, MODEL, 5)
    assert emb.api_key is not None and emb.api_key.get_secret_value() == API_KEY
    vectors = emb.embed_documents([f"t{i}" for i in range(12)])
    assert sorted(len(b) for b in embedding_inputs(server)) == [2, 5, 5]
    np.testing.assert_allclose(vectors[3], fake_vector("t3", DIM), rtol=1e-6)


def test_from_config_overrides_win(server: respx.Route, tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "vllm-embed.toml"  # type: ignore[operator]
    path.write_text(f'base_url = "{BASE_URL}"\nmodel = "nope"\nretries = 4\n')
    emb = VLLMEmbeddings.from_config(path, model=MODEL, api_key=API_KEY, max_retries=0)
    assert emb.model == MODEL
    assert emb.client.retry_policy.max_attempts == 1


def test_authorization_header_is_used_and_never_shown(server: respx.Route) -> None:
    emb = VLLMEmbeddings(
        base_url=BASE_URL, model=MODEL, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert len(emb.embed_query("x")) == DIM
    for text in (repr(emb), str(emb), emb.model_dump_json()):
        assert API_KEY not in text


def test_copies_and_pickles_build_their_own_clients(server: respx.Route) -> None:
    emb = make(instructions=None)
    emb.embed_query("x")
    for clone in (copy.deepcopy(emb), pickle.loads(pickle.dumps(emb))):
        assert clone._clients.built == 0
        assert clone.api_key is not None and clone.api_key.get_secret_value() == API_KEY
        np.testing.assert_allclose(clone.embed_query("y"), fake_vector("y", DIM), rtol=1e-6)
        assert clone.client is not emb.client


def test_cache_pass_through(server: respx.Route, tmp_path) -> None:
    emb = make(cache=tmp_path / "lc.sqlite", instructions="e5")
    docs = emb.embed_documents(["a", "b"])
    calls = server.call_count
    assert emb.embed_documents(["b", "a"]) == [docs[1], docs[0]]
    assert server.call_count == calls  # all from the cache
    query = emb.embed_query("a")  # a query is not the document's vector
    np.testing.assert_allclose(query, fake_vector("query: a", DIM), rtol=1e-6)
    assert emb.client.stats.cache_hits == 2
    assert copy.deepcopy(emb).cache == emb.cache
    emb.close()
