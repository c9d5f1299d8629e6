"""The Haystack components translate to the core client, and nothing more.

Every test talks HTTP to the project's fake vLLM through respx (no sockets); values are
the fake server's deterministic vectors, so a wrong text, order or instruction fails.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import respx
from haystack import Document
from haystack.core.errors import SerializationError
from haystack.utils import Secret

from vllm_embed import AuthenticationError, ContextLengthError, EmbeddingCache, Instructions
from vllm_embed_haystack import VLLMDocumentEmbedder, VLLMTextEmbedder
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs


def settings(**kwargs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "base_url": BASE_URL,
        "model": MODEL,
        "api_key": Secret.from_token(API_KEY),
        "instructions": None,
    }
    params.update(kwargs)
    return params


def test_text_embedder_sends_prefix_text_suffix_and_returns_the_vector(
    server: respx.Route,
) -> None:
    embedder = VLLMTextEmbedder(**settings(prefix="<", suffix=">"))
    out = embedder.run("jupiter")
    assert embedding_inputs(server) == [["<jupiter>"]]
    assert isinstance(out["embedding"], list) and isinstance(out["embedding"][0], float)
    np.testing.assert_allclose(out["embedding"], fake_vector("<jupiter>", DIM), rtol=1e-6)
    assert out["meta"]["model"] == MODEL
    assert out["meta"]["usage"]["prompt_tokens"] > 0
    assert out["meta"]["truncated"] == 0


def test_query_and_document_instructions_are_the_cores(server: respx.Route) -> None:
    text = VLLMTextEmbedder(**settings(instructions="e5"))
    docs = VLLMDocumentEmbedder(**settings(instructions="e5", progress_bar=False))
    text.run("red planet")
    docs.run([Document(content="Mars is red.")])
    assert embedding_inputs(server) == [["query: red planet"], ["passage: Mars is red."]]


def test_document_embedder_builds_texts_like_haystack_and_keeps_order(
    server: respx.Route,
) -> None:
    embedder = VLLMDocumentEmbedder(
        **settings(prefix="P ", suffix=" S"),
        meta_fields_to_embed=["title", "missing", "year"],
        embedding_separator=" | ",
        progress_bar=False,
    )
    documents = [
        Document(content="first body", meta={"title": "One", "year": 2001}),
        Document(content=None, meta={"title": "Two", "year": None}),
        Document(content="third body"),
    ]
    out = embedder.run(documents)
    texts = ["P One | 2001 | first body S", "P Two |  S", "P third body S"]
    assert embedding_inputs(server) == [texts]
    got = np.array([d.embedding for d in out["documents"]])
    np.testing.assert_allclose(got, np.stack([fake_vector(t, DIM) for t in texts]), rtol=1e-6)
    assert [d.id for d in out["documents"]] == [d.id for d in documents]
    assert all(d.embedding is None for d in documents)  # the inputs are not modified
    assert out["meta"]["model"] == MODEL


def test_whole_list_goes_to_the_core_batched_by_its_batch_size(server: respx.Route) -> None:
    embedder = VLLMDocumentEmbedder(**settings(batch_size=4), progress_bar=False)
    documents = [Document(content=f"doc {i}") for i in range(10)]
    out = embedder.run(documents)
    # requests run concurrently: the order they arrive in is not fixed
    assert sorted(len(batch) for batch in embedding_inputs(server)) == [2, 4, 4]
    np.testing.assert_allclose(out["documents"][9].embedding, fake_vector("doc 9", DIM), rtol=1e-6)


def test_progress_bar_steps_give_the_same_vectors(
    server: respx.Route, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from haystack_integrations.components.embedders.vllm_embed import document_embedder

    monkeypatch.setattr(document_embedder, "PROGRESS_STEP", 2)
    documents = [Document(content=f"doc {i}") for i in range(5)]
    with_bar = VLLMDocumentEmbedder(**settings(), progress_bar=True).run(documents)
    assert [len(b) for b in embedding_inputs(server)] == [2, 2, 1]
    assert "Calculating embeddings" in capsys.readouterr().err
    without = VLLMDocumentEmbedder(**settings(), progress_bar=False).run(documents)
    assert [d.embedding for d in with_bar["documents"]] == [
        d.embedding for d in without["documents"]
    ]


def test_run_async_matches_run(server: respx.Route) -> None:
    documents = [Document(content=f"doc {i}", meta={"k": i}) for i in range(6)]
    docs = VLLMDocumentEmbedder(**settings(), meta_fields_to_embed=["k"], progress_bar=False)
    text = VLLMTextEmbedder(**settings())

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            return await docs.run_async(documents), await text.run_async("doc 1")
        finally:
            await docs.close_async()
            await text.close_async()

    got_docs, got_text = asyncio.run(both())
    sync_docs = docs.run(documents)
    assert [d.embedding for d in got_docs["documents"]] == [
        d.embedding for d in sync_docs["documents"]
    ]
    assert got_text["embedding"] == text.run("doc 1")["embedding"]


def test_wrong_input_types_are_named(server: respx.Route) -> None:
    with pytest.raises(TypeError, match="VLLMDocumentEmbedder"):
        VLLMTextEmbedder(**settings()).run([Document(content="x")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VLLMTextEmbedder"):
        VLLMDocumentEmbedder(**settings()).run("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of Documents"):
        VLLMDocumentEmbedder(**settings()).run(["x"])  # type: ignore[list-item]
    assert embedding_inputs(server) == []


def test_empty_list_sends_nothing(server: respx.Route) -> None:
    assert VLLMDocumentEmbedder(**settings()).run([])["documents"] == []
    assert server.calls.call_count == 0


def test_failures_raise_the_cores_named_error(server: respx.Route) -> None:
    embedder = VLLMDocumentEmbedder(**settings(api_key=Secret.from_token("wrong")))
    with pytest.raises(AuthenticationError):
        embedder.run([Document(content="x")])


def test_warm_up_builds_the_client_without_a_request(server: respx.Route) -> None:
    embedder = VLLMTextEmbedder(**settings())
    embedder.warm_up()
    assert embedder._clients.built == 1
    assert server.calls.call_count == 0
    embedder.close()
    assert embedder._clients.built == 0


def test_key_from_the_environment_is_saved_as_variable_names(
    server: respx.Route, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    embedder = VLLMDocumentEmbedder(
        base_url=BASE_URL, model=MODEL, meta_fields_to_embed=["t"], dimensions=None
    )
    data = embedder.to_dict()
    assert API_KEY not in repr(data)
    assert data["init_parameters"]["api_key"] == {
        "type": "env_var",
        "env_vars": ["VLLM_EMBED_API_KEY", "VLLM_API_KEY", "OPENAI_API_KEY"],
        "strict": False,
    }
    again = VLLMDocumentEmbedder.from_dict(data)
    assert again.to_dict() == data
    assert again.meta_fields_to_embed == ["t"]
    out = again.run([Document(content="x")])  # the key came back from the environment
    np.testing.assert_allclose(out["documents"][0].embedding, fake_vector("x", DIM), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_key": "sk-given-as-a-string"}, "token-based secret"),
        ({"base_url": "http://user:hunter2@vllm.test/v1"}, "base_url carries a password"),
        ({"cache": "redis://:hunter2@127.0.0.1:6379/0"}, "cache carries a password"),
        ({"client_options": {"headers": {"X-Key": "k"}}}, "client_options"),
    ],
)
def test_what_cannot_be_saved_is_refused_by_name(kwargs: dict[str, Any], match: str) -> None:
    embedder = VLLMTextEmbedder(**{**settings(api_key=None), **kwargs})
    with pytest.raises((SerializationError, ValueError), match=match):
        embedder.to_dict()


def test_cache_object_is_refused_but_its_path_is_saved(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.sqlite")
    cache = EmbeddingCache(path)
    try:
        with pytest.raises(SerializationError, match="path or URL"):
            VLLMTextEmbedder(**settings(api_key=None, cache=cache)).to_dict()
    finally:
        cache.close()
    saved = VLLMTextEmbedder(**settings(api_key=None, cache=path)).to_dict()
    assert saved["init_parameters"]["cache"] == path


def test_cache_answers_repeated_documents(server: respx.Route, tmp_path: Path) -> None:
    cache = str(tmp_path / "emb.sqlite")
    documents = [Document(content=f"doc {i}") for i in range(4)]
    first = VLLMDocumentEmbedder(**settings(cache=cache), progress_bar=False)
    out1 = first.run(documents)
    first.close()
    second = VLLMDocumentEmbedder(**settings(cache=cache), progress_bar=False)
    out2 = second.run(documents)
    sent = [b for b in embedding_inputs(server) if "cache probe" not in b[0]]
    assert sent == [[d.content for d in documents]]  # the second run: all from the cache
    assert second.client.stats.cache_hits == 4
    assert [d.embedding for d in out1["documents"]] == [d.embedding for d in out2["documents"]]
    second.close()


def test_from_config_reads_an_apps_config(server: respx.Route, tmp_path: Path) -> None:
    config = tmp_path / "embed.toml"
    config.write_text(
        f'base_url = "{BASE_URL}"\nmodel = "{MODEL}"\nbatch_size = 3\n'
        'instructions = "none"\nmax_concurrency = 2\n',
        encoding="utf-8",
    )
    embedder = VLLMDocumentEmbedder.from_config(
        config, api_key=Secret.from_token(API_KEY), progress_bar=False
    )
    assert (embedder.base_url, embedder.model, embedder.batch_size) == (BASE_URL, MODEL, 3)
    assert embedder.max_concurrency == 2 and embedder.client_options == {}
    embedder.run([Document(content=f"d{i}") for i in range(5)])
    assert sorted(len(b) for b in embedding_inputs(server)) == [2, 3]  # concurrent


def test_core_input_errors_pass_through(server: respx.Route) -> None:
    embedder = VLLMTextEmbedder(**settings(truncate="error"))
    with pytest.raises(ContextLengthError, match="truncate='end'"):
        embedder.run("word " * 100_000)


def test_custom_instructions_survive_a_round_trip(server: respx.Route) -> None:
    custom = Instructions(query="Q: ", document="D: ")
    embedder = VLLMTextEmbedder(**settings(api_key=None, instructions=custom))
    saved = embedder.to_dict()
    assert saved["init_parameters"]["instructions"] == {"query": "Q: ", "document": "D: "}
    again = VLLMTextEmbedder.from_dict(saved)
    again.api_key = Secret.from_token(API_KEY)
    again.run("mars")
    assert embedding_inputs(server) == [["Q: mars"]]
