"""pydantic-ai semantic search over your own vLLM server: ``Embedder(VLLMEmbeddingModel(...))``.

Start a server (``vllm-embed serve`` or ``vllm serve <model> --runner pooling``), then::

    python examples/pydantic_ai_search.py --base-url http://127.0.0.1:8000/v1 --model minilm

The passages go through ``embed_documents`` and the questions through ``embed_query``
(each with the model's instruction, for models that have one). ``--base-url``,
``--api-key`` and ``--model`` default to ``VLLM_EMBED_BASE_URL``, ``VLLM_EMBED_API_KEY``
and ``VLLM_EMBED_MODEL``. Exit code 0 when every question finds the passage it should.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
from pydantic_ai import Embedder

from vllm_embed_pydantic_ai import VLLMEmbeddingModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also under runpy.run_path
from _common import exit_with, server_parser

PASSAGES = {
    "sourdough": "A sourdough starter needs flour, water and a few days of patience.",
    "jupiter": "Jupiter is the largest planet in the solar system.",
    "hashmap": "A hash map gives average constant-time lookups by key.",
    "roses": "Prune roses in late winter, just before new growth starts.",
    "interest": "Compound interest makes savings grow faster over long periods.",
    "marathon": "The marathon distance is a little over forty-two kilometres.",
    "sleep": "Adults should aim for seven to nine hours of sleep each night.",
    "passport": "A valid passport is required for most international flights.",
}
QUESTIONS = {
    "Which planet is the biggest?": "jupiter",
    "How long is a marathon race?": "marathon",
    "What do I need to bake bread with wild yeast?": "sourdough",
    "How can my money grow over decades?": "interest",
    "What document do I need to fly abroad?": "passport",
}


async def search(base_url: str | None, api_key: str | None, model: str | None) -> int:
    embedding_model = VLLMEmbeddingModel(base_url, api_key=api_key, model=model)
    embedder = Embedder(embedding_model)
    keys = list(PASSAGES)
    try:
        docs = np.array((await embedder.embed_documents(list(PASSAGES.values()))).embeddings)
        asked = await embedder.embed_query(list(QUESTIONS))
    finally:
        await embedding_model.aclose()
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    wrong = 0
    for (question, expected), vector in zip(QUESTIONS.items(), asked.embeddings, strict=True):
        best = int(np.argmax(docs @ np.asarray(vector)))
        ok = keys[best] == expected
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {question}\n      -> {PASSAGES[keys[best]]}")
    print(f"{asked.usage.input_tokens} query tokens ({asked.model_name} via {asked.provider_name})")
    print(f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions answered with the right passage")
    return 0 if wrong == 0 else 1


def main(base_url: str | None, api_key: str | None, model: str | None) -> int:
    """Embed PASSAGES, ask QUESTIONS, print the answers; 0 if all are right."""
    return asyncio.run(search(base_url, api_key, model))


if __name__ == "__main__":
    parser = server_parser(__doc__)
    args = parser.parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model))
