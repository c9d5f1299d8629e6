"""The clients under comparison, each as ``make(cell) -> Runner`` (imports stay lazy).

A runner embeds a whole list of texts the way a user of that library would, and returns the
library's native output (numpy for the core client, ``list[list[float]]`` for the rest).
"Default" rows use the library's own defaults; other rows name the setting they change.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import Cell


@dataclass
class Runner:
    embed: Callable[[list[str]], Any]
    close: Callable[[], None]
    output: str  # "numpy" | "list"


def _batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


# -- vllm-embed ---------------------------------------------------------------------------


def _batch(cell: Cell, name: str = "batch_size") -> dict[str, int]:
    """The batch setting of a cell; nothing in a defaults cell (batch None)."""
    return {} if cell.batch is None else {name: cell.batch}


def _peer_batch(cell: Cell) -> int:
    if cell.batch is None:
        raise ValueError("peer clients need an explicit batch")
    return cell.batch


def core_sync(cell: Cell) -> Runner:
    from vllm_embed import EmbeddingClient

    client = EmbeddingClient(
        cell.base_url,
        api_key=cell.api_key,
        model=cell.model,
        **_batch(cell),
        **cell.extra,
    )
    return Runner(client.embed, client.close, "numpy")


def core_async(cell: Cell) -> Runner:
    from vllm_embed import AsyncEmbeddingClient

    loop = asyncio.new_event_loop()
    client = AsyncEmbeddingClient(
        cell.base_url,
        api_key=cell.api_key,
        model=cell.model,
        **_batch(cell),
        **cell.extra,
    )

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return Runner(lambda texts: loop.run_until_complete(client.embed(texts)), close, "numpy")


def core_sync_list(cell: Cell) -> Runner:
    """The core client's own list output (``embed_documents_list``): what the adapters that
    hand lists to their framework are measured against."""
    from vllm_embed import EmbeddingClient

    client = EmbeddingClient(
        cell.base_url,
        api_key=cell.api_key,
        model=cell.model,
        **_batch(cell),
        **cell.extra,
    )
    return Runner(client.embed_documents_list, client.close, "list")


def langchain_adapter(cell: Cell) -> Runner:
    from vllm_embed_langchain import VLLMEmbeddings

    emb = VLLMEmbeddings(
        base_url=cell.base_url, model=cell.model, api_key=cell.api_key, **_batch(cell)
    )
    return Runner(emb.embed_documents, emb.close, "list")


def llamaindex_adapter(cell: Cell) -> Runner:
    from vllm_embed_llamaindex import VLLMEmbedding

    emb = VLLMEmbedding(
        base_url=cell.base_url,
        model_name=cell.model,
        api_key=cell.api_key,
        **_batch(cell, "embed_batch_size"),
    )
    return Runner(emb.get_text_embedding_batch, emb.close, "list")


def haystack_adapter(cell: Cell) -> Runner:
    """``VLLMDocumentEmbedder.run`` (no progress bar); the Documents are built once per
    text list, outside the timing's concern (a Haystack user has them already)."""
    from haystack import Document

    from vllm_embed_haystack import VLLMDocumentEmbedder

    emb = VLLMDocumentEmbedder(
        base_url=cell.base_url,
        model=cell.model,
        api_key=cell.api_key,
        progress_bar=False,
        **_batch(cell),
    )
    made: dict[int, list[Any]] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        docs = made.get(id(texts))
        if docs is None:
            made.clear()
            docs = made[id(texts)] = [Document(content=t) for t in texts]
        return [d.embedding for d in emb.run(docs)["documents"]]

    return Runner(embed, emb.close, "list")


def chroma_adapter(cell: Cell) -> Runner:
    """``VLLMEmbeddingFunction(texts)``: float32 rows after chromadb's own normalise +
    validate wrapper (stacked into one array for the check)."""
    from vllm_embed_chroma import VLLMEmbeddingFunction

    fn = VLLMEmbeddingFunction(
        cell.base_url, model=cell.model, api_key=cell.api_key, **_batch(cell)
    )
    return Runner(lambda texts: np.stack(fn(texts)), fn.close, "numpy")


def pydantic_ai_adapter(cell: Cell) -> Runner:
    """pydantic-ai's own ``Embedder`` over ``VLLMEmbeddingModel``, on one event loop."""
    from pydantic_ai import Embedder

    from vllm_embed_pydantic_ai import VLLMEmbeddingModel

    loop = asyncio.new_event_loop()
    model = VLLMEmbeddingModel(
        cell.base_url, model=cell.model, api_key=cell.api_key, **_batch(cell)
    )
    embedder = Embedder(model)

    def embed(texts: list[str]) -> Any:
        return loop.run_until_complete(embedder.embed_documents(texts)).embeddings

    def close() -> None:
        loop.run_until_complete(model.aclose())
        loop.close()

    return Runner(embed, close, "list")


def dspy_adapter(cell: Cell) -> Runner:
    """``dspy.Embedder`` over ``VLLMEmbedder``: the whole list per call (DSPy's cache off,
    or the rounds would measure it); the core batches by ``cell.batch``."""
    import dspy

    from vllm_embed_dspy import VLLMEmbedder

    embedder = VLLMEmbedder(cell.base_url, model=cell.model, api_key=cell.api_key, **_batch(cell))
    call = dspy.Embedder(embedder, batch_size=1_000_000, caching=False)
    return Runner(call, embedder.close, "numpy")


