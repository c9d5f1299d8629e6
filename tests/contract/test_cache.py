"""The embedding cache against the live vLLM server: a second embed asks the server nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vllm_embed import EmbeddingClient
from vllm_embed_testing.vllm import LiveServer


def test_second_embed_makes_no_server_request(
    vllm_server: LiveServer, make_client: Callable[..., EmbeddingClient], tmp_path: Path
) -> None:
    texts = [f"vLLM serves embeddings, sentence {i}." for i in range(40)] + ["Paris is in France."]
    client = make_client(vllm_server, cache=tmp_path / "live.sqlite", instructions="auto")
    first = client.embed_documents(texts)
    requests = client.stats.requests
    second = client.embed_documents(texts)
    assert client.stats.requests == requests  # nothing went to the server
    np.testing.assert_array_equal(first, second)
    assert client.stats.cache_hits == len(texts)
    # queries are their own entries (the model's query instruction, if any): they miss
    query = client.embed_query("Where is Paris?")
    assert client.stats.requests > requests
    assert query.shape == (first.shape[1],)
