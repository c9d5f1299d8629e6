"""A ready LightRAG ``EmbeddingFunc``, filled from the server.

LightRAG (``lightrag-hku`` 1.5) wants five facts before it starts: the dimension, the
model's token limit, the model name (it names Qdrant / Milvus / PG collections by it),
whether queries and documents are embedded differently (``supports_asymmetric``) and
whether to send ``embedding_dim=`` with every call (``send_dimensions``, its way to ask
for a Matryoshka size). Getting one wrong is silent: queries embedded as documents
retrieve worse with Qwen3, E5 or BGE. :func:`alightrag_embedding_func` asks the server
and fills them all::

    from vllm_embed_nanovectordb import alightrag_embedding_func

    embedding_func = await alightrag_embedding_func(base_url="http://127.0.0.1:8000/v1")
    rag = LightRAG(working_dir="./rag", embedding_func=embedding_func, llm_model_func=...)

``lightrag-hku`` stays an optional dependency: it is imported only here, when called.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from vllm_embed import EmbeddingClient
from vllm_embed_nanovectordb._function import VLLMEmbeddingFunction

if TYPE_CHECKING:
    from lightrag.utils import EmbeddingFunc

__all__ = ["alightrag_embedding_func", "lightrag_embedding_func"]

_INSTALL_HINT = (
    "LightRAG is not installed: `pip install lightrag-hku` (tested with 1.5.x) to build a "
    "LightRAG EmbeddingFunc."
)


def _embedding_func_class() -> Any:
    try:
        from lightrag.utils import EmbeddingFunc
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return EmbeddingFunc


def _build(
    fn: VLLMEmbeddingFunction,
    model: str,
    asymmetric: bool,
    *,
    send_dimensions: bool,
    supports_asymmetric: bool | None,
) -> EmbeddingFunc:
    embedding_func_class = _embedding_func_class()
    return embedding_func_class(
        embedding_dim=fn.embedding_dim,
        func=fn,
        max_token_size=fn.max_token_size,
        send_dimensions=send_dimensions,
        model_name=model,
        supports_asymmetric=asymmetric if supports_asymmetric is None else supports_asymmetric,
    )


async def alightrag_embedding_func(
    client: Any = None,
    *,
    send_dimensions: bool = False,
    supports_asymmetric: bool | None = None,
    **options: Any,
) -> EmbeddingFunc:
    """A LightRAG ``EmbeddingFunc`` whose facts come from the server (asked once).

    - ``embedding_dim``: the server's real dimension (the client option ``dimensions=N``
      asks a Matryoshka model for N-dim vectors);
    - ``max_token_size``: the server's ``max_model_len`` (``max_token_size=`` overrides);
    - ``model_name``: the served model's name (LightRAG's per-model collection names);
    - ``supports_asymmetric``: True when the model has query / document instructions (so
      LightRAG's ``context="query"`` gets the query instruction); force it either way;
    - ``send_dimensions``: off by default; when on, LightRAG sends ``embedding_dim=`` with
      every call and the function checks it (it equals the dimension found here).

    Args:
        client: an :class:`~vllm_embed.EmbeddingClient` /
            :class:`~vllm_embed.AsyncEmbeddingClient` to use; else one is built from
            ``options``.
        options: the core client's keyword arguments (``base_url``, ``api_key``, ``model``,
            ``instructions``, ``dimensions``, ``cache``, ...) and
            :class:`VLLMEmbeddingFunction`'s own (``kind``, ``embedding_dim`` to declare
            the dimension your stores were built with, ``max_token_size``).

    Raises:
        ImportError: ``lightrag-hku`` is not installed (the message says what to install).
        vllm_embed.DimensionMismatchError: a declared ``embedding_dim`` is not what the
            server produces.
    """
    _embedding_func_class()  # fail before any request when LightRAG is missing
    fn = VLLMEmbeddingFunction(client, **options)
    await fn.resolve()
    core = fn._async()
    if core is not None:
        model = await core.model_name()
        instructions = core.instructions_for(model)
    else:
        sync = fn._sync()
        model = await asyncio.to_thread(sync.model_name)
        instructions = sync.instructions_for(model)
    return _build(
        fn,
        model,
        not instructions.is_empty,
        send_dimensions=send_dimensions,
        supports_asymmetric=supports_asymmetric,
    )


def lightrag_embedding_func(
    client: EmbeddingClient | None = None,
    *,
    send_dimensions: bool = False,
    supports_asymmetric: bool | None = None,
    **options: Any,
) -> EmbeddingFunc:
    """Sync :func:`alightrag_embedding_func` (asks the server with a sync client; the
    returned function embeds with an async client in LightRAG's event loop)."""
    _embedding_func_class()
    fn = VLLMEmbeddingFunction(client, **options)
    sync = fn._sync()
    fn.dimension()
    _ = fn.max_token_size
    model = sync.model_name()
    return _build(
        fn,
        model,
        not sync.instructions_for(model).is_empty,
        send_dimensions=send_dimensions,
        supports_asymmetric=supports_asymmetric,
    )
