"""A collection's configuration (HNSW / SPANN parameters and the embedding-function
record): read, rewritten for the migrated vectors, and reproduced when the collection
is created again (chromadb 1.x refuses to see an embedding function change)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from vllm_embed._errors import MigrationError

from .._space import EmbeddingSpace

#: The registry name of vllm-embed-chroma's embedding function, whose record describes
#: the vectors (so a migration rewrites it).
VLLM_EMBED_FUNCTION = "vllm-embed"


def configuration_of(collection: Any) -> dict[str, Any]:
    """The configuration chromadb keeps for ``collection`` (empty when it keeps none)."""
    model = getattr(collection, "_model", None)
    raw = getattr(model, "configuration_json", None)
    if isinstance(raw, dict):
        return raw
    config = getattr(collection, "configuration_json", None)
    return config if isinstance(config, dict) else {}


def same_configuration(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal index parameters and embedding-function records."""
    keys = ("hnsw", "spann", "embedding_function")
    return all(a.get(k) == b.get(k) for k in keys)


def retargeted(configuration: dict[str, Any], space: EmbeddingSpace | None) -> dict[str, Any]:
    """``configuration`` with a vllm-embed function record describing ``space`` (the
    migrated vectors); any other configuration unchanged. ``dimensions`` (a Matryoshka
    size asked of the server) follows the new dimension only when the record had one."""
    ef = configuration.get("embedding_function")
    if space is None or not isinstance(ef, dict) or ef.get("name") != VLLM_EMBED_FUNCTION:
        return configuration
    config = dict(ef.get("config") or {})
    config["model"] = space.model
    config["dimension"] = space.dimension
    if config.get("dimensions") is not None:
        config["dimensions"] = space.dimension
    config["instructions"] = {
        "query": space.query_instruction,
        "document": space.document_instruction,
    }
    return {**configuration, "embedding_function": {**ef, "config": config}}


def create_attempts(configuration: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Ways to create a collection with ``configuration``, most faithful first.

    A collection created from ``hnsw:*`` metadata only (LangChain, older code) records
    no embedding function; one created with a configuration records one (``legacy``
    when none was given). The embedding-function record is rebuilt with chromadb's own
    registry, or carried over verbatim when its class is not importable here.
    """
    if configuration.get("embedding_function") is None:
        yield {}
    config: dict[str, Any] = {}
    for index in ("hnsw", "spann"):
        if configuration.get(index) is not None:
            config[index] = dict(configuration[index])
    ef = configuration.get("embedding_function")
    if isinstance(ef, dict) and ef.get("type") == "known":
        config["embedding_function"] = _known_function(ef)
    yield {"configuration": config}


@contextlib.contextmanager
def restore_registry() -> Iterator[None]:
    """chromadb's registry of embedding functions as it was (see `_PersistedFunction`)."""
    from chromadb.utils.embedding_functions import known_embedding_functions

    saved = dict(known_embedding_functions)
    try:
        yield
    finally:
        known_embedding_functions.clear()
        known_embedding_functions.update(saved)


def _known_function(ef: dict[str, Any]) -> Any:
    """The embedding function a ``{"type": "known", "name", "config"}`` record describes."""
    from chromadb.utils.embedding_functions import known_embedding_functions

    cls = known_embedding_functions.get(ef.get("name"))
    if cls is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls.build_from_config(ef.get("config") or {})
        except Exception:
            pass
    return _PersistedFunction.for_record(ef)


class _PersistedFunction:
    """Carries an embedding-function record over unchanged; never embeds.

    Used when the function's class cannot be built in this process (its package or its
    API-key variable is missing). chromadb registers the class under its name while
    creating the collection; the registry entry is restored right after
    (`restore_registry`).
    """

    _record: dict[str, Any]

    @classmethod
    def for_record(cls, record: dict[str, Any]) -> _PersistedFunction:
        name = str(record.get("name"))
        sub = type("PersistedEmbeddingFunction", (cls,), {"name": staticmethod(lambda: name)})
        instance: _PersistedFunction = sub()
        instance._record = record
        return instance

    def __call__(self, input: Any) -> Any:
        raise MigrationError("the migrated vectors are given explicitly; nothing is embedded here")

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self._record.get("config") or {}
        return config

    def default_space(self) -> str:
        return "l2"

    def supported_spaces(self) -> list[str]:
        return ["l2", "cosine", "ip"]
