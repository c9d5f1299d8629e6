"""Chroma over your own vLLM server: ``VLLMEmbeddingFunction``.

Creates a persistent collection with the function (its record: URL, model, dimension,
instructions, never the key), then reopens the directory without passing the function and
answers questions from it (retrieval only, no LLM)::

    python examples/chroma_collection.py --base-url http://127.0.0.1:8000/v1 --model minilm

``--base-url``, ``--api-key`` and ``--model`` default to ``VLLM_EMBED_BASE_URL``,
``VLLM_EMBED_API_KEY`` and ``VLLM_EMBED_MODEL``; ``--path`` keeps the Chroma directory
(default: a temporary directory). Exit code 0 when every question finds the right document.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import chromadb

from vllm_embed_chroma import VLLMEmbeddingFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also under runpy.run_path
from _common import exit_with, server_parser
from _questions import DOCUMENTS, QUESTIONS


def main(
    base_url: str | None, api_key: str | None, model: str | None, path: str | None = None
) -> int:
    """Create, reopen, query; 0 if every question finds its document."""
    if api_key:  # recorded by name only: the reopened collection reads it from there
        os.environ["VLLM_EMBED_API_KEY"] = api_key
    with tempfile.TemporaryDirectory() as tmp:
        where = str(path or tmp)
        function = VLLMEmbeddingFunction(base_url, model=model)
        client = chromadb.PersistentClient(path=where)
        made = client.get_or_create_collection("docs", embedding_function=function)
        made.upsert(ids=list(DOCUMENTS), documents=list(DOCUMENTS.values()))
        config = made.configuration_json["embedding_function"]["config"]
        print(f"collection recorded model {config['model']!r}, dimension {config['dimension']}")
        function.close()

        docs = chromadb.PersistentClient(path=where).get_collection("docs")  # no function
        wrong = 0
        hits = docs.query(query_texts=list(QUESTIONS), n_results=1)
        for question, ids, texts in zip(QUESTIONS, hits["ids"], hits["documents"], strict=True):
            ok = ids[0] == QUESTIONS[question]
            wrong += not ok
            print(f"{'ok ' if ok else 'BAD'} {question}")
            print(f"      -> {texts[0]}")
    print(
        f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions answered by the reopened collection"
    )
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    parser = server_parser(__doc__)
    parser.add_argument("--path", help="keep the Chroma directory here (default: a temp dir)")
    args = parser.parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model, args.path))
