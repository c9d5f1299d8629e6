"""LlamaIndex over your own vLLM server: ``VLLMEmbedding`` as ``Settings.embed_model``.

Builds a ``VectorStoreIndex`` from documents, persists its ``StorageContext``, reloads it
and answers questions from the reloaded index (no LLM needed: retrieval only)::

    python examples/llamaindex_index.py --base-url http://127.0.0.1:8000/v1 --model minilm

``--base-url``, ``--api-key`` and ``--model`` default to ``VLLM_EMBED_BASE_URL``,
``VLLM_EMBED_API_KEY`` and ``VLLM_EMBED_MODEL``; ``--persist-dir`` keeps the index (default:
a temporary directory). Exit code 0 when every question finds the right document.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from llama_index.core import (
    Document,
    Settings,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)

from vllm_embed_llamaindex import VLLMEmbedding

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also under runpy.run_path
from _common import exit_with, server_parser
from _questions import DOCUMENTS, QUESTIONS


def main(
    base_url: str | None, api_key: str | None, model: str | None, persist_dir: str | None = None
) -> int:
    """Build, persist, reload, query; 0 if every question finds its document."""
    Settings.embed_model = VLLMEmbedding(base_url=base_url, api_key=api_key, model_name=model)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(persist_dir or tmp)
        docs = [Document(text=text, metadata={"key": key}) for key, text in DOCUMENTS.items()]
        VectorStoreIndex.from_documents(docs).storage_context.persist(persist_dir=where)
        print(f"index persisted to {where}")

        index = load_index_from_storage(StorageContext.from_defaults(persist_dir=where))
        retriever = index.as_retriever(similarity_top_k=1)
        wrong = 0
        for question, expected in QUESTIONS.items():
            hit = retriever.retrieve(question)[0]
            ok = hit.node.metadata["key"] == expected
            wrong += not ok
            print(f"{'ok ' if ok else 'BAD'} {hit.score:.3f}  {question}")
            print(f"      -> {hit.node.get_content()}")
    print(f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions answered from the reloaded index")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    parser = server_parser(__doc__)
    parser.add_argument("--persist-dir", help="keep the index here (default: a temp dir)")
    args = parser.parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model, args.persist_dir))
