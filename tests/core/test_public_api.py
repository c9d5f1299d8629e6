"""The public surface of ``vllm_embed`` is exactly what we promise (and sorted)."""

from __future__ import annotations

import inspect

import vllm_embed
from vllm_embed import _errors

EXPECTED = {
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncEmbeddingClient",
    "AuthenticationError",
    "BadRequestError",
    "CacheCorruptError",
    "CacheError",
    "CacheUnavailableError",
    "CacheWarning",
    "ClientStats",
    "ConfigError",
    "ConfigFileError",
    "ConfigValueError",
    "ConfigWarning",
    "ContextLengthError",
    "DimensionMismatchError",
    "DimensionsNotSupportedError",
    "EmbedConfig",
    "EmbedResult",
    "EmbeddingCache",
    "EmbeddingClient",
    "EncodingNotSupportedError",
    "Instructions",
    "InputNotSupportedError",
    "InsufficientPrivilegeError",
    "InvalidInputError",
    "InvalidRowError",
    "MigrationError",
    "MissingDependencyError",
    "MissingTextError",
    "ModelInfo",
    "ModelNotFoundError",
    "NoHealthyEndpointError",
    "PYTHON_NAME_MAP",
    "PostgresConnectionError",
    "PostgresDriverMissingError",
    "QdrantConnectionError",
    "RateLimitError",
    "RerankNotSupportedError",
    "RerankResult",
    "RetryPolicy",
    "RowsWithoutTextError",
    "Secret",
    "ServerEnvError",
    "ServerError",
    "ServerLaunchError",
    "ServerStartError",
    "StoreError",
    "StoreFormatError",
    "TLSCertificateError",
    "TableLockedError",
    "TextColumnTypeError",
    "Timeout",
    "UnknownConfigKeyWarning",
    "UnsupportedTableError",
    "VLLMEmbedError",
    "VectorColumnTypeError",
    "VectorWidthError",
    "__version__",
    "load_config",
    "maxsim",
}


def test_all_is_pinned() -> None:
    assert set(vllm_embed.__all__) == EXPECTED
    assert len(vllm_embed.__all__) == len(EXPECTED)


def test_all_is_sorted() -> None:
    assert vllm_embed.__all__ == sorted(vllm_embed.__all__)


def test_every_name_resolves() -> None:
    for name in vllm_embed.__all__:
        assert getattr(vllm_embed, name) is not None


def test_every_error_class_is_exported() -> None:
    for name in _errors.__all__:
        assert getattr(vllm_embed, name) is getattr(_errors, name)


def test_twins_have_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}

    sync = public(vllm_embed.EmbeddingClient)
    asyn = public(vllm_embed.AsyncEmbeddingClient)
    assert sync - {"close"} <= asyn
    for name in (
        "embed",
        "embed_query",
        "embed_documents",
        "embed_with_info",
        "embed_documents_list",
        "embed_query_list",
        "models",
        "model_name",
        "max_model_len",
        "dimension",
        "version",
        "health",
    ):
        assert inspect.iscoroutinefunction(getattr(vllm_embed.AsyncEmbeddingClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(vllm_embed.EmbeddingClient, name)), name
