"""Multi-vector against a live vLLM started with --pooler-config '{"task": "token_embed"}':
the client's rows equal the server's own float answer; MaxSim ranks the relevant text first
and equals the server's own /score on that server."""

from __future__ import annotations

import httpx
import numpy as np

from vllm_embed import EmbeddingClient, maxsim
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES, mixed_texts
from vllm_embed_testing.vllm import LiveServer


def _server_floats(server: LiveServer, texts: list[str]) -> list[np.ndarray]:
    body = {
        "model": server.model,
        "input": texts,
        "task": "token_embed",
        "encoding_format": "float",
    }
    headers = {"Authorization": f"Bearer {server.api_key}"}
    reply = httpx.post(f"{server.root_url}/pooling", json=body, headers=headers, timeout=120)
    reply.raise_for_status()
    return [np.asarray(item["data"], dtype=np.float32) for item in reply.json()["data"]]


def test_rows_equal_the_servers_float_answer(vllm_token_embed_server: LiveServer) -> None:
    server = vllm_token_embed_server
    texts = [t for t in mixed_texts(40) if t][:30]
    with EmbeddingClient(server.base_url, api_key=server.api_key) as client:
        out = client.embed_multivector(texts)
    want = _server_floats(server, texts)
    assert [r.shape for r in out] == [w.shape for w in want]
    for rows, ref in zip(out, want, strict=True):
        np.testing.assert_allclose(rows, ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)


def test_maxsim_ranks_the_topic_first_and_equals_the_servers_score(
    vllm_token_embed_server: LiveServer,
) -> None:
    server = vllm_token_embed_server
    docs = [text for _, text in DEMO_CORPUS]
    query = DEMO_QUERIES[0]
    with EmbeddingClient(server.base_url, api_key=server.api_key) as client:
        doc_rows = client.embed_multivector(docs)
        (query_rows,) = client.embed_multivector([query.text])
        scores = maxsim(query_rows, doc_rows)
        assert DEMO_CORPUS[int(np.argmax(scores))][0] == query.topic
        # vLLM's own /score on a token_embed server is MaxSim too
        np.testing.assert_allclose(client.score(query.text, docs), scores, rtol=1e-3, atol=1e-3)
