"""Shared by the VLLMRerank tests: documents, a query, the expected (cosine) order."""

from __future__ import annotations

import numpy as np
from langchain_core.documents import Document

from vllm_embed_langchain import VLLMRerank
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

DOCS = [
    Document(page_content=f"note {i} on subject {i % 5}", metadata={"n": i}, id=str(i))
    for i in range(12)
]
QUERY = "subject 2"


def order(query: str, texts: list[str]) -> list[int]:
    q = fake_vector(query, DIM)
    scores = np.stack([fake_vector(t, DIM) for t in texts]) @ q
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def make(**kwargs: object) -> VLLMRerank:
    params: dict[str, object] = {"base_url": BASE_URL, "model": MODEL, "api_key": API_KEY}
    params.update(kwargs)
    return VLLMRerank(**params)  # type: ignore[arg-type]
