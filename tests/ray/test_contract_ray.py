"""Contract: embed_dataset through the two-node Ray cluster against the live vLLM CPU server
(all-MiniLM-L6-v2 served as ``minilm``). Started by the session; a failed start fails."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from vllm_embed import EmbeddingClient
from vllm_embed_ray import embed_dataset
from vllm_embed_testing.corpus import DEMO_CORPUS
from vllm_embed_testing.vllm import LiveServer

pytestmark = pytest.mark.contract


def test_ray_vectors_match_the_plain_client_on_live_vllm(
    ray_cluster: Any, vllm_server: LiveServer
) -> None:
    import ray
    import ray.data

    texts = [f"{text} ({i})" for i, (_, text) in enumerate(DEMO_CORPUS * 3)]
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    ds = ray.data.from_arrow([table.slice(i, 30) for i in range(0, len(texts), 30)])
    out = embed_dataset(
        ds,
        base_url=vllm_server.base_url,
        api_key=vllm_server.api_key,
        model=vllm_server.model,
        concurrency=2,
        batch_size=20,
        instructions=None,
    )
    result = pa.concat_tables(ray.get(out.to_arrow_refs())).sort_by("id")
    assert result.column("id").to_pylist() == list(range(len(texts)))
    col = result.column("embedding").combine_chunks()
    assert list(col.type.shape) == [384]
    got = col.storage.flatten().to_numpy().reshape(len(texts), 384)
    with EmbeddingClient(
        vllm_server.base_url, api_key=vllm_server.api_key, instructions=None
    ) as client:
        expected = client.embed_documents(texts)
    # same server, same texts; batches differ, so allow float noise from batching on CPU
    np.testing.assert_allclose(got, expected, atol=2e-5)
    cosine = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.99999
