"""Haystack over your own vLLM server: ``VLLMDocumentEmbedder`` / ``VLLMTextEmbedder``.

An indexing pipeline embeds documents into an ``InMemoryDocumentStore``; the query
pipeline is saved to YAML (the API key only as environment-variable names), loaded back
and answers questions through ``InMemoryEmbeddingRetriever`` (retrieval only, no LLM)::

    python examples/haystack_pipeline.py --base-url http://127.0.0.1:8000/v1 --model minilm

``--base-url``, ``--api-key`` and ``--model`` default to ``VLLM_EMBED_BASE_URL``,
``VLLM_EMBED_API_KEY`` and ``VLLM_EMBED_MODEL``. Exit code 0 when every question finds
the right document.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from vllm_embed_haystack import VLLMDocumentEmbedder, VLLMTextEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also under runpy.run_path
from _common import exit_with, server_parser
from _questions import DOCUMENTS, QUESTIONS


def main(base_url: str | None, api_key: str | None, model: str | None) -> int:
    """Index, save and load the query pipeline, ask; 0 if every question finds its document."""
    if api_key:  # the components read the key from the environment, so YAML never holds it
        os.environ["VLLM_EMBED_API_KEY"] = api_key
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embedder", VLLMDocumentEmbedder(base_url=base_url, model=model))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder", "writer")
    docs = [Document(content=text, meta={"key": key}) for key, text in DOCUMENTS.items()]
    indexing.run({"embedder": {"documents": docs}})

    query = Pipeline()
    query.add_component("embedder", VLLMTextEmbedder(base_url=base_url, model=model))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
    query.connect("embedder.embedding", "retriever.query_embedding")
    saved = query.dumps()
    print(f"query pipeline saved as {len(saved)} bytes of YAML (no key in it)")
    query = Pipeline.loads(saved)
    query.get_component("retriever").document_store = store

    wrong = 0
    for question, expected in QUESTIONS.items():
        hit = query.run({"embedder": {"text": question}})["retriever"]["documents"][0]
        ok = hit.meta["key"] == expected
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {hit.score:.3f}  {question}")
        print(f"      -> {hit.content}")
    print(f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions answered by the loaded pipeline")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    args = server_parser(__doc__).parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model))
