"""``VLLMEmbeddingFunction``: the embedding-function shape nano-vectordb apps and LightRAG use.

An async callable ``await fn(texts) -> np.ndarray`` (float32, one L2-normalised row per
text, as nano-vectordb stores them) plus ``embedding_dim`` and ``max_token_size``
attributes. All the HTTP work is the core client's.

LightRAG: :func:`vllm_embed_nanovectordb.alightrag_embedding_func` builds the whole
``EmbeddingFunc`` from the server. The function accepts what LightRAG 1.5 passes:
``context="query" | "document"`` (``supports_asymmetric=True``) and ``embedding_dim=N``
(``send_dimensions=True``: N-dim Matryoshka vectors are asked for when the server's own
dimension differs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed import (
    AsyncEmbeddingClient,
    ConfigError,
    DimensionMismatchError,
    EmbeddingClient,
    InvalidInputError,
)
from vllm_embed.adapters import LazyClients, l2_normalize, require_text_list

__all__ = ["VLLMEmbeddingFunction"]

Kind = Literal["document", "query", "raw"]


class VLLMEmbeddingFunction:
    """Async embedding function for nano-vectordb / LightRAG.

    Args:
        client: an :class:`~vllm_embed.EmbeddingClient` or
            :class:`~vllm_embed.AsyncEmbeddingClient` to use. If omitted, clients are built
            lazily from ``client_kwargs`` (the core client's keyword arguments, e.g.
            ``cache="embeddings.sqlite"`` so a re-ingest embeds only changed texts).
        kind: which instruction the texts get: ``"document"`` (default; what a store
            holds), ``"query"`` or ``"raw"`` (none).
        embedding_dim: the dimension the app expects. When given, :meth:`resolve` checks it
            against the server and raises :class:`~vllm_embed.DimensionMismatchError`.
        max_token_size: overrides the server's ``max_model_len``.
    """

    def __init__(
        self,
        client: EmbeddingClient | AsyncEmbeddingClient | None = None,
        *,
        kind: Kind = "document",
        embedding_dim: int | None = None,
        max_token_size: int | None = None,
        **client_kwargs: Any,
    ) -> None:
        if client is not None and client_kwargs:
            raise ConfigError(
                "pass either a client or client keyword arguments, not both "
                f"(got {sorted(client_kwargs)})"
            )
        if kind not in ("document", "query", "raw"):
            raise ConfigError(f"kind must be 'document', 'query' or 'raw', got {kind!r}")
        self.kind: Kind = kind
        self._client = client
        self._client_kwargs = client_kwargs
        self._declared_dim = embedding_dim
        self._dim: int | None = None
        self._max_token_size = max_token_size
        self._max_len_known = max_token_size is not None
        self._clients = LazyClients()  # used only when no client was given
        # embedding_dim=N calls (LightRAG's send_dimensions) other than the served size:
        # one function per N, asking the server for N-dim (Matryoshka) vectors.
        self._by_dimension: dict[int, VLLMEmbeddingFunction] = {}

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str],
        *,
        section: str | None = None,
        kind: Kind = "document",
        **overrides: Any,
    ) -> VLLMEmbeddingFunction:
        """Build from a config file or module; the config's declared ``dimension`` becomes
        ``embedding_dim`` (checked against the server by :meth:`resolve`)."""
        from vllm_embed import load_config

        config = load_config(source, section=section)
        kwargs = {**config.client_kwargs(), **overrides}
        return cls(kind=kind, embedding_dim=config.dimension, **kwargs)

    def __copy__(self) -> VLLMEmbeddingFunction:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> VLLMEmbeddingFunction:
        """A copy is this same function (as for a plain function): it holds clients and
        locks that must not be duplicated. LightRAG deep-copies its config (``asdict``)."""
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, embedding_dim={self._dim}, "
            f"max_token_size={self._max_token_size})"
        )

    # -- clients ---------------------------------------------------------------------

    @property
    def client(self) -> EmbeddingClient | AsyncEmbeddingClient:
        """The core client used (the one given, else a sync client built on use)."""
        if self._client is not None:
            return self._client
        return self._sync()

    def _sync(self) -> EmbeddingClient:
        if isinstance(self._client, EmbeddingClient):
            return self._client
        if self._client is not None:
            raise ConfigError(
                "this embedding function wraps an AsyncEmbeddingClient: call "
                "`await fn.resolve()` first (or pass embedding_dim=...)."
            )
        return self._clients.sync(self._client_kwargs)

    def _async(self) -> AsyncEmbeddingClient | None:
        """The async client for the running loop, or None to use the sync one in a thread."""
        if isinstance(self._client, AsyncEmbeddingClient):
            return self._client
        if self._client is not None:
            return None
        return self._clients.for_running_loop(self._client_kwargs)

    # -- server facts ------------------------------------------------------------------

    @property
    def embedding_dim(self) -> int:
        """The server's real dimension (resolved on first access, see :meth:`dimension`)."""
        return self._dim if self._dim is not None else self.dimension()

    @property
    def max_token_size(self) -> int | None:
        """The server's ``max_model_len`` (or the value given), None when unknown."""
        if not self._max_len_known:
            self._set_max_len(self._sync().max_model_len())
        return self._max_token_size

    def dimension(self) -> int:
        """The server's real dimension, asked once (sync). Inside a running event loop
        with an async client, use ``await fn.resolve()`` instead."""
        if self._dim is None:
            self._set_dim(self._sync().dimension())
        assert self._dim is not None
        return self._dim

    async def resolve(self) -> VLLMEmbeddingFunction:
        """Ask the server (once) for its dimension and max_model_len; returns ``self``."""
        client = self._async()
        if self._dim is None:
            dim = await client.dimension() if client else await asyncio.to_thread(self.dimension)
            self._set_dim(dim)
        if not self._max_len_known:
            if client is not None:
                self._set_max_len(await client.max_model_len())
            else:
                await asyncio.to_thread(lambda: self.max_token_size)
        return self

    def _set_dim(self, dim: int) -> None:
        declared = self._declared_dim
        if declared is not None and declared != dim:
            raise DimensionMismatchError(
                f"embedding_dim={declared} was declared but the server produces {dim}-dim "
                "vectors: fix the declared dimension, or migrate the store built with "
                f"{declared} dims (`vllm-embed migrate <store file> ...`).",
                expected=declared,
                actual=dim,
            )
        self._dim = dim

    def _set_max_len(self, max_len: int | None) -> None:
        self._max_token_size = max_len
        self._max_len_known = True

    # -- embedding ----------------------------------------------------------------------

    async def __call__(
        self,
        texts: Sequence[str],
        context: Kind | None = None,
        *,
        embedding_dim: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embed ``texts``: float32 array (len(texts), dim), rows L2-normalised.

        ``context`` (``"query"`` / ``"document"``, as LightRAG passes it with
        ``supports_asymmetric=True``) overrides this function's ``kind`` for the call.

        ``embedding_dim`` (as LightRAG passes it with ``send_dimensions=True``): the width
        the caller wants. The server's own dimension is checked; another width is asked
        for as a Matryoshka size (the core client's ``dimensions``), which a server whose
        model is not Matryoshka refuses with
        :class:`~vllm_embed.DimensionsNotSupportedError`. With a client you passed in, a
        width other than that client's raises :class:`~vllm_embed.DimensionMismatchError`.
        """
        empty = not require_text_list(texts, caller="the embedding function")
        kind = self.kind if context is None else context
        if kind not in ("document", "query", "raw"):
            raise InvalidInputError(f"context must be 'query' or 'document', got {context!r}")
        if embedding_dim is not None:
            _check_width(embedding_dim)
            if empty:
                return np.empty((0, embedding_dim), dtype=np.float32)
            target = await self._for_dimension(embedding_dim)
            if target is not self:
                return await target(texts, kind)
        if len(texts) == 0 and (self._dim is not None or self._declared_dim is not None):
            return np.empty((0, self._dim or self._declared_dim or 0), dtype=np.float32)
        client = self._async()
        if client is not None:
            vectors = await _embed_async(client, list(texts), kind)
        else:
            sync = self._sync()
            vectors = await asyncio.to_thread(_embed_sync, sync, list(texts), kind)
        if self._dim is None and vectors.shape[0]:
            self._set_dim(int(vectors.shape[1]))
        return l2_normalize(vectors)

    async def _for_dimension(self, width: int) -> VLLMEmbeddingFunction:
        """The function producing ``width``-dim vectors: this one, or a Matryoshka one."""
        if self._dim is None:
            client = self._async()
            dim = await client.dimension() if client else await asyncio.to_thread(self.dimension)
            self._set_dim(dim)
        if width == self._dim:
            return self
        target = self._by_dimension.get(width)
        if target is not None:
            return target
        if self._client is not None:
            raise DimensionMismatchError(
                f"embedding_dim={width} was asked for (LightRAG's send_dimensions=True) but "
                f"the client given produces {self._dim}-dim vectors: build that client with "
                f"dimensions={width} (a Matryoshka model), or declare "
                f"EmbeddingFunc(embedding_dim={self._dim}).",
                expected=width,
                actual=self._dim,
            )
        kwargs = {**self._client_kwargs, "dimensions": width}
        target = VLLMEmbeddingFunction(
            kind=self.kind,
            max_token_size=self._max_token_size if self._max_len_known else None,
            **kwargs,
        )
        self._by_dimension[width] = target
        return target

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """One query vector (query instruction applied), L2-normalised, shape (dim,)."""
        client = self._async()
        if client is not None:
            vector = await client.embed_query(text)
        else:
            vector = await asyncio.to_thread(self._sync().embed_query, text)
        return l2_normalize(np.asarray(vector, dtype=np.float32))

    async def aclose(self) -> None:
        """Close the clients this function built (a client you passed in is yours)."""
        for target in self._by_dimension.values():
            await target.aclose()
        if self._client is None:
            await self._clients.aclose()
            self._clients.close()

    def close(self) -> None:
        """Close the sync client this function built (a client you passed in is yours)."""
        for target in self._by_dimension.values():
            target.close()
        if self._client is None:
            self._clients.close()


async def _embed_async(
    client: AsyncEmbeddingClient, texts: list[str], kind: Kind
) -> npt.NDArray[np.float32]:
    if kind == "document":
        return await client.embed_documents(texts)
    if kind == "query":
        return (await client.embed_with_info(texts, kind="query")).vectors
    return await client.embed(texts)


def _embed_sync(client: EmbeddingClient, texts: list[str], kind: Kind) -> npt.NDArray[np.float32]:
    if kind == "document":
        return client.embed_documents(texts)
    if kind == "query":
        return client.embed_with_info(texts, kind="query").vectors
    return client.embed(texts)


def _check_width(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"embedding_dim must be a positive integer, got {value!r}")
