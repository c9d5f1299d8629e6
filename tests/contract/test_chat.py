"""Conversations on /v1/embeddings against live vLLM: the Matryoshka server was started with
a --chat-template (all-MiniLM-L6-v2 ships none); the plain server has none; neither model
takes images."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from vllm_embed import EmbeddingClient, InputNotSupportedError
from vllm_embed_testing.corpus import tiny_png
from vllm_embed_testing.vllm import LiveServer

CONVERSATIONS = [
    [{"role": "user", "content": "Where is the Eiffel tower?"}],
    [
        {"role": "system", "content": "Represent this passage for retrieval."},
        {"role": "user", "content": "The Eiffel tower stands in Paris."},
    ],
]


def _server_float(server: LiveServer, messages: list[dict[str, str]]) -> np.ndarray:
    body = {"model": server.model, "messages": messages, "encoding_format": "float"}
    reply = httpx.post(
        f"{server.base_url}/embeddings",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=60,
    )
    reply.raise_for_status()
    return np.asarray(reply.json()["data"][0]["embedding"], dtype=np.float32)


def test_conversations_equal_the_servers_own_answer(vllm_matryoshka_server: LiveServer) -> None:
    server = vllm_matryoshka_server
    with EmbeddingClient(server.base_url, api_key=server.api_key) as client:
        out = client.embed_messages(CONVERSATIONS)
        texts = client.embed(["The Eiffel tower stands in Paris.", "Bananas are yellow."])
    assert out.shape == (2, 384)
    for row, conversation in zip(out, CONVERSATIONS, strict=True):
        np.testing.assert_allclose(row, _server_float(server, conversation), rtol=1e-5, atol=1e-6)
    # the question's vector is nearer the passage about Paris than an unrelated text
    unit = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    q = out[0] / np.linalg.norm(out[0])
    assert unit[0] @ q > unit[1] @ q


def test_no_chat_template_and_no_images_are_named(
    vllm_server: LiveServer, vllm_matryoshka_server: LiveServer
) -> None:
    with (
        EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client,
        pytest.raises(InputNotSupportedError, match="chat template"),
    ):
        client.embed_messages(CONVERSATIONS[:1])
    server = vllm_matryoshka_server
    with (
        EmbeddingClient(server.base_url, api_key=server.api_key) as client,
        pytest.raises(InputNotSupportedError, match="image"),
    ):
        client.embed_images([tiny_png()], text="a grey pixel")  # a data: URI, no fetching
