"""VLLMEmbedding as ``Settings.embed_model``: build, query, persist and reload an index."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import respx
from llama_index.core import (
    Document,
    Settings,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)
from llama_index.core.schema import MetadataMode

from vllm_embed_llamaindex import VLLMEmbedding
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, embedding_inputs

TEXTS = [
    "The cat sat on the warm mat.",
    "Rust compiles to native code.",
    "Paris is the capital of France.",
    "Bread rises because of yeast.",
]


@pytest.fixture
def embed_model() -> Iterator[VLLMEmbedding]:
    """Installed as Settings.embed_model for the test, then restored."""
    previous = Settings._embed_model
    # instructions=None: a query equal to a document gets exactly that document's vector
    model = VLLMEmbedding(base_url=BASE_URL, model_name=MODEL, api_key=API_KEY, instructions=None)
    Settings.embed_model = model
    yield model
    Settings._embed_model = previous


def _top_text(index: VectorStoreIndex, query: str) -> str:
    nodes = index.as_retriever(similarity_top_k=1).retrieve(query)
    return nodes[0].node.get_content()


def test_from_documents_embeds_every_node_in_one_pipelined_call(
    server: respx.Route, embed_model: VLLMEmbedding
) -> None:
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS])
    assert embedding_inputs(server) == [TEXTS]  # one request holds all four nodes
    for text in TEXTS:
        assert _top_text(index, text) == text


def test_async_build_and_query(server: respx.Route, embed_model: VLLMEmbedding) -> None:
    # from_documents(use_async=True) runs its own event loop, so this test is sync
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS], use_async=True)
    assert embedding_inputs(server) == [TEXTS]
    nodes = asyncio.run(index.as_retriever(similarity_top_k=1).aretrieve(TEXTS[2]))
    assert nodes[0].node.get_content() == TEXTS[2]


def test_persisted_storage_context_round_trip(
    server: respx.Route, embed_model: VLLMEmbedding, tmp_path: Path
) -> None:
    docs = [Document(text=t, metadata={"n": i}) for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex.from_documents(docs)
    index.storage_context.persist(persist_dir=tmp_path)

    # what LlamaIndex embedded is node.get_content(MetadataMode.EMBED), metadata included
    stored = json.loads((tmp_path / "default__vector_store.json").read_text())["embedding_dict"]
    nodes = index.docstore.docs
    for node_id, vector in stored.items():
        content = nodes[node_id].get_content(metadata_mode=MetadataMode.EMBED)
        np.testing.assert_allclose(vector, fake_vector(content, DIM), rtol=1e-6)
    assert len(stored) == len(TEXTS)

    requests_before = len(embedding_inputs(server))
    reloaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=tmp_path))
    assert len(embedding_inputs(server)) == requests_before  # loading re-embeds nothing
    target = nodes[next(iter(stored))].get_content(metadata_mode=MetadataMode.EMBED)
    hit = reloaded.as_retriever(similarity_top_k=1).retrieve(target)[0]
    assert hit.node.get_content(metadata_mode=MetadataMode.EMBED) == target
    assert embedding_inputs(server)[-1] == [target]  # only the query was embedded
