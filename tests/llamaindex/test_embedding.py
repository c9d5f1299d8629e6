"""VLLMEmbedding translates LlamaIndex calls to the core client, and nothing more.

Every test talks HTTP to the project's fake vLLM through respx (no sockets); values are
the fake server's deterministic vectors, so a wrong text, order or instruction fails.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import respx
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)

from vllm_embed import AuthenticationError, InvalidInputError
from vllm_embed_llamaindex import VLLMEmbedding
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs


def make(**kwargs: Any) -> VLLMEmbedding:
    params: dict[str, Any] = {"base_url": BASE_URL, "model_name": MODEL, "api_key": API_KEY}
    params.update(kwargs)
    return VLLMEmbedding(**params)


class _CountingCallback(BaseCallbackHandler):
    """Records the chunks of every EMBEDDING event end."""

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts = 0
        self.chunks: list[list[str]] = []

    def on_event_start(
        self,
        event_type: Any,
        payload: Any = None,
        event_id: str = "",
        parent_id: str = "",
        **kw: Any,
    ) -> str:
        if event_type == CBEventType.EMBEDDING:
            self.starts += 1
        return event_id

    def on_event_end(
        self, event_type: Any, payload: Any = None, event_id: str = "", **kw: Any
    ) -> None:
        if event_type == CBEventType.EMBEDDING:
            self.chunks.append(list(payload[EventPayload.CHUNKS]))

    def start_trace(self, trace_id: str | None = None) -> None:
        pass

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        pass


class _EventRecorder(BaseEventHandler):
    events: list[Any] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "_EventRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, EmbeddingStartEvent | EmbeddingEndEvent):
            self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[_EventRecorder]:
    root = get_dispatcher()
    handler = _EventRecorder(events=[])
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


def test_constructor_makes_no_request_and_no_client(server: respx.Route) -> None:
    emb = make()
    assert server.call_count == 0
    assert emb._clients.built == 0


def test_query_and_text_instructions_come_from_the_core(server: respx.Route) -> None:
    emb = make(instructions="e5")
    query = emb.get_query_embedding("a question")
    text = emb.get_text_embedding("a doc")
    assert embedding_inputs(server) == [["query: a question"], ["passage: a doc"]]
    np.testing.assert_allclose(query, fake_vector("query: a question", DIM), rtol=1e-6)
    np.testing.assert_allclose(text, fake_vector("passage: a doc", DIM), rtol=1e-6)
    assert all(type(x) is float for x in query + text)


async def test_async_single_methods(server: respx.Route) -> None:
    emb = make(instructions="e5")
    assert await emb.aget_query_embedding("q") == emb.get_query_embedding("q")
    assert await emb.aget_text_embedding("t") == emb.get_text_embedding("t")
    assert embedding_inputs(server) == [["query: q"]] * 2 + [["passage: t"]] * 2


def test_batch_goes_to_the_core_in_one_event(server: respx.Route, recorder: _EventRecorder) -> None:
    callback = _CountingCallback()
    emb = make(instructions=None, callback_manager=CallbackManager([callback]))
    texts = [f"text number {i}" for i in range(150)]
    vectors = emb.get_text_embedding_batch(texts)
    np.testing.assert_allclose(np.array(vectors), np.stack([fake_vector(t, DIM) for t in texts]))
    # the core's batches (64 per request), not LlamaIndex's 10-at-a-time loop
    assert sorted(len(b) for b in embedding_inputs(server)) == [22, 64, 64]
    assert callback.starts == 1 and callback.chunks == [texts]
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == ["EmbeddingStartEvent", "EmbeddingEndEvent"]
    assert recorder.events[1].chunks == texts


async def test_async_batch_goes_to_the_core_in_one_event(
    server: respx.Route, recorder: _EventRecorder
) -> None:
    callback = _CountingCallback()
    emb = make(instructions=None, callback_manager=CallbackManager([callback]))
    texts = [f"text number {i}" for i in range(150)]
    vectors = await emb.aget_text_embedding_batch(texts)
    np.testing.assert_allclose(np.array(vectors), np.stack([fake_vector(t, DIM) for t in texts]))
    assert sorted(len(b) for b in embedding_inputs(server)) == [22, 64, 64]
    assert callback.chunks == [texts]
    assert [type(e).__name__ for e in recorder.events] == [
        "EmbeddingStartEvent",
        "EmbeddingEndEvent",
    ]


def test_embed_batch_size_is_the_core_request_size(server: respx.Route) -> None:
    make(embed_batch_size=25, instructions=None).get_text_embedding_batch(["x"] * 60)
    assert sorted(len(b) for b in embedding_inputs(server)) == [10, 25, 25]


def test_empty_batch_returns_empty_without_a_request(server: respx.Route) -> None:
    emb = make()
    assert emb.get_text_embedding_batch([]) == []
    assert asyncio.run(emb.aget_text_embedding_batch([])) == []
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [None, "not a list"])
def test_non_list_batch_is_a_named_error(server: respx.Route, bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="list of strings"):
        make().get_text_embedding_batch(bad)
    with pytest.raises(InvalidInputError):
        asyncio.run(make().aget_text_embedding_batch(bad))
    assert server.call_count == 0


@pytest.mark.parametrize("bad", [["ok", None], ["ok", 7]])
def test_bad_items_get_the_core_error(server: respx.Route, bad: list[Any]) -> None:
    with pytest.raises(InvalidInputError, match="1"):
        make().get_text_embedding_batch(bad)
    assert not embedding_inputs(server)


@pytest.mark.parametrize("bad", [None, 3])
def test_bad_query_gets_the_core_error(server: respx.Route, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        make().get_query_embedding(bad)
    assert not embedding_inputs(server)


def test_key_is_sent_but_never_shown(server: respx.Route, recorder: _EventRecorder) -> None:
    emb = make()
    emb.get_text_embedding_batch(["x", "y"])
    emb.get_query_embedding("x")
    assert server.calls[-1].request.headers["authorization"] == f"Bearer {API_KEY}"
    shown = [repr(emb), str(emb), emb.to_json(), repr(emb.to_dict()), repr(emb.to_payload())]
    shown += [repr(e.model_dict) for e in recorder.events if isinstance(e, EmbeddingStartEvent)]
    for text in shown:
        assert API_KEY not in text


def test_wrong_key_is_an_authentication_error_without_the_key(server: respx.Route) -> None:
    wrong = "sk-wrong-key-987654"
    with pytest.raises(AuthenticationError) as info:
        make(api_key=wrong, max_retries=0).get_query_embedding("x")
    assert wrong not in str(info.value)


def test_key_from_environment(server: respx.Route, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", API_KEY)
    emb = VLLMEmbedding(base_url=BASE_URL)
    assert emb.api_key is not None and emb.api_key.get_secret_value() == API_KEY
    assert len(emb.get_query_embedding("x")) == DIM
    body = json.loads(server.calls[-1].request.content)
    assert body["model"] == MODEL  # discovered by the core from /v1/models


def test_from_config(server: respx.Route, tmp_path: Any) -> None:
    path = tmp_path / "app.json"
    path.write_text(
        json.dumps(
            {
                "pdf_knowledge": {
                    "embedder": {
                        "type": "openai_compatible",
                        "base_url": BASE_URL,
                        "model": MODEL,
                        "api_key": API_KEY,
                        "timeout": 30,
                        "retries": 1,
                    }
                }
            }
        )
    )
    emb = VLLMEmbedding.from_config(path, embed_batch_size=4, instructions=None)
    assert (emb.base_url, emb.model_name, emb.embed_batch_size) == (BASE_URL, MODEL, 4)
    assert emb.client.retry_policy.max_attempts == 2  # 1 retry, from the file
    vectors = emb.get_text_embedding_batch([f"t{i}" for i in range(9)])
    assert sorted(len(b) for b in embedding_inputs(server)) == [1, 4, 4]
    np.testing.assert_allclose(vectors[8], fake_vector("t8", DIM), rtol=1e-6)


def test_authorization_header_is_used_and_never_shown(server: respx.Route) -> None:
    emb = VLLMEmbedding(
        base_url=BASE_URL, model_name=MODEL, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert len(emb.get_query_embedding("x")) == DIM
    for text in (repr(emb), emb.to_json(), repr(emb.to_dict())):
        assert API_KEY not in text


def test_copies_and_pickles_build_their_own_clients(server: respx.Route) -> None:
    emb = make(instructions=None)
    emb.get_query_embedding("x")
    for clone in (copy.deepcopy(emb), pickle.loads(pickle.dumps(emb))):
        assert clone._clients.built == 0
        np.testing.assert_allclose(clone.get_text_embedding("y"), fake_vector("y", DIM), rtol=1e-6)
        assert clone.client is not emb.client


def test_cache_pass_through(server: respx.Route, tmp_path) -> None:
    emb = make(cache=str(tmp_path / "li.sqlite"))
    first = emb.get_text_embedding_batch(["x", "y"])
    calls = server.call_count
    assert emb.get_text_embedding_batch(["y", "x"]) == [first[1], first[0]]
    assert server.call_count == calls
    assert emb.client.stats.cache_hits == 2
    emb.close()
