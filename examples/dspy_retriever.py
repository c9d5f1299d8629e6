"""DSPy retrieval over your own vLLM server: ``VLLMEmbedder`` + ``dspy.retrievers.Embeddings``.

Start a server (``vllm-embed serve`` or ``vllm serve <model> --runner pooling``), then::

    python examples/dspy_retriever.py --base-url http://127.0.0.1:8000/v1 --model minilm

The passages are embedded as documents and the questions as queries (each with the model's
instruction, for models that have one). ``--base-url``, ``--api-key`` and ``--model``
default to ``VLLM_EMBED_BASE_URL``, ``VLLM_EMBED_API_KEY`` and ``VLLM_EMBED_MODEL``. Exit
code 0 when every question finds the passage it should, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vllm_embed_dspy import VLLMEmbedder, embeddings_retriever

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


def main(base_url: str | None, api_key: str | None, model: str | None) -> int:
    """Index PASSAGES, ask QUESTIONS, print the answers; 0 if all are right."""
    embedder = VLLMEmbedder(base_url, api_key=api_key, model=model)
    keys, texts = list(PASSAGES), list(PASSAGES.values())
    # caching=False: DSPy's own disk cache is not needed for a one-off run
    search = embeddings_retriever(texts, embedder, k=1, caching=False)
    wrong = 0
    for question, expected in QUESTIONS.items():
        found = search(question)
        ok = keys[found.indices[0]] == expected
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {question}\n      -> {found.passages[0]}")
    embedder.close()
    print(f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions answered with the right passage")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    parser = server_parser(__doc__)
    args = parser.parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model))
