"""``VLLMEmbedder``: the callable ``dspy.Embedder`` takes, over the vllm-embed core client.

``dspy.Embedder(VLLMEmbedder(...), batch_size=...)`` calls it with a list of texts and
gets a 2-D float32 array. Batching inside that list (by count and token budget, several
requests in flight), retries, encodings, truncation, instructions and the embedding
cache (``cache=``) are :class:`vllm_embed.EmbeddingClient`'s, built lazily.

Queries and documents: a ``VLLMEmbedder`` embeds one side (``kind="document"`` by
default); :attr:`VLLMEmbedder.query` / :attr:`VLLMEmbedder.documents` are the other
side's embedder over the same clients. ``dspy.retrievers.Embeddings`` uses one embedder
for the corpus and the queries; :func:`embeddings_retriever` builds it with the document
side and searches with the query side.

DSPy's own cache (``dspy.Embedder(..., caching=True)``, its default) keys a callable by
its ``__name__``; ours names the base URL (credentials removed), the served model, the
side and its instruction, and the settings that change vectors, never the key, so two
servers, models or sides never share cached vectors.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed import ConfigValueError, EmbeddingClient, load_config
from vllm_embed.adapters import LazyClients, require_text_list

if TYPE_CHECKING:
    import dspy

__all__ = ["VLLMEmbedder", "embeddings_retriever"]

Kind = Literal["document", "query", "raw"]
_KINDS = ("document", "query", "raw")
#: Client settings that change the vectors (part of DSPy's cache key).
_VECTOR_SETTINGS = ("dimensions", "client_side_dimensions", "normalize", "embed_dtype", "truncate")


class VLLMEmbedder:
    """Embed texts on your own vLLM (or any OpenAI-compatible) ``/v1/embeddings`` server.

    Example:
        .. code-block:: python

            import dspy
            from vllm_embed_dspy import VLLMEmbedder

            embedder = dspy.Embedder(
                VLLMEmbedder("http://127.0.0.1:8000/v1", model="minilm"), batch_size=1024
            )
            vectors = embedder(["Jupiter is the largest planet."])  # (1, 384) float32

    Args:
        base_url: the server's OpenAI-style URL (``.../v1``), or several; ``None`` reads
            ``VLLM_EMBED_BASE_URL`` / ``OPENAI_BASE_URL`` (the core's settings).
        model: the served model name; ``None`` uses the single model the server serves.
        kind: the instruction the texts get: ``"document"`` (default), ``"query"`` or
            ``"raw"`` (none). A call may override it (``embedder(texts, kind="query")``).
        client: an :class:`~vllm_embed.EmbeddingClient` to use (the caller owns it).
        **client_kwargs: the core client's other keyword arguments: ``api_key`` (else
            ``VLLM_EMBED_API_KEY``, ``VLLM_API_KEY``, ``OPENAI_API_KEY``; never shown),
            ``cache``, ``dimensions``, ``instructions``, ``batch_size``, ``truncate``, ...
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        model: str | None = None,
        kind: Kind = "document",
        client: EmbeddingClient | None = None,
        **client_kwargs: Any,
    ) -> None:
        _check_kind(kind)
        if client is not None and (client_kwargs or base_url is not None or model is not None):
            raise ConfigValueError(
                "pass either client= or the client's settings, not both; "
                "configure the client you pass."
            )
        self.kind: Kind = kind
        self._client = client
        self._kwargs: dict[str, Any] = dict(client_kwargs)
        if base_url is not None:
            self._kwargs["base_url"] = base_url
        if model is not None:
            self._kwargs["model"] = model
        self._clients = LazyClients()

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str],
        *,
        section: str | None = None,
        kind: Kind = "document",
        **overrides: Any,
    ) -> VLLMEmbedder:
        """Build from a config file or module (TOML / JSON / Python / env, see the core);
        keyword overrides win over the file."""
        config = load_config(source, section=section)
        return cls(kind=kind, **{**config.client_kwargs(), **overrides})

    # -- the two sides -----------------------------------------------------------------

    def with_kind(self, kind: Kind) -> VLLMEmbedder:
        """This embedder for another side (``"query"``, ``"document"``, ``"raw"``), sharing
        its clients (and so its connections and cache)."""
        _check_kind(kind)
        if kind == self.kind:
            return self
        other = copy.copy(self)
        other.kind = kind
        return other

    @property
    def query(self) -> VLLMEmbedder:
        """The query side: texts get the model's query instruction."""
        return self.with_kind("query")

    @property
    def documents(self) -> VLLMEmbedder:
        """The document side: texts get the model's document instruction."""
        return self.with_kind("document")

    def __copy__(self) -> VLLMEmbedder:
        other = object.__new__(VLLMEmbedder)
        other.__dict__.update(self.__dict__)  # the same LazyClients: one set of clients
        return other

    # -- the client --------------------------------------------------------------------

    @property
    def client(self) -> EmbeddingClient:
        """The core client (the one given, else one built on first use)."""
        if self._client is not None:
            return self._client
        return self._clients.sync(self._kwargs)

    def close(self) -> None:
        """Close the client this embedder built (it stays usable; a given one is not closed)."""
        self._clients.close()

    # -- what dspy.Embedder calls --------------------------------------------------------

    def __call__(
        self, texts: Sequence[str], *, kind: Kind | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed ``texts``: a float32 array ``(len(texts), dim)`` in input order.

        Raises:
            vllm_embed.InvalidInputError: ``texts`` is not a list of strings.
            vllm_embed.ConfigValueError: ``kind`` is not one of the three sides.
        """
        side = self.kind if kind is None else kind
        _check_kind(side)
        client = self.client
        if not require_text_list(texts, caller="VLLMEmbedder", alternative="[text]"):
            return np.empty((0, client.dimension()), np.float32)
        return client.embed_with_info(list(texts), kind=side).vectors

    @property
    def __name__(self) -> str:
        """What DSPy's cache keys this callable by (see the module docstring).

        Asks the server for its model once when ``model`` was not given.
        """
        client = self.client
        model = client.model_name()
        instructions = client.instructions_for(model)
        prefix = {"query": instructions.query, "document": instructions.document}.get(self.kind, "")
        settings = {
            "dimensions": client.requested_dimensions,
            "normalize": client.normalize,
            **{k: self._kwargs[k] for k in _VECTOR_SETTINGS if self._kwargs.get(k) is not None},
        }
        return (
            f"vllm_embed_dspy.VLLMEmbedder(base_urls={list(client.base_urls)!r}, "
            f"model={model!r}, kind={self.kind!r}, instruction={prefix!r}, "
            f"settings={sorted(settings.items())!r})"
        )

    def __repr__(self) -> str:
        model = self._kwargs.get("model")
        return f"VLLMEmbedder(model={model!r}, kind={self.kind!r})"


def embeddings_retriever(
    corpus: list[str],
    embedder: VLLMEmbedder,
    *,
    k: int = 5,
    batch_size: int = 1024,
    caching: bool = True,
    **kwargs: Any,
) -> dspy.retrievers.Embeddings:
    """A ``dspy.retrievers.Embeddings`` whose corpus is embedded as documents and whose
    queries are embedded as queries (each side with its instruction).

    ``kwargs`` go to ``dspy.retrievers.Embeddings`` (``brute_force_threshold``,
    ``normalize``, ...); ``batch_size`` and ``caching`` to both sides' ``dspy.Embedder``
    (texts per call to the core, which batches further; DSPy's own cache on or off).
    """
    import dspy

    retriever = dspy.retrievers.Embeddings(
        corpus=corpus,
        embedder=dspy.Embedder(embedder.documents, batch_size=batch_size, caching=caching),
        k=k,
        **kwargs,
    )
    retriever.embedder = dspy.Embedder(embedder.query, batch_size=batch_size, caching=caching)
    return retriever


def _check_kind(kind: object) -> None:
    if kind not in _KINDS:
        raise ConfigValueError(f"kind must be 'document', 'query' or 'raw', got {kind!r}.")
