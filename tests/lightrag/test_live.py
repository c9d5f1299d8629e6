"""LightRAG over the adapter against live vLLM CPU servers (all-MiniLM-L6-v2 as ``minilm``):
a store built with 256-dim Matryoshka vectors (``send_dimensions=True``), the model change
to the plain 384-dim server, ``vllm-embed migrate`` of every ``vdb_*.json``, reopen, query.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from lightrag.utils import EmbeddingFunc
from lightrag_support import StubLLM, migrate, open_rag, top_chunk, vdb_files

from vllm_embed import DimensionsNotSupportedError, EmbeddingClient
from vllm_embed_nanovectordb import (
    VLLMEmbeddingFunction,
    alightrag_embedding_func,
    stored_dimension,
)
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES
from vllm_embed_testing.vllm import LiveServer

DIM, SMALL, MAX_MODEL_LEN = 384, 256, 256
TOPIC = {sentence: topic for topic, sentence in DEMO_CORPUS}


def _server_options(server: LiveServer) -> dict[str, str]:
    return {"base_url": server.base_url, "api_key": server.api_key, "model": server.model}


def _rows(path: Path) -> tuple[list[str], np.ndarray]:
    store = json.loads(path.read_text())
    matrix = np.frombuffer(base64.b64decode(store["matrix"]), dtype=np.float32)
    texts = [str(record["content"]) for record in store["data"]]
    return texts, matrix.reshape(len(texts), store["embedding_dim"])


async def test_matryoshka_store_model_change_migrate_reopen(
    vllm_matryoshka_server: LiveServer,
    vllm_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = StubLLM()
    small = await alightrag_embedding_func(
        **_server_options(vllm_matryoshka_server), dimensions=SMALL, send_dimensions=True
    )
    assert (small.embedding_dim, small.max_token_size, small.model_name) == (
        SMALL,
        MAX_MODEL_LEN,
        "minilm",
    )
    assert small.send_dimensions and small.supports_asymmetric is False  # MiniLM: no prefixes
    rag = await open_rag(tmp_path, small, llm)
    await rag.ainsert([sentence for _, sentence in DEMO_CORPUS])
    assert await top_chunk(rag, DEMO_CORPUS[7][1]) == DEMO_CORPUS[7][1]
    await rag.finalize_storages()
    await small.func.aclose()

    files = vdb_files(tmp_path)
    assert len(files) == 3 and {stored_dimension(f) for f in files} == {SMALL}
    texts, matrix = _rows(files[0])
    with EmbeddingClient(
        dimensions=SMALL, instructions=None, **_server_options(vllm_matryoshka_server)
    ) as client:
        np.testing.assert_allclose(matrix, client.embed(texts), atol=2e-3)

    # The model change: the plain 384-dim server. LightRAG refuses the old store ...
    full = await alightrag_embedding_func(**_server_options(vllm_server))
    assert full.embedding_dim == DIM
    with pytest.raises(AssertionError, match="dim mismatch"):
        await open_rag(tmp_path, full, llm)
    # ... `vllm-embed migrate` re-embeds every vdb_*.json (key from the environment) ...
    monkeypatch.setenv("VLLM_EMBED_API_KEY", vllm_server.api_key)
    for path in files:
        output = await migrate(path, vllm_server.base_url, "--model", vllm_server.model)
        assert vllm_server.api_key not in output
    assert {stored_dimension(f) for f in files} == {DIM}
    # ... and the reopened store answers questions by meaning.
    rag = await open_rag(tmp_path, full, llm)
    for query in DEMO_QUERIES:
        best = await top_chunk(rag, query.text)
        assert TOPIC[best] == query.topic, (query.text, best)
    await rag.finalize_storages()
    await full.func.aclose()


async def test_send_dimensions_against_a_model_that_is_not_matryoshka(
    vllm_server: LiveServer,
) -> None:
    fn = VLLMEmbeddingFunction(**_server_options(vllm_server))
    same = EmbeddingFunc(embedding_dim=DIM, func=fn, send_dimensions=True)
    assert (await same(["checked against the server, not sent"])).shape == (1, DIM)
    other = EmbeddingFunc(embedding_dim=SMALL, func=fn, send_dimensions=True)
    with pytest.raises(DimensionsNotSupportedError, match="dimensions"):
        await other(["vLLM refuses dimensions for this model"])
    await fn.aclose()