# -- peers --------------------------------------------------------------------------------


def _openai(cell: Cell) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=cell.base_url, api_key=cell.api_key or "none", max_retries=2)


def openai_default(cell: Cell) -> Runner:
    """openai SDK as documented: one ``embeddings.create`` per batch, default encoding
    (the SDK asks for base64 and converts every vector to a Python list)."""
    client = _openai(cell)

    def embed(texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for batch in _batches(texts, _peer_batch(cell)):
            response = client.embeddings.create(model=cell.model, input=batch)
            out.extend(item.embedding for item in response.data)
        return out

    return Runner(embed, client.close, "list")


def openai_base64_numpy(cell: Cell) -> Runner:
    """openai SDK at its best for numpy users: ``encoding_format="base64"`` (the SDK then
    leaves the strings alone) decoded with ``np.frombuffer`` into one array."""
    client = _openai(cell)

    def embed(texts: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        for batch in _batches(texts, _peer_batch(cell)):
            response = client.embeddings.create(
                model=cell.model, input=batch, encoding_format="base64"
            )
            rows.extend(
                np.frombuffer(base64.b64decode(item.embedding), dtype=np.float32)
                for item in response.data
            )
        return np.stack(rows)

    return Runner(embed, client.close, "numpy")


def _langchain_openai(cell: Cell, **kwargs: Any) -> Runner:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(
        model=cell.model,
        base_url=cell.base_url,
        api_key=cell.api_key or "none",
        check_embedding_ctx_length=False,
        **kwargs,
    )
    return Runner(emb.embed_documents, lambda: None, "list")


def langchain_openai_default(cell: Cell) -> Runner:
    return _langchain_openai(cell)


def langchain_openai_chunk(cell: Cell) -> Runner:
    return _langchain_openai(cell, chunk_size=_peer_batch(cell))


def _openai_like(cell: Cell, **kwargs: Any) -> Runner:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    emb = OpenAILikeEmbedding(
        model_name=cell.model, api_base=cell.base_url, api_key=cell.api_key or "none", **kwargs
    )
    return Runner(emb.get_text_embedding_batch, lambda: None, "list")


def openai_like_default(cell: Cell) -> Runner:
    return _openai_like(cell)


def openai_like_batch(cell: Cell) -> Runner:
    return _openai_like(cell, embed_batch_size=_peer_batch(cell))


# -- references ---------------------------------------------------------------------------


def httpx_minimal(cell: Cell) -> Runner:
    """The least a client can do over HTTP: httpx, one request per batch, vLLM ``bytes``
    encoding, ``np.frombuffer`` into one preallocated array. No retries, no checks."""
    import httpx

    headers = {"Authorization": f"Bearer {cell.api_key}"} if cell.api_key else {}
    client = httpx.Client(headers=headers, timeout=60)
    url = f"{cell.base_url}/embeddings"

    size = _peer_batch(cell)

    def embed(texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), cell.dim), dtype=np.float32)
        for start in range(0, len(texts), size):
            batch = texts[start : start + size]
            body = {"model": cell.model, "input": batch, "encoding_format": "bytes"}
            response = client.post(url, json=body)
            response.raise_for_status()
            rows = np.frombuffer(response.content, dtype=np.float32)
            out[start : start + len(batch)] = rows.reshape(len(batch), cell.dim)
        return out

    return Runner(embed, client.close, "numpy")


#: The rows measured with every setting at its default as well (cells with batch None).
DEFAULTS_CLIENTS = (
    "vllm-embed sync (numpy)",
    "vllm-embed async (numpy)",
    "vllm-embed-langchain (list)",
    "vllm-embed-llamaindex (list)",
)

# name -> (factory, group). Group "core" rows are ours, "peer" rows are what users pick today.
CLIENTS: dict[str, tuple[Callable[[Cell], Runner], str]] = {
    "vllm-embed sync (numpy)": (core_sync, "core"),
    "vllm-embed async (numpy)": (core_async, "core"),
    "vllm-embed-langchain (list)": (langchain_adapter, "core"),
    "vllm-embed-llamaindex (list)": (llamaindex_adapter, "core"),
    "vllm-embed sync (list)": (core_sync_list, "core"),
    "vllm-embed-haystack (list)": (haystack_adapter, "core"),
    "vllm-embed-chroma (numpy rows)": (chroma_adapter, "core"),
    "vllm-embed-pydantic-ai (list)": (pydantic_ai_adapter, "core"),
    "vllm-embed-dspy (numpy)": (dspy_adapter, "core"),
    "openai SDK (default)": (openai_default, "peer"),
    "openai SDK (base64 + numpy)": (openai_base64_numpy, "peer"),
    "langchain-openai (default)": (langchain_openai_default, "peer"),
    "langchain-openai (chunk_size=batch)": (langchain_openai_chunk, "peer"),
    "LlamaIndex OpenAILike (default)": (openai_like_default, "peer"),
    "LlamaIndex OpenAILike (embed_batch_size=batch)": (openai_like_batch, "peer"),
    "httpx minimal (bytes, numpy)": (httpx_minimal, "reference"),
}
