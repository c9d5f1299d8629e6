"""``VLLMEmbeddingFunction``: a chromadb 1.x embedding function over the vllm-embed core.

Registered with chromadb's registry under :data:`NAME` (importing this package is
enough), so a collection created with it records its configuration (``get_config``)
and a later ``client.get_collection(name)`` rebuilds it from that record
(``build_from_config``) without the caller passing it.

The record holds what decides the vectors: the server URL, the resolved model, the
vector ``dimension``, the Matryoshka ``dimensions`` asked for, and the query / document
instructions as the strings applied, plus the client settings that were given. Never
the API key: only the name of the environment variable it is read from
(``api_key_env_var``; ``None`` = the core's variables ``VLLM_EMBED_API_KEY``,
``VLLM_API_KEY``, ``OPENAI_API_KEY``). A ``cache`` or URL carrying a password is refused.

Resolving the model and the dimension asks the server once (``/v1/models`` and one short
embedding) when they are not given: pass ``model=`` and ``dimension=`` to record a
collection without a server. A function built from a record checks every answer's width
against the recorded ``dimension`` and raises :class:`vllm_embed.DimensionMismatchError`
when the server now serves something else (re-embed with ``vllm-embed migrate``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from vllm_embed import (
    ConfigValueError,
    DimensionMismatchError,
    EmbeddingClient,
    EmbedResult,
    Instructions,
)
from vllm_embed.adapters import LazyClients, adapter_client_kwargs

__all__ = ["NAME", "VLLMEmbeddingFunction"]

#: The name chromadb records and looks the class up by.
NAME = "vllm-embed"

#: Client settings recorded when given (``None``: the core's default, not recorded).
_SETTINGS = (
    "batch_size",
    "max_tokens_per_request",
    "max_concurrency",
    "timeout",
    "max_retries",
    "encoding",
    "embed_dtype",
    "truncate",
    "normalize",
    "client_side_dimensions",
    "cache",
)
#: What a collection's vectors depend on: a record update may not change them.
_FIXED = ("model", "dimension", "dimensions", "instructions")
_TYPES: dict[str, tuple[type, ...]] = {
    "base_url": (str, list),
    "model": (str,),
    "dimension": (int,),
    "dimensions": (int,),
    "instructions": (dict, str),
    "api_key_env_var": (str,),
    "batch_size": (int,),
    "max_tokens_per_request": (int,),
    "max_concurrency": (int,),
    "timeout": (int, float),
    "max_retries": (int,),
    "encoding": (str,),
    "embed_dtype": (str,),
    "truncate": (str,),
    "normalize": (bool,),
    "client_side_dimensions": (bool,),
    "cache": (str,),
}


def _refuse_password(value: Any, what: str) -> None:
    for url in value if isinstance(value, list) else [value]:
        if isinstance(url, str) and "://" in url and urlsplit(url).password:
            raise ConfigValueError(
                f"{what} carries a password, which chromadb would store in the collection's "
                "record. Give the URL without credentials and the key through "
                "api_key_env_var (the name of an environment variable)."
            )


def _instructions_spec(value: Any) -> Instructions | str | None:
    if isinstance(value, Mapping):
        return Instructions(query=value.get("query", ""), document=value.get("document", ""))
    return value  # type: ignore[no-any-return]


# (the typecheck session has no chromadb: the base class is Any there)
@register_embedding_function
class VLLMEmbeddingFunction(EmbeddingFunction[Documents]):  # type: ignore[misc]
    """Embeddings for chromadb from your own vLLM (or any OpenAI-compatible) server.

    Example:
        .. code-block:: python

            import chromadb
            from vllm_embed_chroma import VLLMEmbeddingFunction

            client = chromadb.PersistentClient("chroma")
            docs = client.create_collection(
                "docs", embedding_function=VLLMEmbeddingFunction("http://127.0.0.1:8000/v1")
            )

    Documents get the model's document instruction and queries (``collection.query
    (query_texts=...)``, through chromadb's ``embed_query``) its query instruction: the
    core's presets by model name (``instructions="auto"``), a preset name, an
    :class:`~vllm_embed.Instructions`, ``{"query": ..., "document": ...}`` or ``None``.
    Other settings mean what they mean on :class:`vllm_embed.EmbeddingClient`; ``api_key``
    is used but never recorded (give ``api_key_env_var`` for collections reopened
    elsewhere). Vectors are float32 numpy rows, as chromadb stores them.
    """

    def __init__(
        self,
        base_url: str | list[str] | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env_var: str | None = None,
        dimension: int | None = None,
        dimensions: int | None = None,
        instructions: Instructions | Mapping[str, str] | str | None = "auto",
        client_options: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ConfigValueError(
                f"VLLMEmbeddingFunction got unknown settings {unknown}; "
                f"known: {sorted(_SETTINGS)} (others go in client_options)."
            )
        _refuse_password(base_url, "base_url")
        _refuse_password(settings.get("cache"), "cache")
        if settings.get("cache") is not None and not isinstance(settings["cache"], str):
            raise ConfigValueError(
                "cache must be a path or URL string here (chromadb records it); "
                f"got {type(settings['cache']).__name__}."
            )
        self.base_url = base_url
        self.model = model
        self.dimension = dimension
        self.dimensions = dimensions
        self.api_key_env_var = api_key_env_var
        self.instructions = _instructions_spec(instructions)
        self.settings = {k: v for k, v in settings.items() if v is not None}
        self._api_key = api_key
        self._client_options = dict(client_options or {})
        self._clients = LazyClients()

    def __repr__(self) -> str:
        return (
            f"VLLMEmbeddingFunction(base_url={self.base_url!r}, model={self.model!r}, "
            f"dimension={self.dimension!r})"
        )

    # -- the core client ----------------------------------------------------------------

    def _key(self) -> str | None:
        if self._api_key is not None or self.api_key_env_var is None:
            return self._api_key  # None: the core reads its own variables
        value = os.environ.get(self.api_key_env_var)
        if not value:
            raise ConfigValueError(
                f"the API key variable {self.api_key_env_var!r} (api_key_env_var in the "
                "collection's embedding-function record) is not set; set it, then retry."
            )
        return value

    def _client_kwargs(self) -> dict[str, Any]:
        settings = dict(self.settings)
        return adapter_client_kwargs(
            client_options=self._client_options,
            instructions=self.instructions,
            base_url=self.base_url,
            api_key=self._key(),
            timeout=settings.pop("timeout", None),
            max_retries=settings.pop("max_retries", None),
            model=self.model,
            dimensions=self.dimensions,
            **settings,
        )

    @property
    def client(self) -> EmbeddingClient:
        """The core sync client (built on first use)."""
        return self._clients.sync(self._client_kwargs)

    def close(self) -> None:
        """Close the client's connections (the function stays usable)."""
        self._clients.close()

    # -- embedding --------------------------------------------------------------------------

    def _embed(self, texts: Documents, kind: str) -> Embeddings:
        if not texts:
            return []
        result: EmbedResult = self.client.embed_with_info(list(texts), kind=kind)  # type: ignore[arg-type]
        width = int(result.vectors.shape[1])
        if self.dimension is not None and width != self.dimension:
            raise DimensionMismatchError(
                f"this collection holds {self.dimension}-d vectors (model {self.model!r}), "
                f"but the server answered {width}-d vectors (model {result.model!r}). "
                "Serve the recorded model again, or re-embed the collection with "
                "`vllm-embed migrate`.",
                expected=self.dimension,
                actual=width,
            )
        return list(result.vectors)

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents (the document instruction applies)."""
        return self._embed(input, "document")

    def embed_query(self, input: Documents) -> Embeddings:
        """Embed queries (the query instruction applies); chromadb calls it for
        ``collection.query(query_texts=...)``."""
        return self._embed(input, "query")

    # -- chromadb's registry and record ------------------------------------------------------

    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def is_legacy(self) -> bool:
        return False

    _resolve_lock: ClassVar[threading.Lock] = threading.Lock()

    def get_config(self) -> dict[str, Any]:
        """The record chromadb keeps with the collection (resolves model and dimension
        from the server once when they were not given). Never holds the key."""
        with self._resolve_lock:
            if self.model is None:
                self.model = self.client.model_name()
            if self.dimension is None:
                self.dimension = self.client.dimension()
        if isinstance(self.instructions, Instructions):
            chosen = self.instructions
        else:
            chosen = self.client.instructions_for(self.model)
        config: dict[str, Any] = {
            "base_url": self.base_url,
            "model": self.model,
            "dimension": self.dimension,
            "dimensions": self.dimensions,
            "instructions": {"query": chosen.query, "document": chosen.document},
            "api_key_env_var": self.api_key_env_var,
        }
        config.update(self.settings)
        return config

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> VLLMEmbeddingFunction:
        """The function a record describes (one instance per distinct record, reused:
        chromadb rebuilds the function from the record on every call)."""
        VLLMEmbeddingFunction.validate_config(config)
        key = json.dumps(config, sort_keys=True)
        with _BUILT_LOCK:
            built = _BUILT.get(key)
            if built is None:
                if len(_BUILT) >= _BUILT_MAX:
                    _BUILT.pop(next(iter(_BUILT))).close()
                built = _BUILT[key] = VLLMEmbeddingFunction(**config)
            return built

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Check a record's keys and value types (raises ``ConfigValueError``)."""
        for name, value in config.items():
            allowed = _TYPES.get(name)
            if allowed is None:
                raise ConfigValueError(
                    f"unknown key {name!r} in a {NAME} embedding-function record; "
                    f"known: {sorted(_TYPES)}."
                )
            if value is not None and (
                not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
            ):
                raise ConfigValueError(
                    f"{name!r} in a {NAME} embedding-function record must be "
                    f"{' or '.join(t.__name__ for t in allowed)}, got {value!r}."
                )

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Refuse changing what the stored vectors depend on."""
        changed = [k for k in _FIXED if k in new_config and new_config[k] != old_config.get(k)]
        if changed:
            raise ConfigValueError(
                f"cannot change {', '.join(changed)} of a collection's {NAME} embedding "
                "function: its vectors were made with the recorded ones. Re-embed it with "
                "`vllm-embed migrate` instead."
            )


_BUILT: dict[str, VLLMEmbeddingFunction] = {}
_BUILT_MAX = 32
_BUILT_LOCK = threading.Lock()
